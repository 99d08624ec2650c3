// Package allow writes and removes grants in a source cluster: which service accounts an
// importing cluster may import, optionally only into listed namespaces of that cluster. The
// shape of grants is package grant's.
package allow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// ServiceAccountRef is NAMESPACE/NAME of a service account of the source.
type ServiceAccountRef struct{ Namespace, Name string }

func (r ServiceAccountRef) String() string { return r.Namespace + "/" + r.Name }

// ParseRefs reads NAMESPACE/NAME arguments.
func ParseRefs(args []string) ([]ServiceAccountRef, error) {
	var refs []ServiceAccountRef
	for _, a := range args {
		ns, name, ok := strings.Cut(a, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("%q is not NAMESPACE/SERVICEACCOUNT", a)
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
		}
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return nil, fmt.Errorf("service account %q: %s", name, strings.Join(errs, "; "))
		}
		refs = append(refs, ServiceAccountRef{Namespace: ns, Name: name})
	}
	return refs, nil
}

// Flags of the token policy.
const (
	MaxTokenLifetimeFlag = "max-token-lifetime"
	AudiencesFlag        = "audiences"
)

// Grant is what to allow or disallow an importing cluster.
type Grant struct {
	// ImportingCluster is the cluster that imports (as named by bootstrap).
	ImportingCluster string
	// ServiceAccounts are granted (or revoked) by name.
	ServiceAccounts []ServiceAccountRef
	// NamespaceWide grants (or revokes) every service account of these namespaces.
	NamespaceWide []string
	// IntoNamespaces restricts the named service accounts to these namespaces of the
	// importing cluster (the allowed-importers annotation); on disallow, removes them from it.
	IntoNamespaces []string
	// AllServiceAccounts, on disallow only, revokes bootstrap's --allow-all-service-accounts.
	AllServiceAccounts bool
	// AcceptNamespaceWideRisk, on allow only, lets NamespaceWide name a system namespace, or a
	// namespace holding a service account with broad rights, which are refused otherwise.
	AcceptNamespaceWideRisk bool
	// Policy, on allow only, caps the lifetime and lists the audiences of the tokens minted under
	// the grant (of the named service accounts, or of every one of NamespaceWide).
	Policy grant.Policy

	// Federated grants (or revokes) the named service accounts to the importing cluster's
	// namespaces (IntoNamespaces, all if empty) for federated imports: impersonation by A's own
	// service accounts (grant.FederatedGrant) instead of tokens minted by A's importer.
	Federated bool
	// Verbs and Resources, with Federated on allow, are what the impersonation may be used for
	// (default grant.StandardVerbs on every resource); Unconstrained grants the legacy
	// `impersonate` verb instead, for servers without constrained impersonation.
	Verbs, Resources []string
	Unconstrained    bool
}

// policy is the grant's token policy: Policy, or the default if it is unset.
func (g *Grant) policy() grant.Policy {
	if g.Policy.MaxLifetime == 0 {
		return grant.Policy{MaxLifetime: grant.DefaultMaxTokenLifetime, Audiences: g.Policy.Audiences}
	}
	return g.Policy
}

