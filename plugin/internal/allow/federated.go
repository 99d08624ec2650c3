package allow

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// Federated grants (allow --federated, grant.FederatedGrant): the source trusts the importing
// cluster's service-account issuer (`kubectl mcsa federate`), and its RBAC lets service
// accounts of listed namespaces of the importing cluster impersonate a named service account,
// for listed verbs on listed resources. Nothing is minted or anchored: what the grant allows
// ends with its RBAC objects, within the authorizer's cache.

// Flags of federated grants.
const (
	FederatedFlag     = "federated"
	VerbsFlag         = "verbs"
	ResourcesFlag     = "resources"
	UnconstrainedFlag = "unconstrained-impersonation"
)

// NotFederated refuses a flag of token grants given with --federated.
func NotFederated(flag string) error {
	why := "federated imports use no token of this cluster: their pods present their own, issued by the importing cluster"
	if flag == "namespace-wide" {
		why = "a federated grant is for named service accounts (NAMESPACE/SERVICEACCOUNT)"
	}
	return fmt.Errorf("--%s does not apply to --%s: %s", flag, FederatedFlag, why)
}

// validateFederated checks a federated grant before anything is read or written.
func (g *Grant) validateFederated(revoke bool) error {
	switch {
	case len(g.NamespaceWide) > 0:
		return NotFederated("namespace-wide")
	case g.AllServiceAccounts:
		return fmt.Errorf("--all-service-accounts does not apply to --%s: name the service accounts (NAMESPACE/SERVICEACCOUNT)", FederatedFlag)
	case revoke:
		return nil
	case len(g.Policy.Audiences) > 0:
		return NotFederated(AudiencesFlag)
	case g.Policy.MaxLifetime != 0 && g.Policy.MaxLifetime != grant.DefaultMaxTokenLifetime:
		return NotFederated(MaxTokenLifetimeFlag)
	case g.Unconstrained && (len(g.Verbs) > 0 || len(g.Resources) > 0):
		return fmt.Errorf("--%s lets the importing cluster do all that the service account may do: --%s and --%s do not apply to it",
			UnconstrainedFlag, VerbsFlag, ResourcesFlag)
	}
	// The verbs and resources, checked as the grant will read them.
	if _, err := g.federated(ServiceAccountRef{Namespace: "default", Name: "check"}).Objects(); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "grant: "))
	}
	return nil
}

// federatedInto are the namespaces of the importing cluster a federated grant is for: none
// (every namespace) when IntoNamespaces is empty or names grant.AnyNamespace.
func (g *Grant) federatedInto() []string {
	if slices.Contains(g.IntoNamespaces, grant.AnyNamespace) {
		return nil
	}
	return g.IntoNamespaces
}

// federated is the federated grant of one named service account.
func (g *Grant) federated(ref ServiceAccountRef) grant.FederatedGrant {
	return grant.FederatedGrant{
		ImportingCluster: g.ImportingCluster, Namespace: ref.Namespace, ServiceAccount: ref.Name,
		IntoNamespaces: g.federatedInto(), Verbs: dedupe(g.Verbs), Resources: dedupe(g.Resources), Unconstrained: g.Unconstrained,
	}
}

// FederatedImporter is the user the source knows the importing cluster's importer as, once it
// trusts the importing cluster's issuer: the importer checks federated grants as that user.
func FederatedImporter(importingCluster string) string {
	return grant.FederatedUser(importingCluster, manifests.Namespace, manifests.ControllerServiceAccount)
}

