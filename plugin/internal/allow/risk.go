package allow

import (
	"context"
	"errors"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// RiskFlag is the command's flag behind Grant.AcceptNamespaceWideRisk; the refusals name it as
// their way out.
const RiskFlag = "i-understand-namespace-wide-risk"

// refuse turns down, before anything is read or written, grants that would let the importing
// cluster act as far more than the workloads it runs. The importer namespace is refused outright:
// its service accounts are importer identities (and B's own controller, if B imports too), so
// with one the importing cluster could move laterally to all another cluster was granted. A
// system namespace as a whole is refused unless the operator accepts the risk.
func (g *Grant) refuse(source *kube.Clients) error {
	federated := ""
	if g.Federated {
		federated = " --" + FederatedFlag
	}
	instead := fmt.Sprintf("grant %s the service accounts it needs instead (`kubectl mcsa allow %s NAMESPACE/SERVICEACCOUNT%s%s`)",
		g.ImportingCluster, g.ImportingCluster, federated, source.ContextFlag())
	for _, ref := range g.ServiceAccounts {
		if ref.Namespace == grant.Namespace {
			return fmt.Errorf("refusing to grant %s: namespace %s holds the importers' identities, and with one %s could import all that another importing cluster was granted; %s",
				ref, grant.Namespace, g.ImportingCluster, instead)
		}
	}
	for _, ns := range g.NamespaceWide {
		switch {
		case ns == grant.Namespace:
			return fmt.Errorf("refusing --namespace-wide %s: it holds the importers' identities, and with them %s could import all that other importing clusters were granted; %s",
				ns, g.ImportingCluster, instead)
		case grant.IsSystemNamespace(ns) && !g.AcceptNamespaceWideRisk:
			return g.riskRefusal(source, ns, fmt.Sprintf("its service accounts run the cluster, some with cluster-admin-like rights, and %s could import them all", g.ImportingCluster))
		}
	}
	return nil
}

// riskRefusal refuses a namespace-wide grant that the operator may still confirm.
func (g *Grant) riskRefusal(source *kube.Clients, namespace, why string) error {
	return fmt.Errorf("refusing --namespace-wide %s: %s; grant only the service accounts it needs (`kubectl mcsa allow %s %s/SERVICEACCOUNT%s`), or, if %s is trusted as much as the administrators of %s, add --%s",
		namespace, why, g.ImportingCluster, namespace, source.ContextFlag(), g.ImportingCluster, source.Describe(), RiskFlag)
}

// review looks for broad rights among what the grant hands over: a namespace-wide grant of a
// namespace holding a service account with such rights is refused (or, accepted, warned about),
// and a named service account with such rights is warned about, as naming it is explicit. System
// namespaces are not reviewed: they are known to hold such service accounts, and were refused
// or accepted as such.
func (g *Grant) review(ctx context.Context, source *kube.Clients, u *ui.UI) error {
	r := &reviewer{source: source, u: u}
	for _, ns := range g.NamespaceWide {
		if grant.IsSystemNamespace(ns) {
			continue
		}
		ref, rights := r.namespace(ctx, ns)
		switch {
		case len(rights) == 0:
		case !g.AcceptNamespaceWideRisk:
			return g.riskRefusal(source, ns, fmt.Sprintf("its service account %s may %s in %s, and %s could import it (and any service account created there later)",
				ref, strings.Join(rights, ", "), source.Describe(), g.ImportingCluster))
		default:
			u.Warn("service account %s may %s in %s, and %s may import it (--%s)", ref, strings.Join(rights, ", "), source.Describe(), g.ImportingCluster, RiskFlag)
		}
	}
	for _, ref := range g.ServiceAccounts {
		if rights := r.rights(ctx, ref, true); len(rights) > 0 {
			user, _ := identity(ref)
			u.Warn("service account %s may %s in %s, and %s gets that with it: check with `kubectl auth can-i --list --as %s -n %s%s`, and prefer a service account with only what its workload needs",
				ref, strings.Join(rights, ", "), source.Describe(), g.ImportingCluster, user, ref.Namespace, source.ContextFlag())
		}
	}
	return nil
}

// broadRight is a right that makes a service account worth much more than the workload it runs:
// whoever imports the service account gets it, and with it most of the cluster.
type broadRight struct {
	what  string
	attrs authorizationv1.ResourceAttributes
}

// broadRights are asked in this order. The first (cluster-admin) implies the others, which are
// then not asked: each question is a request, and client-go's default rate limit is 5 a second.
var broadRights = []broadRight{
	{"do anything (cluster-admin)", authorizationv1.ResourceAttributes{Verb: "*", Group: "*", Resource: "*"}},
	{"read every secret", authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets"}},
	{"create pods in " + metav1.NamespaceSystem, authorizationv1.ResourceAttributes{Namespace: metav1.NamespaceSystem, Verb: "create", Resource: "pods"}},
	{"impersonate users", authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users"}},
}

// reviewer asks the API server what a service account may do. A service account's own
// SelfSubjectAccessReview would need its token, so it asks SubjectAccessReviews about it, made
// with the operator's credentials. When the operator may not create them, or the server does
// not serve them, it stops asking, silently: the review only adds warnings and refusals on top
// of grants the operator may write anyway, and must not stand in their way.
type reviewer struct {
	source *kube.Clients
	u      *ui.UI
	off    bool
}

// identity is what the API server authenticates a token of ref as. A SubjectAccessReview judges
// exactly the user and groups it is given, so the groups every service account gets are spelled
// out: rights bound to them (system:serviceaccounts:NAMESPACE…) count too.
func identity(ref ServiceAccountRef) (user string, groups []string) {
	return "system:serviceaccount:" + ref.Namespace + ":" + ref.Name,
		[]string{"system:serviceaccounts", "system:serviceaccounts:" + ref.Namespace, "system:authenticated"}
}

// rights returns which of broadRights ref has; with all false, only the first found.
func (r *reviewer) rights(ctx context.Context, ref ServiceAccountRef, all bool) []string {
	var found []string
	user, groups := identity(ref)
	for i, b := range broadRights {
		if r.off {
			return found
		}
		attrs := b.attrs
		ans, err := r.source.Kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, Groups: groups, ResourceAttributes: &attrs},
		}, metav1.CreateOptions{})
		if err != nil {
			r.off = true
			r.failed(err)
			return found
		}
		if ans.Status.Allowed {
			found = append(found, b.what)
			if i == 0 || !all {
				return found
			}
		}
	}
	return found
}

// namespace returns a service account of namespace with a broad right, and that right. Every
// review carries the namespace's groups, so rights given to all its service accounts, present
// and future, show on the first.
func (r *reviewer) namespace(ctx context.Context, namespace string) (ServiceAccountRef, []string) {
	if r.off {
		return ServiceAccountRef{}, nil
	}
	list, err := r.source.Kube.CoreV1().ServiceAccounts(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		r.failed(err)
		return ServiceAccountRef{}, nil
	}
	for _, sa := range list.Items {
		ref := ServiceAccountRef{Namespace: namespace, Name: sa.Name}
		if rights := r.rights(ctx, ref, false); len(rights) > 0 {
			return ref, rights
		}
	}
	return ServiceAccountRef{}, nil
}

// failed reports a review that could not be made, unless the operator may not make it or the
// server does not serve it: then there is nothing to tell, as the review is only a courtesy.
func (r *reviewer) failed(err error) {
	if apierrors.IsForbidden(err) || apierrors.IsNotFound(err) || meta.IsNoMatchError(err) || errors.Is(err, context.Canceled) {
		return
	}
	r.u.Warn("could not review the rights of the service accounts granted in %s: %v", r.source.Describe(), err)
}
