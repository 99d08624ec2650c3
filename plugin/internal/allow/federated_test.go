package allow

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// federatedState is what cluster2 holds of cluster1's federated grant of default/NAME: the
// groups its bindings name (the ClusterRoleBinding's after a '|', "-" when absent), the verbs of
// its Role and of its ClusterRole ("-" when absent).
func federatedState(t *testing.T, cl *kube.Clients, name string) (subjects, roleVerbs, onVerbs string) {
	t.Helper()
	ctx := context.Background()
	n := grant.FederatedName("cluster1", "default", name)
	groups := func(s []rbacv1.Subject) string {
		var g []string
		for _, x := range s {
			g = append(g, x.Name)
		}
		return strings.Join(g, ",")
	}
	verbs := func(rules []rbacv1.PolicyRule) string {
		var v []string
		for _, r := range rules {
			v = append(v, strings.Join(r.APIGroups, "+")+":"+strings.Join(r.Resources, "+")+":"+strings.Join(r.Verbs, "+"))
		}
		return strings.Join(v, " ")
	}
	subjects, roleVerbs, onVerbs = "-", "-", "-"
	if rb, err := cl.Kube.RbacV1().RoleBindings("default").Get(ctx, n, metav1.GetOptions{}); err == nil {
		subjects = groups(rb.Subjects)
	} else if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if crb, err := cl.Kube.RbacV1().ClusterRoleBindings().Get(ctx, n, metav1.GetOptions{}); err == nil {
		subjects += "|" + groups(crb.Subjects)
	} else if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if r, err := cl.Kube.RbacV1().Roles("default").Get(ctx, n, metav1.GetOptions{}); err == nil {
		roleVerbs = verbs(r.Rules)
	} else if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if cr, err := cl.Kube.RbacV1().ClusterRoles().Get(ctx, n, metav1.GetOptions{}); err == nil {
		onVerbs = verbs(cr.Rules)
	} else if !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	return subjects, roleVerbs, onVerbs
}

