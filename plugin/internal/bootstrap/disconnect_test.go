package bootstrap

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
)

// federatedGrants are what `allow --federated` writes in the source for importing cluster a:
// a federated grant of apps/reader (Role, RoleBinding, ClusterRole, ClusterRoleBinding) and the
// importer's right to check it (Role, RoleBinding).
func federatedGrants(t *testing.T, a string) []runtime.Object {
	t.Helper()
	objs, err := grant.FederatedGrant{ImportingCluster: a, Namespace: "apps", ServiceAccount: "reader", IntoNamespaces: []string{"team"}}.Objects()
	if err != nil {
		t.Fatal(err)
	}
	var out []runtime.Object
	for _, o := range objs {
		out = append(out, o.(runtime.Object))
	}
	r, rb := grant.FederatedCheck(a, "apps", grant.FederatedUser(a, grant.Namespace, a))
	return append(out, r, rb)
}

// federatedTarget gives the target a federated credential for cluster2 (with its ConfigMap,
// controlled by it) and a federated import from cluster2.
func federatedTarget(t *testing.T, target *kubefake.Cluster) {
	t.Helper()
	cred := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "cluster2", Namespace: v1alpha1.DefaultNamespace},
		Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: grant.Namespace, Name: "cluster1", Mode: v1alpha1.ModeFederated}}
	target.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.DefaultNamespace}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}, cred,
		&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: "team"},
			Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "apps", Name: "reader", Mode: v1alpha1.ModeFederated}})
	u := target.Object(v1alpha1.GroupVersion.WithKind("ServiceAccountImport"), v1alpha1.DefaultNamespace, "cluster2")
	cred.UID = u.GetUID()
	cm, err := credential.NewConfigMap(cred, credential.Federated{ClusterName: "cluster2", Server: "https://cluster2.example:6443",
		Namespace: grant.Namespace, ServiceAccount: "cluster1"})
	if err != nil {
		t.Fatal(err)
	}
	target.Add(cm)
}