// Federated writes, for each named service account, its federated grant, replacing any
// earlier one (its namespaces, verbs and resources are the ones given now), and, in each of
// their namespaces, the role that lets the importing cluster's importer check the grants there.
// It refuses and warns as Allow does.
func Federated(ctx context.Context, source *kube.Clients, g Grant, u *ui.UI) ([]kube.Result, error) {
	if !g.Federated {
		return nil, errors.New("allow: not a federated grant")
	}
	if err := g.refuse(source); err != nil {
		return nil, err
	}
	if err := g.review(ctx, source, u); err != nil {
		return nil, err
	}
	refs := dedupe(g.ServiceAccounts)
	if g.Unconstrained {
		for _, ref := range refs {
			u.Warn("--%s: %s may do all that service account %s may do in %s, as the legacy `impersonate` verb cannot be narrowed to verbs or resources; prefer constrained impersonation (Kubernetes 1.36 or later) with --%s and --%s",
				UnconstrainedFlag, g.ImportingCluster, ref, source.Describe(), VerbsFlag, ResourcesFlag)
		}
	}
	var results []kube.Result
	apply := func(obj runtime.Object) error {
		r, err := source.Apply(ctx, obj, false)
		if err == nil {
			results = append(results, r)
		}
		return err
	}
	del := deleter(ctx, source, &results)
	var namespaces []string
	for _, ref := range refs {
		objs, err := g.federated(ref).Objects()
		if err != nil {
			return results, err
		}
		for _, obj := range objs {
			if err := apply(obj.(runtime.Object)); err != nil {
				return results, err
			}
		}
		if g.Unconstrained {
			// Replacing a constrained grant: its cluster-wide half has no place in this one.
			name := grant.FederatedName(g.ImportingCluster, ref.Namespace, ref.Name)
			if err := del(clusterRoleBinding(name)); err != nil {
				return results, err
			}
			if err := del(clusterRole(name)); err != nil {
				return results, err
			}
		}
		if !slices.Contains(namespaces, ref.Namespace) {
			namespaces = append(namespaces, ref.Namespace)
		}
	}
	for _, ns := range namespaces {
		role, binding := grant.FederatedCheck(g.ImportingCluster, ns, FederatedImporter(g.ImportingCluster))
		if err := apply(role); err != nil {
			return results, err
		}
		if err := apply(binding); err != nil {
			return results, err
		}
	}
	for _, ref := range refs {
		_, err := source.Kube.CoreV1().ServiceAccounts(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			u.Warn("service account %s does not exist yet in %s: federated imports of it have its rights once it does", ref, source.Describe())
		case err != nil:
			return results, source.APIError(err)
		}
	}
	return results, nil
}

// DisallowFederated removes the federated grants of the named service accounts, or, with
// IntoNamespaces, only those namespaces of the importing cluster from them (its last namespace:
// the grant goes). The importer's check role goes from a namespace with no federated grant
// left for the importing cluster. What is already gone is no error.
func DisallowFederated(ctx context.Context, source *kube.Clients, g Grant) ([]kube.Result, error) {
	if !g.Federated {
		return nil, errors.New("disallow: not a federated grant")
	}
	var results []kube.Result
	del := deleter(ctx, source, &results)
	remove := func(ref ServiceAccountRef) error {
		name := grant.FederatedName(g.ImportingCluster, ref.Namespace, ref.Name)
		// Bindings before roles, cluster-wide first: the rights go first.
		for _, obj := range []runtime.Object{clusterRoleBinding(name), clusterRole(name), roleBinding(ref.Namespace, name), role(ref.Namespace, name)} {
			if err := del(obj); err != nil {
				return err
			}
		}
		return nil
	}
	var namespaces []string
	for _, ref := range dedupe(g.ServiceAccounts) {
		if !slices.Contains(namespaces, ref.Namespace) {
			namespaces = append(namespaces, ref.Namespace)
		}
		if len(g.IntoNamespaces) == 0 {
			if err := remove(ref); err != nil {
				return results, err
			}
			continue
		}
		r, err := g.narrowFederated(ctx, source, ref)
		results = append(results, r...)
		if errors.Is(err, errNoneLeft) {
			err = remove(ref)
		}
		if err != nil {
			return results, err
		}
	}
	for _, ns := range namespaces {
		left, err := federatedGrantsIn(ctx, source, g.ImportingCluster, ns)
		if err != nil {
			return results, err
		}
		if left {
			continue
		}
		name := grant.FederatedCheckName(g.ImportingCluster)
		if err := del(roleBinding(ns, name)); err != nil {
			return results, err
		}
		if err := del(role(ns, name)); err != nil {
			return results, err
		}
	}
	return results, nil
}

// errNoneLeft: narrowing removed the last namespace of a federated grant.
var errNoneLeft = errors.New("no namespace left")

