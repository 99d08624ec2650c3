package allow

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// rights are what B's authorizer allows, by user or group name.
type rights map[string][]authorizationv1.ResourceAttributes

var (
	clusterAdmin = authorizationv1.ResourceAttributes{Verb: "*", Group: "*", Resource: "*"}
	readSecrets  = authorizationv1.ResourceAttributes{Verb: "get", Resource: "secrets"}
	impersonate  = authorizationv1.ResourceAttributes{Verb: "impersonate", Resource: "users"}
	listPods     = authorizationv1.ResourceAttributes{Verb: "list", Resource: "pods"}
)

// allows is RBAC's matching, enough for the questions asked: a wildcard matches anything, and
// a right without a namespace holds in every namespace.
func (r rights) allows(spec authorizationv1.SubjectAccessReviewSpec) bool {
	q := spec.ResourceAttributes
	match := func(rule, asked string) bool { return rule == "*" || rule == asked }
	for _, subject := range append([]string{spec.User}, spec.Groups...) {
		for _, a := range r[subject] {
			if match(a.Verb, q.Verb) && match(a.Group, q.Group) && match(a.Resource, q.Resource) && (a.Namespace == "" || a.Namespace == q.Namespace) {
				return true
			}
		}
	}
	return false
}

// riskySource is cluster2 with the importer namespace and its identities, kube-system, and
// team-a whose ci service account may be given rights; default has admin-bot and pod-lister.
// Its authorizer answers SubjectAccessReviews with r, or fails them with err.
func riskySource(r rights, err error) (*kubefake.Cluster, *[]authorizationv1.SubjectAccessReviewSpec) {
	c := kubefake.New("cluster2")
	c.Add(grant.TokenPolicy([]string{"https://cluster2"}))
	for _, ns := range []string{"default", "team-a", "empty", grant.Namespace, "kube-system"} {
		c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	for _, ref := range refs("default/admin-bot", "default/pod-lister", "team-a/app", "team-a/ci", grant.Namespace+"/cluster3", "kube-system/default") {
		c.Add(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: ref.Name, Namespace: ref.Namespace}})
	}
	var asked []authorizationv1.SubjectAccessReviewSpec
	c.Kube.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SubjectAccessReview).DeepCopy()
		asked = append(asked, sar.Spec)
		if err != nil {
			return true, nil, err
		}
		sar.Status.Allowed = r.allows(sar.Spec)
		return true, sar, nil
	})
	return c, &asked
}

const (
	sa      = "system:serviceaccount:"
	instead = "grant cluster1 the service accounts it needs instead (`kubectl mcsa allow cluster1 NAMESPACE/SERVICEACCOUNT --context cluster2`)"
)

func confirm(ns string) string {
	return "; grant only the service accounts it needs (`kubectl mcsa allow cluster1 " + ns + "/SERVICEACCOUNT --context cluster2`), " +
		"or, if cluster1 is trusted as much as the administrators of context \"cluster2\", add --i-understand-namespace-wide-risk"
}