func TestAllowAndDisallowFederated(t *testing.T) {
	ctx := context.Background()
	c := source()
	cl := c.Clients()
	fed := func(sa string) string { return grant.FederatedName("cluster1", "default", sa) }
	objects := func(sa, role, binding, clusterRole, clusterBinding string) string {
		var l []string
		for _, o := range []struct{ kind, action string }{{"Role", role}, {"RoleBinding", binding}, {"ClusterRole", clusterRole}, {"ClusterRoleBinding", clusterBinding}} {
			if o.action != "" {
				l = append(l, o.kind+"/"+fed(sa)+" "+o.action)
			}
		}
		return strings.Join(l, "\n")
	}
	check := func(action string) string {
		return "\nRole/" + grant.FederatedCheckName("cluster1") + " " + action + "\nRoleBinding/" + grant.FederatedCheckName("cluster1") + " " + action
	}
	const (
		team     = "cluster1:system:serviceaccounts:team"
		teamB    = "cluster1:system:serviceaccounts:team-b"
		every    = "cluster1:system:serviceaccounts"
		asPL     = "authentication.k8s.io:serviceaccounts:impersonate:serviceaccount"
		legacy   = ":serviceaccounts:impersonate"
		listPods = ":pods:impersonate-on:serviceaccount:list"
		standard = "*:*:impersonate-on:serviceaccount:get+impersonate-on:serviceaccount:list+impersonate-on:serviceaccount:watch+impersonate-on:serviceaccount:create+impersonate-on:serviceaccount:update+impersonate-on:serviceaccount:patch+impersonate-on:serviceaccount:delete+impersonate-on:serviceaccount:deletecollection"
	)
	pl := refs("default/pod-lister")
	steps := []struct {
		name   string
		revoke bool
		g      Grant
		want   string // results, one line each
		// subjects, roleVerbs, onVerbs of pod-lister's grant, as federatedState reads them.
		subjects, roleVerbs, onVerbs string
		checkRole                    bool // the importer's check role is there
		warning, wantErr             string
	}{
		{name: "allow into one namespace, list pods only",
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true, IntoNamespaces: []string{"team"}, Verbs: []string{"list"}, Resources: []string{"pods"}},
			want:     objects("pod-lister", "created", "created", "created", "created") + check("created"),
			subjects: team + "|" + team, roleVerbs: asPL, onVerbs: listPods, checkRole: true},
		{name: "again: unchanged",
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true, IntoNamespaces: []string{"team"}, Verbs: []string{"list"}, Resources: []string{"pods"}},
			want:     objects("pod-lister", "unchanged", "unchanged", "unchanged", "unchanged") + check("unchanged"),
			subjects: team + "|" + team, roleVerbs: asPL, onVerbs: listPods, checkRole: true},
		{name: "again with another namespace and the defaults: replaced",
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true, IntoNamespaces: []string{"team-b"}},
			want:     objects("pod-lister", "unchanged", "configured", "configured", "configured") + check("unchanged"),
			subjects: teamB + "|" + teamB, roleVerbs: asPL, onVerbs: standard, checkRole: true},
		{name: "* is every namespace",
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true, IntoNamespaces: []string{"team", grant.AnyNamespace}},
			want:     objects("pod-lister", "unchanged", "configured", "unchanged", "configured") + check("unchanged"),
			subjects: every + "|" + every, roleVerbs: asPL, onVerbs: standard, checkRole: true},
		{name: "narrowing a grant to every namespace is refused", revoke: true,
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true, IntoNamespaces: []string{"team"}},
			subjects: every + "|" + every, roleVerbs: asPL, onVerbs: standard, checkRole: true,
			wantErr: "cluster1 may act as default/pod-lister from any of its namespaces (none is listed for it): there is no namespace to remove. To stop it, run `kubectl mcsa disallow cluster1 default/pod-lister --federated --context cluster2`"},
		{name: "unconstrained replaces the constrained grant",
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true, Unconstrained: true, IntoNamespaces: []string{"team", "team-b"}},
			want:     objects("pod-lister", "configured", "configured", "", "") + "\nClusterRoleBinding/" + fed("pod-lister") + " deleted\nClusterRole/" + fed("pod-lister") + " deleted" + check("unchanged"),
			subjects: team + "," + teamB, roleVerbs: legacy, onVerbs: "-", checkRole: true,
			warning: "Warning: --unconstrained-impersonation: cluster1 may do all that service account default/pod-lister may do in context \"cluster2\""},
		{name: "disallow one namespace of an unconstrained grant", revoke: true,
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true, IntoNamespaces: []string{"team", "elsewhere"}},
			want:     "RoleBinding/" + fed("pod-lister") + " configured",
			subjects: teamB, roleVerbs: legacy, onVerbs: "-", checkRole: true},
		{name: "constrained again, and a second service account, not there yet",
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister", "default/later"), Federated: true, IntoNamespaces: []string{"team", "team-b"}, Verbs: []string{"list"}, Resources: []string{"pods"}},
			want:     objects("pod-lister", "configured", "configured", "created", "created") + "\n" + objects("later", "created", "created", "created", "created") + check("unchanged"),
			subjects: team + "," + teamB + "|" + team + "," + teamB, roleVerbs: asPL, onVerbs: listPods, checkRole: true,
			warning: "Warning: service account default/later does not exist yet in context \"cluster2\": federated imports of it have its rights once it does"},
		{name: "disallow a namespace: both bindings narrowed, the verbs kept", revoke: true,
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true, IntoNamespaces: []string{"team"}},
			want:     "RoleBinding/" + fed("pod-lister") + " configured\nClusterRoleBinding/" + fed("pod-lister") + " configured",
			subjects: teamB + "|" + teamB, roleVerbs: asPL, onVerbs: listPods, checkRole: true},
		{name: "disallow the last namespace: the grant goes, the check stays for the other", revoke: true,
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true, IntoNamespaces: []string{"team-b"}},
			want:     "ClusterRoleBinding/" + fed("pod-lister") + " deleted\nClusterRole/" + fed("pod-lister") + " deleted\nRoleBinding/" + fed("pod-lister") + " deleted\nRole/" + fed("pod-lister") + " deleted",
			subjects: "-", roleVerbs: "-", onVerbs: "-", checkRole: true},
		{name: "disallow the other: the check goes too", revoke: true,
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/later", "default/pod-lister"), Federated: true},
			want:     "ClusterRoleBinding/" + fed("later") + " deleted\nClusterRole/" + fed("later") + " deleted\nRoleBinding/" + fed("later") + " deleted\nRole/" + fed("later") + " deleted\nRoleBinding/" + grant.FederatedCheckName("cluster1") + " deleted\nRole/" + grant.FederatedCheckName("cluster1") + " deleted",
			subjects: "-", roleVerbs: "-", onVerbs: "-"},
		{name: "disallow what is gone", revoke: true,
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true},
			subjects: "-", roleVerbs: "-", onVerbs: "-"},
		{name: "disallow namespaces of what is gone", revoke: true,
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, Federated: true, IntoNamespaces: []string{"team"}},
			subjects: "-", roleVerbs: "-", onVerbs: "-"},
		{name: "an importer identity is refused",
			g:        Grant{ImportingCluster: "cluster1", ServiceAccounts: refs(grant.Namespace + "/cluster3"), Federated: true},
			subjects: "-", roleVerbs: "-", onVerbs: "-",
			wantErr: "refusing to grant " + grant.Namespace + "/cluster3: namespace " + grant.Namespace + " holds the importers' identities"},
	}
	for _, s := range steps {
		if err := s.g.Validate(s.revoke); err != nil {
			t.Fatalf("%s: Validate: %v", s.name, err)
		}
		var out bytes.Buffer
		var results []kube.Result
		var err error
		if s.revoke {
			results, err = DisallowFederated(ctx, cl, s.g)
		} else {
			results, err = Federated(ctx, cl, s.g, ui.New(&out))
		}
		if s.wantErr == "" && err != nil || s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)) {
			t.Fatalf("%s: err = %v, want %q", s.name, err, s.wantErr)
		}
		if got := lines(results); got != s.want {
			t.Errorf("%s: results\n%s\nwant\n%s", s.name, got, s.want)
		}
		subjects, roleVerbs, onVerbs := federatedState(t, cl, "pod-lister")
		if subjects != s.subjects || roleVerbs != s.roleVerbs || onVerbs != s.onVerbs {
			t.Errorf("%s: grant\n%s\n%s\n%s\nwant\n%s\n%s\n%s", s.name, subjects, roleVerbs, onVerbs, s.subjects, s.roleVerbs, s.onVerbs)
		}
		_, err = cl.Kube.RbacV1().RoleBindings("default").Get(ctx, grant.FederatedCheckName("cluster1"), metav1.GetOptions{})
		if (err == nil) != s.checkRole {
			t.Errorf("%s: check binding there: %v, want %v", s.name, err == nil, s.checkRole)
		}
		if !strings.HasPrefix(strings.TrimSpace(out.String()), s.warning) || s.warning == "" && out.Len() > 0 {
			t.Errorf("%s: printed %q, want %q", s.name, out.String(), s.warning)
		}
	}
	// Nothing of cluster1's is left, and no token grant was ever written.
	for _, n := range c.Names() {
		if strings.Contains(n, "cluster1") {
			t.Errorf("left behind: %s", n)
		}
	}
}