// narrowFederated removes IntoNamespaces from the subjects of ref's federated grant, keeping
// its verbs and resources; errNoneLeft when none remains.
func (g *Grant) narrowFederated(ctx context.Context, source *kube.Clients, ref ServiceAccountRef) ([]kube.Result, error) {
	name := grant.FederatedName(g.ImportingCluster, ref.Namespace, ref.Name)
	rb, err := source.Kube.RbacV1().RoleBindings(ref.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil // not granted: nothing to narrow
	}
	if err != nil {
		return nil, source.APIError(err)
	}
	all, into := federatedSubjects(g.ImportingCluster, rb.Subjects)
	if all && !slices.Contains(g.IntoNamespaces, grant.AnyNamespace) {
		return nil, fmt.Errorf("%s may act as %s from any of its namespaces (none is listed for it): there is no namespace to remove. To stop it, run `kubectl mcsa disallow %s %s --%s%s`; to narrow it, list the namespaces it keeps (and the verbs and resources) with `kubectl mcsa allow %s %s --%s --into-namespaces NS,...%s`",
			g.ImportingCluster, ref, g.ImportingCluster, ref, FederatedFlag, source.ContextFlag(), g.ImportingCluster, ref, FederatedFlag, source.ContextFlag())
	}
	left := slices.DeleteFunc(into, func(ns string) bool { return slices.Contains(g.IntoNamespaces, ns) })
	if len(left) == 0 {
		return nil, errNoneLeft
	}
	// The bindings only: the roles, with the verbs and resources granted, stay as they are.
	_, err = source.Kube.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, source.APIError(err)
	}
	narrowed := grant.FederatedGrant{ImportingCluster: g.ImportingCluster, Namespace: ref.Namespace, ServiceAccount: ref.Name,
		IntoNamespaces: left, Unconstrained: apierrors.IsNotFound(err)}
	objs, err := narrowed.Objects()
	if err != nil {
		return nil, err
	}
	var results []kube.Result
	for _, obj := range objs {
		switch obj.(type) {
		case *rbacv1.RoleBinding, *rbacv1.ClusterRoleBinding:
			r, err := source.Apply(ctx, obj.(runtime.Object), false)
			if err != nil {
				return results, err
			}
			results = append(results, r)
		}
	}
	return results, nil
}

// federatedSubjects reads the namespaces of importingCluster that a federated binding's
// subjects name, and whether they include all of them.
func federatedSubjects(importingCluster string, subjects []rbacv1.Subject) (all bool, namespaces []string) {
	every := grant.FederatedGroup(importingCluster, "")
	for _, s := range subjects {
		if s.Kind != rbacv1.GroupKind {
			continue
		}
		if s.Name == every {
			all = true
		} else if ns, ok := strings.CutPrefix(s.Name, every+":"); ok && ns != "" {
			namespaces = append(namespaces, ns)
		}
	}
	return all, namespaces
}

// federatedGrantsIn tells whether namespace still holds a federated grant for importingCluster.
func federatedGrantsIn(ctx context.Context, source *kube.Clients, importingCluster, namespace string) (bool, error) {
	prefix := grant.FederatedName(importingCluster, namespace, "")
	for _, list := range []func() ([]string, error){
		func() ([]string, error) {
			l, err := source.Kube.RbacV1().Roles(namespace).List(ctx, metav1.ListOptions{LabelSelector: grant.Selector(importingCluster).String()})
			if err != nil {
				return nil, err
			}
			var names []string
			for _, r := range l.Items {
				names = append(names, r.Name)
			}
			return names, nil
		},
		func() ([]string, error) {
			l, err := source.Kube.RbacV1().RoleBindings(namespace).List(ctx, metav1.ListOptions{LabelSelector: grant.Selector(importingCluster).String()})
			if err != nil {
				return nil, err
			}
			var names []string
			for _, b := range l.Items {
				names = append(names, b.Name)
			}
			return names, nil
		},
	} {
		names, err := list()
		if err != nil {
			return false, source.APIError(err)
		}
		if slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, prefix) }) {
			return true, nil
		}
	}
	return false, nil
}

// deleter deletes objects, adding to results what it deleted (not what was already gone).
func deleter(ctx context.Context, source *kube.Clients, results *[]kube.Result) func(runtime.Object) error {
	return func(obj runtime.Object) error {
		r, err := source.Delete(ctx, obj, false)
		if err == nil && r.Action != kube.NotFound {
			*results = append(*results, r)
		}
		return err
	}
}

func role(namespace, name string) *rbacv1.Role {
	return &rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
}

func roleBinding(namespace, name string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}}
}

func clusterRole(name string) *rbacv1.ClusterRole {
	return &rbacv1.ClusterRole{TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func clusterRoleBinding(name string) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{TypeMeta: metav1.TypeMeta{APIVersion: rbacv1.SchemeGroupVersion.String(), Kind: "ClusterRoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// dedupe drops repeated elements, keeping the first of each in order.
func dedupe[T comparable](s []T) []T {
	var out []T
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