func TestAllowRefusesAndWarns(t *testing.T) {
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "authorization.k8s.io", Resource: "subjectaccessreviews"}, "", errors.New("no"))
	tests := []struct {
		name    string
		g       Grant
		rights  rights
		sarErr  error
		wantErr string
		// warnings are the lines printed, in order, but for the namespace-wide one
		// ("may import every service account…"), which is always there.
		warnings []string
		// asked is how many SubjectAccessReviews are made: each is a request.
		asked int
	}{{
		name:    "another importer's identity",
		g:       Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister", grant.Namespace+"/cluster3")},
		wantErr: "refusing to grant multicluster-service-account/cluster3: namespace multicluster-service-account holds the importers' identities, and with one cluster1 could import all that another importing cluster was granted; " + instead,
	}, {
		name:    "the importer namespace as a whole, even when accepting risks",
		g:       Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"team-a", grant.Namespace}, AcceptNamespaceWideRisk: true},
		wantErr: "refusing --namespace-wide multicluster-service-account: it holds the importers' identities, and with them cluster1 could import all that other importing clusters were granted; " + instead,
	}, {
		name:    "kube-system",
		g:       Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"kube-system"}},
		wantErr: "refusing --namespace-wide kube-system: its service accounts run the cluster, some with cluster-admin-like rights, and cluster1 could import them all" + confirm("kube-system"),
	}, {
		name:    "kube-public",
		g:       Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"team-a", "kube-public"}},
		wantErr: "refusing --namespace-wide kube-public: its service accounts run the cluster, some with cluster-admin-like rights, and cluster1 could import them all" + confirm("kube-public"),
	}, {
		name:    "kube-node-lease",
		g:       Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"kube-node-lease"}},
		wantErr: "refusing --namespace-wide kube-node-lease: its service accounts run the cluster, some with cluster-admin-like rights, and cluster1 could import them all" + confirm("kube-node-lease"),
	}, {
		name:  "kube-system, accepted, is not reviewed",
		g:     Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"kube-system"}, AcceptNamespaceWideRisk: true},
		asked: 0,
	}, {
		name:    "a namespace with a cluster admin",
		g:       Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"team-a"}},
		rights:  rights{sa + "team-a:ci": {clusterAdmin}},
		wantErr: "refusing --namespace-wide team-a: its service account team-a/ci may do anything (cluster-admin) in context \"cluster2\", and cluster1 could import it (and any service account created there later)" + confirm("team-a"),
		asked:   5, // app: 4 denied; ci: cluster-admin
	}, {
		name:    "a namespace whose every service account may read secrets",
		g:       Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"team-a"}},
		rights:  rights{"system:serviceaccounts:team-a": {readSecrets}},
		wantErr: "refusing --namespace-wide team-a: its service account team-a/app may read every secret in context \"cluster2\", and cluster1 could import it (and any service account created there later)" + confirm("team-a"),
		asked:   2, // app: cluster-admin? no; secrets? yes
	}, {
		name:     "a namespace with a cluster admin, accepted",
		g:        Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"team-a"}, AcceptNamespaceWideRisk: true},
		rights:   rights{sa + "team-a:ci": {clusterAdmin}},
		warnings: []string{"service account team-a/ci may do anything (cluster-admin) in context \"cluster2\", and cluster1 may import it (--i-understand-namespace-wide-risk)"},
		asked:    5, // app: 4 denied; ci: cluster-admin
	}, {
		name:   "a namespace without broad rights",
		g:      Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"team-a"}},
		rights: rights{sa + "team-a:ci": {listPods}, sa + "default:admin-bot": {clusterAdmin}},
		asked:  8,
	}, {
		name:  "a namespace without service accounts",
		g:     Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"empty"}},
		asked: 0,
	}, {
		name:   "a named cluster admin is granted, with a warning",
		g:      Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/admin-bot", "default/pod-lister")},
		rights: rights{sa + "default:admin-bot": {clusterAdmin}},
		warnings: []string{"service account default/admin-bot may do anything (cluster-admin) in context \"cluster2\", and cluster1 gets that with it: " +
			"check with `kubectl auth can-i --list --as system:serviceaccount:default:admin-bot -n default --context cluster2`, and prefer a service account with only what its workload needs"},
		asked: 5, // admin-bot: the first answers all; pod-lister: 4 denied
	}, {
		name:   "every broad right of a named service account is told",
		g:      Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister")},
		rights: rights{"system:serviceaccounts": {impersonate}, sa + "default:pod-lister": {readSecrets, listPods}},
		warnings: []string{"service account default/pod-lister may read every secret, impersonate users in context \"cluster2\", and cluster1 gets that with it: " +
			"check with `kubectl auth can-i --list --as system:serviceaccount:default:pod-lister -n default --context cluster2`, and prefer a service account with only what its workload needs"},
		asked: 4,
	}, {
		name:   "the operator may not review: granted without a word",
		g:      Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/admin-bot", "default/pod-lister"), NamespaceWide: []string{"team-a"}},
		sarErr: forbidden,
		asked:  1, // the first refusal stops the review
	}, {
		name:     "a review that fails otherwise is told, and the grant written",
		g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/admin-bot")},
		sarErr:   apierrors.NewInternalError(errors.New("etcd is away")),
		warnings: []string{"could not review the rights of the service accounts granted in context \"cluster2\": Internal error occurred: etcd is away"},
		asked:    1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, asked := riskySource(tt.rights, tt.sarErr)
			before := c.Names()
			var out bytes.Buffer
			results, err := Allow(context.Background(), c.Clients(), tt.g, ui.New(&out))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v\nwant %s", err, tt.wantErr)
				}
				if len(results) != 0 || !slices.Equal(c.Names(), before) {
					t.Errorf("a refused grant wrote %s", lines(results))
				}
				for _, a := range c.Kube.Actions() {
					if a.GetVerb() != "create" && a.GetVerb() != "list" {
						t.Errorf("a refused grant made a %s of %s", a.GetVerb(), a.GetResource().Resource)
					}
				}
			} else if err != nil {
				t.Fatal(err)
			} else if len(results) == 0 {
				t.Error("nothing granted")
			}
			var warnings []string
			for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				if l != "" && !strings.Contains(l, "may import every service account of namespace") {
					warnings = append(warnings, strings.TrimPrefix(l, "Warning: "))
				}
			}
			if !slices.Equal(warnings, tt.warnings) {
				t.Errorf("printed\n%s\nwant warnings\n%s", strings.Join(warnings, "\n"), strings.Join(tt.warnings, "\n"))
			}
			if len(*asked) != tt.asked {
				t.Errorf("%d SubjectAccessReviews, want %d: %+v", len(*asked), tt.asked, *asked)
			}
			for _, spec := range *asked {
				ns := strings.Split(spec.User, ":")[2]
				if !slices.Equal(spec.Groups, []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}) {
					t.Errorf("review of %s without the service accounts' groups: %v", spec.User, spec.Groups)
				}
			}
		})
	}
}

// TestRefusalsNeedNoServer: the static refusals come before any request, so that nothing is
// half-written and the refusal does not depend on what the server answers.
func TestRefusalsNeedNoServer(t *testing.T) {
	for _, g := range []Grant{
		{ImportingCluster: "cluster1", ServiceAccounts: refs(grant.Namespace + "/cluster1")},
		{ImportingCluster: "cluster1", NamespaceWide: []string{grant.Namespace}},
		{ImportingCluster: "cluster1", NamespaceWide: []string{"kube-system"}},
	} {
		c, _ := riskySource(nil, nil)
		if _, err := Allow(context.Background(), c.Clients(), g, ui.New(&bytes.Buffer{})); err == nil || !strings.HasPrefix(err.Error(), "refusing ") {
			t.Errorf("%+v: err = %v", g, err)
		}
		if a := c.Kube.Actions(); len(a) != 0 {
			t.Errorf("%+v: %d requests before refusing", g, len(a))
		}
	}
}