// Validate checks the grant before anything is written.
func (g *Grant) Validate(revoke bool) error {
	if errs := validation.IsDNS1123Label(g.ImportingCluster); len(errs) > 0 {
		return fmt.Errorf("importing cluster %q is not a DNS-1123 label (the name given to bootstrap)", g.ImportingCluster)
	}
	if g.Federated && len(g.ServiceAccounts) == 0 && len(g.NamespaceWide) == 0 && !g.AllServiceAccounts {
		return errors.New("name service accounts as NAMESPACE/SERVICEACCOUNT: a federated grant is for named service accounts only")
	}
	if len(g.ServiceAccounts) == 0 && len(g.NamespaceWide) == 0 && !g.AllServiceAccounts {
		return errors.New("name service accounts as NAMESPACE/SERVICEACCOUNT, or whole namespaces with --namespace-wide")
	}
	if g.AllServiceAccounts && !revoke {
		return errors.New("--all-service-accounts is for disallow; to grant everything use `kubectl mcsa bootstrap --allow-all-service-accounts`")
	}
	if g.AcceptNamespaceWideRisk && len(g.NamespaceWide) == 0 {
		return fmt.Errorf("--%s applies to --namespace-wide", RiskFlag)
	}
	if len(g.IntoNamespaces) > 0 && len(g.ServiceAccounts) == 0 {
		return errors.New("--into-namespaces applies to named service accounts (NAMESPACE/SERVICEACCOUNT)")
	}
	switch {
	case g.Federated:
		if err := g.validateFederated(revoke); err != nil {
			return err
		}
	case len(g.Verbs) > 0 || len(g.Resources) > 0 || g.Unconstrained:
		return fmt.Errorf("--%s, --%s and --%s apply to --%s grants", VerbsFlag, ResourcesFlag, UnconstrainedFlag, FederatedFlag)
	case !revoke:
		if err := g.policy().Validate(); err != nil {
			return fmt.Errorf("--%s, --%s: %w", MaxTokenLifetimeFlag, AudiencesFlag, err)
		}
	}
	for _, ns := range append(slices.Clone(g.NamespaceWide), g.IntoNamespaces...) {
		if ns == grant.AnyNamespace {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("namespace %q: %s", ns, strings.Join(errs, "; "))
		}
	}
	return nil
}

// Allow writes the grant in the source, unless it is refused (see refuse and review); it warns
// about named service accounts with broad rights.
func Allow(ctx context.Context, source *kube.Clients, g Grant, u *ui.UI) ([]kube.Result, error) {
	if err := g.refuse(source); err != nil {
		return nil, err
	}
	if err := g.review(ctx, source, u); err != nil {
		return nil, err
	}
	var results []kube.Result
	apply := func(obj runtime.Object) error {
		r, err := source.Apply(ctx, obj, false)
		if err == nil {
			results = append(results, r)
		}
		return err
	}
	for ns, names := range byNamespace(g.ServiceAccounts) {
		named := slices.Clone(names)
		// Merge with what is granted already: allow adds, it never narrows.
		existing, err := source.Kube.RbacV1().Roles(ns).Get(ctx, grant.ImportName(g.ImportingCluster), metav1.GetOptions{})
		if err == nil {
			names = append(names, grant.ImportedServiceAccounts(existing)...)
		} else if !apierrors.IsNotFound(err) {
			return results, source.APIError(err)
		}
		role, err := grant.ImportRole(g.ImportingCluster, ns, names)
		if err != nil {
			return results, err
		}
		if err := apply(role); err != nil {
			return results, err
		}
		if err := apply(grant.ImportRoleBinding(g.ImportingCluster, ns)); err != nil {
			return results, err
		}
		// Every granted service account of the namespace, earlier grants' too (they may predate
		// anchors and policies): tokens are bound to them.
		granted := grant.ImportedServiceAccounts(role)
		for _, name := range granted {
			if err := apply(grant.Anchor(g.ImportingCluster, ns, name)); err != nil {
				return results, err
			}
		}
		r, err := grantPolicies(ctx, source, g.ImportingCluster, ns, named, granted, g.policy())
		results = append(results, r...)
		if err != nil {
			return results, err
		}
	}
	for _, ns := range g.NamespaceWide {
		u.Warn("%s may import every service account of namespace %s, present and future; each needs its anchor, created now for the present ones (for one created later: `%s`)",
			g.ImportingCluster, ns, grant.AllowCommand(g.ImportingCluster, source.ClusterName(), ns, "SERVICEACCOUNT"))
		role, err := grant.NamespaceImportRole(g.ImportingCluster, ns)
		if err != nil {
			return results, err
		}
		if err := apply(role); err != nil {
			return results, err
		}
		if err := apply(grant.NamespaceImportRoleBinding(g.ImportingCluster, ns)); err != nil {
			return results, err
		}
		sas, err := source.Kube.CoreV1().ServiceAccounts(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return results, source.APIError(err)
		}
		var present []string
		for _, sa := range sas.Items {
			if err := apply(grant.Anchor(g.ImportingCluster, ns, sa.Name)); err != nil {
				return results, err
			}
			present = append(present, sa.Name)
		}
		r, err := grantPolicies(ctx, source, g.ImportingCluster, ns, present, present, g.policy())
		results = append(results, r...)
		if err != nil {
			return results, err
		}
	}
	warnUnenforced(ctx, source, g.ImportingCluster, u)
	for _, ref := range g.ServiceAccounts {
		_, err := source.Kube.CoreV1().ServiceAccounts(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) && len(g.IntoNamespaces) > 0:
			return results, fmt.Errorf("service account %s not found in %s: --into-namespaces annotates it, so create it first (`kubectl create serviceaccount %s -n %s%s`)",
				ref, source.Describe(), ref.Name, ref.Namespace, source.ContextFlag())
		case apierrors.IsNotFound(err):
			u.Warn("service account %s does not exist yet in %s: imports of it will wait until it does", ref, source.Describe())
			continue
		case err != nil:
			return results, source.APIError(err)
		}
		if len(g.IntoNamespaces) > 0 {
			r, err := editAllowedImporters(ctx, source, ref, func(a grant.AllowedImporters) (grant.AllowedImporters, error) {
				return a.With(g.ImportingCluster, g.IntoNamespaces...), nil
			})
			if err != nil {
				return results, err
			}
			results = append(results, r)
		}
	}
	return results, nil
}

