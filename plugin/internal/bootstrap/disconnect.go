package bootstrap

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/allow"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/imports"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// Disconnect undoes bootstrap and every grant since: in the source, everything written for the
// target (its identity and self-renew grant, named, namespace-wide and cluster-wide grants, their
// anchors — so every token minted for the target stops working within the API server's 10 s
// token cache —, their token policies and the target's allowed-importers entries); in the
// target, the cluster credential and the imports from the source. What several importing
// clusters share (the importer namespace, the admission policy) stays.
type Disconnect struct {
	Target, Source         *kube.Clients
	TargetName, SourceName string
	DryRun                 bool
}

// Plan lists the imports from the source in the target: what Run deletes there besides the
// credential, for the confirmation.
func (d *Disconnect) Plan(ctx context.Context) ([]v1alpha1.ServiceAccountImport, error) {
	all, err := (&imports.Client{Clients: d.Target}).List(ctx, "")
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(i v1alpha1.ServiceAccountImport) bool {
		return i.Spec.ClusterName != d.SourceName || v1alpha1.IsClusterCredential(&i, v1alpha1.DefaultNamespace)
	}), nil
}

// Run deletes, source first (so that nothing minted for the target works any more), then the
// target's imports and credential. It is idempotent: a second run finds nothing to delete.
func (d *Disconnect) Run(ctx context.Context, imps []v1alpha1.ServiceAccountImport) ([]kube.Result, error) {
	var results []kube.Result
	del := func(c *kube.Clients, obj runtime.Object) error {
		r, err := c.Delete(ctx, obj, d.DryRun)
		if err == nil && r.Action != kube.NotFound {
			results = append(results, r)
		}
		return err
	}
	s := d.Source
	sel := metav1.ListOptions{LabelSelector: grant.Selector(d.TargetName).String()}

	// Bindings before roles, cluster-wide before namespaced: the rights go first.
	for _, obj := range []runtime.Object{grant.ClusterImportRoleBinding(d.TargetName), grant.ClusterImportRole(d.TargetName)} {
		if err := del(s, obj); err != nil {
			return results, err
		}
	}
	bindings, err := s.Kube.RbacV1().RoleBindings("").List(ctx, sel)
	if err != nil {
		return results, s.APIError(err)
	}
	for _, b := range bindings.Items {
		if err := del(s, typed(&b, rbacv1.SchemeGroupVersion.WithKind("RoleBinding"))); err != nil {
			return results, err
		}
	}
	roles, err := s.Kube.RbacV1().Roles("").List(ctx, sel)
	if err != nil {
		return results, s.APIError(err)
	}
	for _, r := range roles.Items {
		if err := del(s, typed(&r, rbacv1.SchemeGroupVersion.WithKind("Role"))); err != nil {
			return results, err
		}
	}
	secrets, err := s.Kube.CoreV1().Secrets("").List(ctx, sel)
	if err != nil {
		return results, s.APIError(err)
	}
	for _, a := range secrets.Items {
		if grant.AnchorServiceAccount(&a, d.TargetName) == "" {
			continue
		}
		if err := del(s, grant.Anchor(d.TargetName, a.Namespace, grant.AnchorServiceAccount(&a, d.TargetName))); err != nil {
			return results, err
		}
	}
	if err := del(s, grant.ImporterServiceAccount(d.TargetName)); err != nil {
		return results, err
	}
	r, err := d.removePolicies(ctx)
	results = append(results, r...)
	if err != nil {
		return results, err
	}
	r, err = d.removeAllowedImporters(ctx)
	results = append(results, r...)
	if err != nil {
		return results, err
	}

	// The target: imports from the source, then the credential (their secrets are collected).
	for i := range imps {
		if err := del(d.Target, typed(&imps[i], v1alpha1.GroupVersion.WithKind("ServiceAccountImport"))); err != nil {
			return results, err
		}
	}
	cred := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: v1alpha1.DefaultNamespace, Name: d.SourceName}}
	if err := del(d.Target, typed(cred, v1alpha1.GroupVersion.WithKind("ServiceAccountImport"))); err != nil {
		return results, err
	}
	return results, nil
}

// removePolicies removes the target's entries from every token policies ConfigMap of the source.
func (d *Disconnect) removePolicies(ctx context.Context) ([]kube.Result, error) {
	s := d.Source
	cms, err := s.Kube.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + grant.PoliciesName})
	if err != nil {
		return nil, s.APIError(err)
	}
	var results []kube.Result
	for _, cm := range cms.Items {
		var keys []string
		for k, v := range cm.Data {
			if cluster, _, _ := strings.Cut(v, " "); cluster == d.TargetName {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			continue
		}
		if d.DryRun {
			u, _ := kube.ToUnstructured(typed(&cm, corev1.SchemeGroupVersion.WithKind("ConfigMap")))
			results = append(results, kube.Result{Object: u, Action: kube.Configured})
			continue
		}
		r, err := allow.WritePolicies(ctx, s, cm.Namespace, nil, keys)
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	return results, nil
}

// removeAllowedImporters removes the target's entries from the allowed-importers annotations of
// the source's service accounts (an empty list is removed: it restricts nobody).
func (d *Disconnect) removeAllowedImporters(ctx context.Context) ([]kube.Result, error) {
	s := d.Source
	sas, err := s.Kube.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, s.APIError(err)
	}
	var results []kube.Result
	for _, sa := range sas.Items {
		v, ok := sa.Annotations[v1alpha1.AllowedImportersAnnotation]
		if !ok {
			continue
		}
		list, err := grant.ParseAllowedImporters(v)
		if err != nil || !list.Names(d.TargetName) {
			continue // an unparsable one is the operator's to fix; allow says so
		}
		kept := slices.DeleteFunc(list, func(i grant.Importer) bool { return i.Cluster == d.TargetName })
		var value *string
		if len(kept) > 0 {
			value = ptr.To(kept.String())
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": sa.ResourceVersion,
			"annotations":     map[string]*string{v1alpha1.AllowedImportersAnnotation: value},
		}})
		opts := metav1.PatchOptions{FieldManager: kube.FieldManager}
		if d.DryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		if _, err := s.Kube.CoreV1().ServiceAccounts(sa.Namespace).Patch(ctx, sa.Name, types.MergePatchType, patch, opts); err != nil {
			return results, s.APIError(err)
		}
		u, _ := kube.ToUnstructured(typed(&sa, corev1.SchemeGroupVersion.WithKind("ServiceAccount")))
		results = append(results, kube.Result{Object: u, Action: kube.Configured})
	}
	return results, nil
}

// typed sets obj's kind, which listed items lack and the plugin's writers need.
func typed(obj runtime.Object, gvk schema.GroupVersionKind) runtime.Object {
	obj.GetObjectKind().SetGroupVersionKind(gvk)
	return obj
}
