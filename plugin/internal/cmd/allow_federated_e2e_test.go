package cmd

import (
	"context"
	"slices"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/allow"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// TestAllowFederatedEndToEnd: allow --federated writes, on a real API server, the RBAC that lets
// namespace team of cluster1 (as cluster2 would know its service accounts, once it trusts
// cluster1's issuer) act as apps/reader for listing pods only, and lets cluster1's importer check
// it; running it again changes nothing; disallow --federated removes it all. The real
// authorizer, asked with SubjectAccessReviews, judges the grant.
func TestAllowFederatedEndToEnd(t *testing.T) {
	f := fixture.ForTest(t, fixture.Options{Clusters: []string{"cluster2"}, Log: t.Logf})
	t.Setenv("KUBECACHEDIR", t.TempDir())
	ctx := context.Background()
	b := f.Cluster("cluster2").Clientset()
	if _, err := b.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "apps"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CoreV1().ServiceAccounts("apps").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mcsa := func(t *testing.T, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := run(t, f.Kubeconfig, args...)
		if err != nil {
			t.Fatalf("kubectl mcsa %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
		}
		return out, errOut
	}
	name := grant.FederatedName("cluster1", "apps", "reader")
	check := grant.FederatedCheckName("cluster1")
	// may asks cluster2's authorizer whether a service account of namespace ns of cluster1 may
	// do verb on resource (of group) named name in namespace apps.
	may := func(t *testing.T, ns, verb, group, resource, name string) bool {
		t.Helper()
		sar, err := b.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               grant.FederatedUser("cluster1", ns, "app"),
			Groups:             []string{grant.FederatedGroup("cluster1", ""), grant.FederatedGroup("cluster1", ns), "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "apps", Verb: verb, Group: group, Resource: resource, Name: name},
		}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	args := []string{"allow", "cluster1", "apps/reader", "--federated", "--into-namespaces", "team", "--verbs", "list", "--resources", "pods", "--context", "cluster2"}

	t.Run("allow --federated writes the grant and the check", func(t *testing.T) {
		out, errOut := mcsa(t, args...)
		for _, want := range []string{
			"role.rbac.authorization.k8s.io/" + name + " created", "rolebinding.rbac.authorization.k8s.io/" + name + " created",
			"clusterrole.rbac.authorization.k8s.io/" + name + " created", "clusterrolebinding.rbac.authorization.k8s.io/" + name + " created",
			"role.rbac.authorization.k8s.io/" + check + " created", "rolebinding.rbac.authorization.k8s.io/" + check + " created",
			"serviceaccount/apps/reader: namespaces [team] of cluster1 may now act as it (federated)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(errOut, "Warning") {
			t.Errorf("a warning for a service account with no rights:\n%s", errOut)
		}
		rb, err := b.RbacV1().RoleBindings("apps").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		team := []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: grant.FederatedGroup("cluster1", "team")}}
		if !slices.Equal(rb.Subjects, team) {
			t.Errorf("binding subjects %+v, want %+v", rb.Subjects, team)
		}
		crb, err := b.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
		if err != nil || !slices.Equal(crb.Subjects, team) {
			t.Errorf("cluster binding %+v, %v", crb, err)
		}
		cr, err := b.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{})
		if err != nil || len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].Verbs, []string{grant.ImpersonateOnVerb("list")}) || !slices.Equal(cr.Rules[0].Resources, []string{"pods"}) {
			t.Errorf("cluster role %+v, %v", cr, err)
		}
		for _, tc := range []struct {
			what                              string
			ns, verb, group, resource, target string
			want                              bool
		}{
			{"team may act as reader", "team", grant.ImpersonateServiceAccountVerb, grant.ImpersonationGroup, "serviceaccounts", "reader", true},
			{"team may not act as another service account", "team", grant.ImpersonateServiceAccountVerb, grant.ImpersonationGroup, "serviceaccounts", "default", false},
			{"another namespace may not act as reader", "other", grant.ImpersonateServiceAccountVerb, grant.ImpersonationGroup, "serviceaccounts", "reader", false},
			{"team may not impersonate the legacy way", "team", "impersonate", "", "serviceaccounts", "reader", false},
			{"list pods while acting", "team", grant.ImpersonateOnVerb("list"), "", "pods", "", true},
			{"not get pods", "team", grant.ImpersonateOnVerb("get"), "", "pods", "", false},
			{"not list secrets", "team", grant.ImpersonateOnVerb("list"), "", "secrets", "", false},
		} {
			if got := may(t, tc.ns, tc.verb, tc.group, tc.resource, tc.target); got != tc.want {
				t.Errorf("%s: allowed %v, want %v", tc.what, got, tc.want)
			}
		}
		// cluster1's importer may check the grant, with LocalSubjectAccessReviews in apps only.
		importer := allow.FederatedImporter("cluster1")
		for _, ns := range []string{"apps", "default"} {
			sar, err := b.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: importer, ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: "authorization.k8s.io", Resource: "localsubjectaccessreviews"},
			}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sar.Status.Allowed != (ns == "apps") {
				t.Errorf("the importer may check grants in %s: %v", ns, sar.Status.Allowed)
			}
		}
	})

	t.Run("allow --federated again changes nothing", func(t *testing.T) {
		out, _ := mcsa(t, args...)
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if strings.HasPrefix(l, "serviceaccount/") {
				continue
			}
			if !strings.HasSuffix(l, " unchanged") {
				t.Errorf("second allow changed something: %s", l)
			}
		}
	})

	t.Run("disallow --federated removes it all", func(t *testing.T) {
		out, _ := mcsa(t, "disallow", "cluster1", "apps/reader", "--federated", "--context", "cluster2")
		if n := strings.Count(out, " deleted"); n != 6 {
			t.Errorf("disallow deleted %d objects, want 6:\n%s", n, out)
		}
		gets := map[string]func() error{
			"role": func() error { _, err := b.RbacV1().Roles("apps").Get(ctx, name, metav1.GetOptions{}); return err },
			"rolebinding": func() error {
				_, err := b.RbacV1().RoleBindings("apps").Get(ctx, name, metav1.GetOptions{})
				return err
			},
			"clusterrole": func() error { _, err := b.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{}); return err },
			"clusterrolebinding": func() error {
				_, err := b.RbacV1().ClusterRoleBindings().Get(ctx, name, metav1.GetOptions{})
				return err
			},
			"check role": func() error { _, err := b.RbacV1().Roles("apps").Get(ctx, check, metav1.GetOptions{}); return err },
			"check rolebinding": func() error {
				_, err := b.RbacV1().RoleBindings("apps").Get(ctx, check, metav1.GetOptions{})
				return err
			},
		}
		for what, get := range gets {
			if err := get(); !apierrors.IsNotFound(err) {
				t.Errorf("%s after disallow: %v", what, err)
			}
		}
		if may(t, "team", grant.ImpersonateServiceAccountVerb, grant.ImpersonationGroup, "serviceaccounts", "reader") {
			t.Error("team may still act as reader")
		}
		if out, _ := mcsa(t, "disallow", "cluster1", "apps/reader", "--federated", "--context", "cluster2"); out != "" {
			t.Errorf("disallow of what is gone printed:\n%s", out)
		}
	})
}
