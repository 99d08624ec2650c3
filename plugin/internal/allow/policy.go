package allow

import (
	"context"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// Token policies (grant.Policy): each grant caps its tokens' lifetime and lists their audiences
// in ConfigMap grant.PoliciesName of the service account's namespace, which the importer reads
// and B's admission (grant.TokenPolicy, installed by bootstrap) enforces.

// WritePolicies sets the entries of set and removes the keys of remove in ConfigMap
// grant.PoliciesName of namespace, creating it if needed. Each key is patched alone (a JSON merge
// patch), so that grants of other pairs written meanwhile are kept. The result's object is the
// ConfigMap with every entry it then holds, and source's dry run makes it dry.
func WritePolicies(ctx context.Context, source *kube.Clients, namespace string, set map[string]string, remove []string) (kube.Result, error) {
	cms := source.Kube.CoreV1().ConfigMaps(namespace)
	cm := grant.Policies(namespace)
	before, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && len(set) == 0:
		return policiesResult(source, cm, kube.NotFound), nil
	case apierrors.IsNotFound(err) && source.WritesNothing():
		cm.Data = set
		return policiesResult(source, cm, kube.Created), nil
	case apierrors.IsNotFound(err):
		cm.Data = set
		if _, err := cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: kube.FieldManager, DryRun: source.DryRunOpts(false)}); err == nil {
			return policiesResult(source, cm, kube.Created), nil
		} else if !apierrors.IsAlreadyExists(err) {
			return kube.Result{}, fmt.Errorf("creating token policies %s/%s in %s: %w", namespace, cm.Name, source.Describe(), source.APIError(err))
		}
		before = &corev1.ConfigMap{} // created meanwhile: patch it
	case err != nil:
		return kube.Result{}, source.APIError(err)
	}
	var after map[string]string
	if source.WritesNothing() {
		after = maps.Clone(before.Data)
		if after == nil {
			after = map[string]string{}
		}
		maps.Copy(after, set)
		for _, k := range remove {
			delete(after, k)
		}
	} else {
		patched, err := cms.Patch(ctx, cm.Name, types.MergePatchType, grant.PoliciesPatch(set, remove),
			metav1.PatchOptions{FieldManager: kube.FieldManager, DryRun: source.DryRunOpts(false)})
		if err != nil {
			return kube.Result{}, fmt.Errorf("writing token policies %s/%s in %s: %w", namespace, cm.Name, source.Describe(), source.APIError(err))
		}
		after = patched.Data
	}
	cm.Data = after
	if maps.Equal(before.Data, after) {
		return policiesResult(source, cm, kube.Unchanged), nil
	}
	return policiesResult(source, cm, kube.Configured), nil
}

// readPolicies is the data of ConfigMap grant.PoliciesName of namespace (none if it is missing).
func readPolicies(ctx context.Context, source *kube.Clients, namespace string) (map[string]string, error) {
	cm, err := source.Kube.CoreV1().ConfigMaps(namespace).Get(ctx, grant.PoliciesName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, source.APIError(err)
	}
	return cm.Data, nil
}

// grantPolicies writes the policies of importingCluster's grants of serviceAccounts of namespace:
// p for those of named (this run's), and the default for the others that have none yet (grants
// that predate policies), leaving the others' as they are. It returns what it wrote, if anything.
func grantPolicies(ctx context.Context, source *kube.Clients, importingCluster, namespace string, named, serviceAccounts []string, p grant.Policy) ([]kube.Result, error) {
	current, err := readPolicies(ctx, source, namespace)
	if err != nil {
		return nil, err
	}
	set := map[string]string{}
	for _, sa := range serviceAccounts {
		key := grant.PolicyKey(importingCluster, sa)
		switch _, has := current[key]; {
		case slices.Contains(named, sa):
			set[key] = grant.PolicyValue(importingCluster, sa, p)
		case !has:
			set[key] = grant.PolicyValue(importingCluster, sa, grant.DefaultPolicy())
		}
	}
	if len(set) == 0 {
		return nil, nil
	}
	r, err := WritePolicies(ctx, source, namespace, set, nil)
	if err != nil {
		return nil, err
	}
	return []kube.Result{r}, nil
}

// warnUnenforced warns when B does not enforce token policies itself (bootstrap installs the
// admission policy that does; clusters bootstrapped before it lack it). Not allowed to tell, it
// says nothing: the importer follows the policies all the same.
func warnUnenforced(ctx context.Context, source *kube.Clients, importingCluster string, u *ui.UI) {
	_, err := source.Kube.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, grant.TokenPolicyName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		u.Warn("%s does not enforce token policies itself yet (ValidatingAdmissionPolicy %s is missing): the importer keeps to them, but a leaked importer credential would not; run `%s` again to install it",
			source.Describe(), grant.TokenPolicyName, grant.BootstrapCommand(importingCluster, source.ClusterName()))
	}
}

func policiesResult(source *kube.Clients, cm *corev1.ConfigMap, action kube.Action) kube.Result {
	u, _ := kube.ToUnstructured(cm)
	return kube.Result{Object: u, Action: action, In: source}
}