// Disallow removes the grant from the source, and the anchors of the service accounts it no
// longer grants: every token issued under it stops working within the API server's token cache
// (10 s), and the importer's next refresh fails (Forbidden, or GrantAnchorMissing).
func Disallow(ctx context.Context, source *kube.Clients, g Grant) ([]kube.Result, error) {
	var results []kube.Result
	del := func(obj runtime.Object) error {
		r, err := source.Delete(ctx, obj, false)
		if err == nil {
			results = append(results, r)
		}
		return err
	}
	// An anchor goes with its token policy.
	delAnchor := func(obj *corev1.Secret) error {
		r, err := source.Delete(ctx, obj, false)
		if err != nil {
			return err
		}
		if r.Action != kube.NotFound {
			results = append(results, r)
		}
		p, err := WritePolicies(ctx, source, obj.Namespace, nil, []string{grant.PolicyKey(g.ImportingCluster, grant.AnchorServiceAccount(obj, g.ImportingCluster))})
		if err == nil && p.Action == kube.Configured {
			results = append(results, p)
		}
		return err
	}
	if len(g.IntoNamespaces) > 0 {
		// Narrow the annotation; the RBAC grant stays while the cluster keeps a namespace.
		var ungrant []ServiceAccountRef
		for _, ref := range g.ServiceAccounts {
			left := true
			if _, err := editAllowedImporters(ctx, source, ref, func(a grant.AllowedImporters) (grant.AllowedImporters, error) {
				if !a.Names(g.ImportingCluster) {
					return nil, fmt.Errorf("%s may import %s into any of its namespaces (none is listed for it): there is no namespace to remove. To stop it importing %s, run `kubectl mcsa disallow %s %s%s`; to narrow it, list the namespaces it keeps with `kubectl mcsa allow %s %s --into-namespaces NS,...%s`",
						g.ImportingCluster, ref, ref, g.ImportingCluster, ref, source.ContextFlag(), g.ImportingCluster, ref, source.ContextFlag())
				}
				out := slices.DeleteFunc(slices.Clone(a), func(i grant.Importer) bool {
					return i.Cluster == g.ImportingCluster && slices.Contains(g.IntoNamespaces, i.Namespace)
				})
				left = out.Names(g.ImportingCluster)
				return out, nil
			}); err != nil {
				return results, err
			}
			if !left {
				ungrant = append(ungrant, ref)
			}
		}
		if len(ungrant) == 0 {
			return results, nil
		}
		// No namespace left: no longer named, the cluster would be unrestricted, so its grant goes.
		rest, err := Disallow(ctx, source, Grant{ImportingCluster: g.ImportingCluster, ServiceAccounts: ungrant})
		return append(results, rest...), err
	}
	for ns, names := range byNamespace(g.ServiceAccounts) {
		// Named, so revoked whatever else grants it: its tokens die with the anchor.
		for _, name := range names {
			if err := delAnchor(grant.Anchor(g.ImportingCluster, ns, name)); err != nil {
				return results, err
			}
		}
		existing, err := source.Kube.RbacV1().Roles(ns).Get(ctx, grant.ImportName(g.ImportingCluster), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return results, source.APIError(err)
		}
		remaining := slices.DeleteFunc(grant.ImportedServiceAccounts(existing), func(n string) bool { return slices.Contains(names, n) })
		if len(remaining) == 0 {
			if err := del(grant.ImportRoleBinding(g.ImportingCluster, ns)); err != nil {
				return results, err
			}
			role, _ := grant.ImportRole(g.ImportingCluster, ns, names)
			if err := del(role); err != nil {
				return results, err
			}
			continue
		}
		role, err := grant.ImportRole(g.ImportingCluster, ns, remaining)
		if err != nil {
			return results, err
		}
		r, err := source.Apply(ctx, role, false)
		if err != nil {
			return results, err
		}
		results = append(results, r)
	}
	for _, ns := range g.NamespaceWide {
		if err := del(grant.NamespaceImportRoleBinding(g.ImportingCluster, ns)); err != nil {
			return results, err
		}
		if err := del(&rbacv1.Role{TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
			ObjectMeta: metav1.ObjectMeta{Name: grant.NamespaceImportName(g.ImportingCluster), Namespace: ns}}); err != nil {
			return results, err
		}
		if err := deleteAnchors(ctx, source, g.ImportingCluster, ns, delAnchor); err != nil {
			return results, err
		}
	}
	if g.AllServiceAccounts {
		if err := del(grant.ClusterImportRoleBinding(g.ImportingCluster)); err != nil {
			return results, err
		}
		if err := del(grant.ClusterImportRole(g.ImportingCluster)); err != nil {
			return results, err
		}
		if err := deleteAnchors(ctx, source, g.ImportingCluster, "", delAnchor); err != nil {
			return results, err
		}
	}
	return results, nil
}