func TestDisconnect(t *testing.T) {
	ns := grant.Namespace
	fedName := grant.FederatedName("cluster1", "apps", "reader")
	checkName := grant.FederatedCheckName("cluster1")
	credConfigMap := v1alpha1.FederatedConfigMapName("cluster2")
	// What another importing cluster, cluster3, was granted: it stays.
	others := []string{
		"ClusterRole.rbac.authorization.k8s.io/" + grant.FederatedName("cluster3", "apps", "reader"),
		"ClusterRoleBinding.rbac.authorization.k8s.io/" + grant.FederatedName("cluster3", "apps", "reader"),
		"Namespace/apps",
		"Role.rbac.authorization.k8s.io/apps/" + grant.FederatedCheckName("cluster3"),
		"Role.rbac.authorization.k8s.io/apps/" + grant.FederatedName("cluster3", "apps", "reader"),
		"RoleBinding.rbac.authorization.k8s.io/apps/" + grant.FederatedCheckName("cluster3"),
		"RoleBinding.rbac.authorization.k8s.io/apps/" + grant.FederatedName("cluster3", "apps", "reader"),
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, target, source *kubefake.Cluster, o *Options)
		// want are the results, in order; sourceLeft and targetLeft what stays besides others.
		want                   []string
		sourceLeft, targetLeft []string
	}{
		{name: "federated only", setup: func(t *testing.T, target, _ *kubefake.Cluster, _ *Options) {
			federatedTarget(t, target)
		}, want: []string{
			"clusterrolebinding/" + fedName + " deleted",
			"clusterrole/" + fedName + " deleted",
			"rolebinding/" + checkName + " deleted",
			"rolebinding/" + fedName + " deleted",
			"role/" + checkName + " deleted",
			"role/" + fedName + " deleted",
			"serviceaccountimport/reader deleted",
			"configmap/" + credConfigMap + " deleted",
			"serviceaccountimport/cluster2 deleted",
		}, targetLeft: []string{"Namespace/default", "Namespace/" + ns, "Namespace/team"}},
		{name: "bootstrap with every service account, and federated grants", setup: func(t *testing.T, _, _ *kubefake.Cluster, o *Options) {
			o.AllowAllServiceAccounts = true
			if _, err := o.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
		}, want: []string{
			"clusterrolebinding/" + fedName + " deleted",
			"clusterrolebinding/" + grant.ClusterImportName("cluster1") + " deleted",
			"clusterrole/" + fedName + " deleted",
			"clusterrole/" + grant.ClusterImportName("cluster1") + " deleted",
			"rolebinding/" + checkName + " deleted",
			"rolebinding/" + fedName + " deleted",
			"rolebinding/" + grant.CAReaderName("cluster1") + " deleted",
			"rolebinding/" + grant.SelfRenewName("cluster1") + " deleted",
			"role/" + checkName + " deleted",
			"role/" + fedName + " deleted",
			"role/" + grant.CAReaderName("cluster1") + " deleted",
			"role/" + grant.SelfRenewName("cluster1") + " deleted",
			"secret/" + grant.AnchorName("cluster1", "cluster1") + " deleted",
			"serviceaccount/cluster1 deleted",
			"configmap/" + grant.PoliciesName + " configured",
			"serviceaccountimport/cluster2 deleted",
		}, sourceLeft: []string{
			"ConfigMap/" + ns + "/" + grant.PoliciesName,
			"Namespace/" + ns,
			"ValidatingAdmissionPolicy.admissionregistration.k8s.io/" + grant.TokenPolicyName,
			"ValidatingAdmissionPolicyBinding.admissionregistration.k8s.io/" + grant.TokenPolicyName,
		}, targetLeft: []string{
			"Namespace/default",
			"Namespace/" + ns,
			"Secret/" + ns + "/" + v1alpha1.SecretName("cluster2"), // the garbage collector's
		}},
	}
	for _, tt := range tests {
		for _, dryRun := range []bool{true, false} {
			name := tt.name
			if dryRun {
				name += ", dry run"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				var out bytes.Buffer
				target, source, o := clusters(&out)
				target.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
				source.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}})
				source.Add(federatedGrants(t, "cluster1")...)
				source.Add(federatedGrants(t, "cluster3")...)
				tt.setup(t, target, source, o)
				sourceBefore, targetBefore := source.Names(), target.Names()

				d := &Disconnect{Target: target.Clients(), Source: source.Clients(), TargetName: "cluster1", SourceName: "cluster2", DryRun: dryRun}
				imps, err := d.Plan(ctx)
				if err != nil {
					t.Fatal(err)
				}
				res, err := d.Run(ctx, imps)
				if err != nil {
					t.Fatal(err)
				}
				if got := lines(res); strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
					t.Errorf("results:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
				}
				if dryRun {
					if !slices.Equal(source.Names(), sourceBefore) || !slices.Equal(target.Names(), targetBefore) {
						t.Errorf("the dry run changed the clusters:\n%v\n%v", source.Names(), target.Names())
					}
					return
				}
				wantSource := append(slices.Clone(others), tt.sourceLeft...)
				slices.Sort(wantSource)
				if got := source.Names(); !slices.Equal(got, wantSource) {
					t.Errorf("left in the source:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantSource, "\n"))
				}
				if got := target.Names(); !slices.Equal(got, tt.targetLeft) {
					t.Errorf("left in the target:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.targetLeft, "\n"))
				}
				// Idempotent: nothing left to delete.
				if res, err := d.Run(ctx, nil); err != nil || len(res) != 0 {
					t.Errorf("second run: %v %v", lines(res), err)
				}
			})
		}
	}
}

// TestDisconnectKeepsForeignConfigMap: a ConfigMap under the federated credential's name that
// the credential does not control stays, and a token credential has none.
func TestDisconnectKeepsForeignConfigMap(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []v1alpha1.ImportMode{v1alpha1.ModeFederated, v1alpha1.ModeToken} {
		var out bytes.Buffer
		target, source, _ := clusters(&out)
		target.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.DefaultNamespace}},
			&v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Name: "cluster2", Namespace: v1alpha1.DefaultNamespace},
				Spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: grant.Namespace, Name: "cluster1", Mode: mode}},
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: v1alpha1.FederatedConfigMapName("cluster2"), Namespace: v1alpha1.DefaultNamespace,
				Labels: map[string]string{v1alpha1.ImportNameKey: v1alpha1.SecretLabelValue("cluster2")}}})
		if mode == v1alpha1.ModeFederated {
			// Controlled by another object: not the credential's.
			cm, _ := target.Kube.CoreV1().ConfigMaps(v1alpha1.DefaultNamespace).Get(ctx, v1alpha1.FederatedConfigMapName("cluster2"), metav1.GetOptions{})
			cm.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "other", UID: "other"}}
			if _, err := target.Kube.CoreV1().ConfigMaps(v1alpha1.DefaultNamespace).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		d := &Disconnect{Target: target.Clients(), Source: source.Clients(), TargetName: "cluster1", SourceName: "cluster2"}
		res, err := d.Run(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(lines(res), ", "); got != "serviceaccountimport/cluster2 deleted" {
			t.Errorf("%s credential: %s", mode, got)
		}
		if !slices.Contains(target.Names(), "ConfigMap/"+v1alpha1.DefaultNamespace+"/"+v1alpha1.FederatedConfigMapName("cluster2")) {
			t.Errorf("%s credential: the ConfigMap went", mode)
		}
	}
}