// TestFederatedCheckRole: the check role lets cluster1's importer, as cluster2 knows it once it
// trusts cluster1's issuer, create LocalSubjectAccessReviews in the namespace, and nothing else.
func TestFederatedCheckRole(t *testing.T) {
	ctx := context.Background()
	c := source()
	cl := c.Clients()
	if _, err := Federated(ctx, cl, Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister"), Federated: true}, ui.New(&bytes.Buffer{})); err != nil {
		t.Fatal(err)
	}
	rb, err := cl.Kube.RbacV1().RoleBindings("default").Get(ctx, grant.FederatedCheckName("cluster1"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "cluster1:system:serviceaccount:multicluster-service-account:mcsa-controller"}}; !slices.Equal(rb.Subjects, want) {
		t.Errorf("check binding subjects %+v, want %+v", rb.Subjects, want)
	}
	r, err := cl.Kube.RbacV1().Roles("default").Get(ctx, grant.FederatedCheckName("cluster1"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Rules) != 1 || !slices.Equal(r.Rules[0].Resources, []string{"localsubjectaccessreviews"}) || !slices.Equal(r.Rules[0].Verbs, []string{"create"}) {
		t.Errorf("check role rules %+v", r.Rules)
	}
	// Another cluster's federated grant in the namespace keeps its own check role when
	// cluster1's goes.
	if _, err := Federated(ctx, cl, Grant{ImportingCluster: "cluster3", ServiceAccounts: refs("default/reader"), Federated: true}, ui.New(&bytes.Buffer{})); err != nil {
		t.Fatal(err)
	}
	if _, err := DisallowFederated(ctx, cl, Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister"), Federated: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Kube.RbacV1().Roles("default").Get(ctx, grant.FederatedCheckName("cluster1"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("cluster1's check role after its last grant: %v", err)
	}
	if _, err := cl.Kube.RbacV1().Roles("default").Get(ctx, grant.FederatedCheckName("cluster3"), metav1.GetOptions{}); err != nil {
		t.Errorf("cluster3's check role: %v", err)
	}
}

// TestAllowFederatedWarnsOfBroadRights: the risk review of named service accounts holds for
// federated grants too.
func TestAllowFederatedWarnsOfBroadRights(t *testing.T) {
	c, _ := riskySource(rights{sa + "default:admin-bot": {clusterAdmin}}, nil)
	var out bytes.Buffer
	if _, err := Federated(context.Background(), c.Clients(), Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/admin-bot"), Federated: true}, ui.New(&out)); err != nil {
		t.Fatal(err)
	}
	if want := "Warning: service account default/admin-bot may do anything (cluster-admin) in context \"cluster2\", and cluster1 gets that with it"; !strings.Contains(out.String(), want) {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
	// The federated refusal of an importer identity names the federated command.
	_, err := Federated(context.Background(), c.Clients(), Grant{ImportingCluster: "cluster1", ServiceAccounts: refs(grant.Namespace + "/cluster3"), Federated: true}, ui.New(&out))
	if err == nil || !strings.Contains(err.Error(), "`kubectl mcsa allow cluster1 NAMESPACE/SERVICEACCOUNT --federated --context cluster2`") {
		t.Errorf("refusal: %v", err)
	}
	// A token grant was not written.
	if _, err := c.Kube.RbacV1().Roles("default").Get(context.Background(), grant.ImportName("cluster1"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("a token grant was written: %v", err)
	}
}

func TestValidateFederated(t *testing.T) {
	sa := refs("default/pod-lister")
	tests := []struct {
		name    string
		g       Grant
		revoke  bool
		wantErr string
	}{
		{"federated", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, Federated: true, IntoNamespaces: []string{"team"}, Verbs: []string{"get", "list"}, Resources: []string{"pods", "apps/deployments"}}, false, ""},
		{"default policy is no policy", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, Federated: true, Policy: grant.Policy{MaxLifetime: grant.DefaultMaxTokenLifetime}}, false, ""},
		{"nothing named", Grant{ImportingCluster: "cluster1", Federated: true}, false, "a federated grant is for named service accounts only"},
		{"namespace-wide", Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"apps"}, Federated: true}, false, "--namespace-wide does not apply to --federated"},
		{"disallow namespace-wide", Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"apps"}, Federated: true}, true, "--namespace-wide does not apply to --federated"},
		{"disallow all", Grant{ImportingCluster: "cluster1", AllServiceAccounts: true, Federated: true}, true, "--all-service-accounts does not apply to --federated"},
		{"audiences", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, Federated: true, Policy: grant.Policy{Audiences: []string{"vault"}}}, false, "--audiences does not apply to --federated"},
		{"lifetime", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, Federated: true, Policy: grant.Policy{MaxLifetime: 2 * grant.DefaultMaxTokenLifetime}}, false, "--max-token-lifetime does not apply to --federated"},
		{"unconstrained with verbs", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, Federated: true, Unconstrained: true, Verbs: []string{"get"}}, false, "--verbs and --resources do not apply to it"},
		{"wildcard verb", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, Federated: true, Verbs: []string{"*"}}, false, `verb "*": name API verbs`},
		{"bad resource", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, Federated: true, Resources: []string{"apps/deployments/scale"}}, false, `resource "apps/deployments/scale"`},
		{"bad into namespace", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, Federated: true, IntoNamespaces: []string{"Team"}}, false, `namespace "Team"`},
		{"verbs without federated", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, Verbs: []string{"get"}}, false, "apply to --federated grants"},
		{"unconstrained without federated", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, Unconstrained: true}, false, "apply to --federated grants"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.g.Validate(tt.revoke)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