// editAllowedImporters rewrites a service account's allowed-importers annotation, with
// optimistic concurrency (the patch carries the resourceVersion read). The result's object is
// the service account with that annotation only (what is written), and source's dry run makes
// it dry.
func editAllowedImporters(ctx context.Context, source *kube.Clients, ref ServiceAccountRef, edit func(grant.AllowedImporters) (grant.AllowedImporters, error)) (kube.Result, error) {
	sa, err := source.Kube.CoreV1().ServiceAccounts(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return kube.Result{}, source.APIError(err)
	}
	current := grant.AllowedImporters{}
	v, annotated := sa.Annotations[v1alpha1.AllowedImportersAnnotation]
	if annotated {
		if current, err = grant.ParseAllowedImporters(v); err != nil {
			return kube.Result{}, fmt.Errorf("service account %s: %w; fix or remove the annotation first", ref, err)
		}
	}
	edited, err := edit(current)
	if err != nil {
		return kube.Result{}, err
	}
	// An empty list restricts nobody: remove the annotation rather than leave one that reads as
	// "nobody".
	var value *string
	if len(edited) > 0 {
		value = ptr.To(edited.String())
	}
	written := &corev1.ServiceAccount{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: ref.Namespace}}
	if value != nil {
		written.Annotations = map[string]string{v1alpha1.AllowedImportersAnnotation: *value}
	}
	u, err := kube.ToUnstructured(written)
	if err != nil {
		return kube.Result{}, err
	}
	res := kube.Result{Object: u, Action: kube.Configured, In: source}
	if (value == nil && !annotated) || (value != nil && annotated && *value == v) {
		res.Action = kube.Unchanged
	}
	if source.WritesNothing() {
		return res, nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": sa.ResourceVersion,
		"annotations":     map[string]*string{v1alpha1.AllowedImportersAnnotation: value},
	}})
	_, err = source.Kube.CoreV1().ServiceAccounts(ref.Namespace).Patch(ctx, ref.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: kube.FieldManager, DryRun: source.DryRunOpts(false)})
	return res, source.APIError(err)
}

func byNamespace(refs []ServiceAccountRef) map[string][]string {
	m := map[string][]string{}
	for _, r := range refs {
		m[r.Namespace] = append(m[r.Namespace], r.Name)
	}
	return m
}
