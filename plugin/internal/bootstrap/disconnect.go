package bootstrap

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
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
// token cache —, their token policies, the target's allowed-importers entries, and the federated
// grants: whom the target's pods may impersonate, and the importer's right to check it); in the
// target, the cluster credential (bootstrap's or federate's, with its ConfigMap) and the imports
// from the source, token and federated. What several importing clusters share (the importer
// namespace, the admission policy) stays, and so does the source's trust in the target's issuer
// (its authentication configuration: kubectl mcsa unfederate removes it), which, without the
// federated grants, lets the target's pods do only what any authenticated user may.
type Disconnect struct {
	Target, Source         *kube.Clients
	TargetName, SourceName string
	// DryRun sends every deletion with dryRun; the clients' own DryRun (client) sends none.
	DryRun bool
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

	// Bindings before roles, cluster-wide before namespaced: the rights go first. Cluster-wide:
	// the grant of every service account (bootstrap --allow-all-service-accounts) and the
	// federated grants (allow --federated: what the target's pods may do as whom they
	// impersonate), all labelled for the target.
	clusterBindings, err := s.Kube.RbacV1().ClusterRoleBindings().List(ctx, sel)
	if err != nil {
		return results, s.APIError(err)
	}
	crbs := []runtime.Object{}
	if !slices.ContainsFunc(clusterBindings.Items, func(b rbacv1.ClusterRoleBinding) bool { return b.Name == grant.ClusterImportName(d.TargetName) }) {
		crbs = append(crbs, grant.ClusterImportRoleBinding(d.TargetName)) // unlabelled, if ever
	}
	for i := range clusterBindings.Items {
		crbs = append(crbs, typed(&clusterBindings.Items[i], rbacv1.SchemeGroupVersion.WithKind("ClusterRoleBinding")))
	}
	for _, obj := range crbs {
		if err := del(s, obj); err != nil {
			return results, err
		}
	}
	clusterRoles, err := s.Kube.RbacV1().ClusterRoles().List(ctx, sel)
	if err != nil {
		return results, s.APIError(err)
	}
	crs := []runtime.Object{}
	if !slices.ContainsFunc(clusterRoles.Items, func(r rbacv1.ClusterRole) bool { return r.Name == grant.ClusterImportName(d.TargetName) }) {
		crs = append(crs, grant.ClusterImportRole(d.TargetName))
	}
	for i := range clusterRoles.Items {
		crs = append(crs, typed(&clusterRoles.Items[i], rbacv1.SchemeGroupVersion.WithKind("ClusterRole")))
	}
	for _, obj := range crs {
		if err := del(s, obj); err != nil {
			return results, err
		}
	}
	// Namespaced: the named and namespace-wide grants, the self-renew grant, and the federated
	// grants (whom the target's pods may impersonate) and the importer's right to check them.
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

	// The target: imports from the source, then the credential, bootstrap's (with a token) or
	// federate's (federated); their secrets and ConfigMaps are collected.
	for i := range imps {
		if err := del(d.Target, typed(&imps[i], v1alpha1.GroupVersion.WithKind("ServiceAccountImport"))); err != nil {
			return results, err
		}
	}
	cm, err := d.federatedCredentialConfigMap(ctx)
	if err != nil {
		return results, err
	}
	if cm != nil {
		// Now rather than by the garbage collector, and shown by a dry run.
		if err := del(d.Target, typed(cm, corev1.SchemeGroupVersion.WithKind("ConfigMap"))); err != nil {
			return results, err
		}
	}
	cred := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: v1alpha1.DefaultNamespace, Name: d.SourceName}}
	if err := del(d.Target, typed(cred, v1alpha1.GroupVersion.WithKind("ServiceAccountImport"))); err != nil {
		return results, err
	}
	return results, nil
}

// federatedCredentialConfigMap is the ConfigMap of the target's federated cluster credential for
// the source (where the source is), nil if there is none: the credential's, as its owner
// reference or, without one (written before the credential had a UID), its label says.
func (d *Disconnect) federatedCredentialConfigMap(ctx context.Context) (*corev1.ConfigMap, error) {
	t := d.Target
	u, err := t.Dynamic.Resource(v1alpha1.Resource).Namespace(v1alpha1.DefaultNamespace).Get(ctx, d.SourceName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) || meta.IsNoMatchError(err): // no credential, or no import API
		return nil, nil
	case err != nil:
		return nil, t.APIError(err)
	}
	var cred v1alpha1.ServiceAccountImport
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &cred); err != nil {
		return nil, err
	}
	if !v1alpha1.IsFederated(&cred) {
		return nil, nil
	}
	cm, err := t.Kube.CoreV1().ConfigMaps(cred.Namespace).Get(ctx, v1alpha1.FederatedConfigMapName(cred.Name), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, t.APIError(err)
	}
	owned := slices.ContainsFunc(cm.OwnerReferences, func(r metav1.OwnerReference) bool { return r.UID == cred.UID })
	labelled := len(cm.OwnerReferences) == 0 && cm.Labels[v1alpha1.ImportNameKey] == v1alpha1.SecretLabelValue(cred.Name)
	if !owned && !labelled {
		return nil, nil
	}
	return cm, nil
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
		opts := metav1.PatchOptions{FieldManager: kube.FieldManager, DryRun: s.DryRunOpts(d.DryRun)}
		if !s.WritesNothing() { // a client dry run sends nothing
			if _, err := s.Kube.CoreV1().ServiceAccounts(sa.Namespace).Patch(ctx, sa.Name, types.MergePatchType, patch, opts); err != nil {
				return results, s.APIError(err)
			}
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
