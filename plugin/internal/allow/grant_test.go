package allow

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube/kubefake"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// source is cluster2, imported from, with service accounts default/pod-lister and
// default/reader; team-a has none.
func source() *kubefake.Cluster {
	c := kubefake.New("cluster2")
	c.Add(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "pod-lister", Namespace: "default"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "reader", Namespace: "default"}},
		grant.TokenPolicy([]string{"https://cluster2"}), // bootstrapped: the source enforces token policies
	)
	return c
}

func refs(s ...string) []ServiceAccountRef {
	r, err := ParseRefs(s)
	if err != nil {
		panic(err)
	}
	return r
}

// lines is what the command prints of results.
func lines(results []kube.Result) string {
	var s []string
	for _, r := range results {
		s = append(s, fmt.Sprintf("%s/%s %s", r.Object.GetKind(), r.Object.GetName(), r.Action))
	}
	return strings.Join(s, "\n")
}

func importedBy(t *testing.T, c *kubefake.Cluster, ns string) []string {
	t.Helper()
	r, err := c.Kube.RbacV1().Roles(ns).Get(context.Background(), grant.ImportName("cluster1"), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return grant.ImportedServiceAccounts(r)
}

func TestAllowAndDisallow(t *testing.T) {
	ctx := context.Background()
	c := source()
	cl := c.Clients()
	role, binding := "Role/"+grant.ImportName("cluster1"), "RoleBinding/"+grant.ImportName("cluster1")
	anchor := func(sa, action string) string { return "\nSecret/" + grant.AnchorName("cluster1", sa) + " " + action }
	policies := func(action string) string { return "\nConfigMap/" + grant.PoliciesName + " " + action }

	steps := []struct {
		name     string
		revoke   bool
		g        Grant
		want     string // results, one line each
		imported []string
		warning  string
		wantErr  string
		// policies are the entries of the token policies by service account (nil: not checked).
		policies map[string]string
	}{
		{name: "allow one", g: Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister")},
			want: role + " created\n" + binding + " created" + anchor("pod-lister", "created") + policies("created"), imported: []string{"pod-lister"},
			policies: map[string]string{"pod-lister": "cluster1 pod-lister 3600"}},
		{name: "allow it again", g: Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister")},
			want: role + " unchanged\n" + binding + " unchanged" + anchor("pod-lister", "unchanged") + policies("unchanged"), imported: []string{"pod-lister"},
			policies: map[string]string{"pod-lister": "cluster1 pod-lister 3600"}},
		{name: "allow adds, never narrows; its policy is the named one's", g: Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/reader"),
			Policy: grant.Policy{MaxLifetime: 15 * time.Minute, Audiences: []string{"vault"}}},
			want: role + " configured\n" + binding + " unchanged" + anchor("pod-lister", "unchanged") + anchor("reader", "created") + policies("configured"), imported: []string{"pod-lister", "reader"},
			policies: map[string]string{"pod-lister": "cluster1 pod-lister 3600", "reader": "cluster1 reader 900 vault"}},
		{name: "a service account not there yet is granted with a warning", g: Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/later")},
			want: role + " configured\n" + binding + " unchanged" + anchor("later", "created") + anchor("pod-lister", "unchanged") + anchor("reader", "unchanged") + policies("configured"), imported: []string{"later", "pod-lister", "reader"},
			policies: map[string]string{"later": "cluster1 later 3600", "pod-lister": "cluster1 pod-lister 3600", "reader": "cluster1 reader 900 vault"},
			warning:  "Warning: service account default/later does not exist yet in context \"cluster2\": imports of it will wait until it does"},
		{name: "disallow one", revoke: true, g: Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/later")},
			want: anchor("later", "deleted")[1:] + policies("configured") + "\n" + role + " configured", imported: []string{"pod-lister", "reader"},
			policies: map[string]string{"pod-lister": "cluster1 pod-lister 3600", "reader": "cluster1 reader 900 vault"}},
		{name: "disallow the rest", revoke: true, g: Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister", "default/reader")},
			want:     anchor("pod-lister", "deleted")[1:] + policies("configured") + anchor("reader", "deleted") + policies("configured") + "\n" + binding + " deleted\n" + role + " deleted",
			policies: map[string]string{}},
		{name: "disallow what is not granted", revoke: true, g: Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister")}},
		{name: "into-namespaces needs the service account", g: Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("team-a/ghost"), IntoNamespaces: []string{"team-x"}},
			want:    "Role/" + grant.ImportName("cluster1") + " created\nRoleBinding/" + grant.ImportName("cluster1") + " created" + anchor("ghost", "created") + policies("created"),
			wantErr: "service account team-a/ghost not found in context \"cluster2\": --into-namespaces annotates it, so create it first (`kubectl create serviceaccount ghost -n team-a --context cluster2`)"},
	}
	for _, s := range steps {
		var out bytes.Buffer
		var results []kube.Result
		var err error
		if s.revoke {
			results, err = Disallow(ctx, cl, s.g)
		} else {
			results, err = Allow(ctx, cl, s.g, ui.New(&out))
		}
		if s.wantErr == "" && err != nil || s.wantErr != "" && (err == nil || err.Error() != s.wantErr) {
			t.Fatalf("%s: err = %v, want %q", s.name, err, s.wantErr)
		}
		if got := lines(results); got != s.want {
			t.Errorf("%s: results\n%s\nwant\n%s", s.name, got, s.want)
		}
		if s.wantErr != "" {
			continue
		}
		if got := importedBy(t, c, "default"); strings.Join(got, ",") != strings.Join(s.imported, ",") {
			t.Errorf("%s: the grant imports %v, want %v", s.name, got, s.imported)
		}
		if s.policies != nil {
			want := map[string]string{}
			for sa, v := range s.policies {
				want[grant.PolicyKey("cluster1", sa)] = v
			}
			cm, err := c.Kube.CoreV1().ConfigMaps("default").Get(ctx, grant.PoliciesName, metav1.GetOptions{})
			if err != nil || !maps.Equal(cm.Data, want) {
				t.Errorf("%s: token policies %v (%v), want %v", s.name, cm.Data, err, want)
			}
		}
		if strings.TrimSpace(out.String()) != s.warning {
			t.Errorf("%s: printed %q, want %q", s.name, out.String(), s.warning)
		}
	}
}

func TestNamespaceWide(t *testing.T) {
	ctx := context.Background()
	c := source()
	cl := c.Clients()
	var out bytes.Buffer
	results, err := Allow(ctx, cl, Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"team-a"}}, ui.New(&out))
	name := grant.NamespaceImportName("cluster1")
	if err != nil || lines(results) != "Role/"+name+" created\nRoleBinding/"+name+" created" {
		t.Fatalf("allow --namespace-wide: %v\n%s", err, lines(results))
	}
	if !strings.Contains(out.String(), "cluster1 may import every service account of namespace team-a, present and future") {
		t.Errorf("no warning: %q", out.String())
	}
	r, err := c.Kube.RbacV1().Roles("team-a").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range r.Rules {
		if slices.Contains(rule.Resources, "configmaps") {
			if !slices.Equal(rule.ResourceNames, []string{grant.PoliciesName}) {
				t.Errorf("a namespace-wide grant reads other configmaps than its token policies: %+v", rule)
			}
		} else if len(rule.ResourceNames) != 0 {
			t.Errorf("a namespace-wide grant names service accounts: %+v", rule)
		}
	}
	results, err = Disallow(ctx, cl, Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"team-a"}})
	if err != nil || lines(results) != "RoleBinding/"+name+" deleted\nRole/"+name+" deleted" {
		t.Fatalf("disallow --namespace-wide: %v\n%s", err, lines(results))
	}
	if got := c.Names(); strings.Contains(strings.Join(got, " "), name) {
		t.Errorf("left behind: %v", got)
	}
}

func TestDisallowAllServiceAccounts(t *testing.T) {
	ctx := context.Background()
	c := source()
	c.Add(grant.ClusterImportRole("cluster1"), grant.ClusterImportRoleBinding("cluster1"))
	name := grant.ClusterImportName("cluster1")
	results, err := Disallow(ctx, c.Clients(), Grant{ImportingCluster: "cluster1", AllServiceAccounts: true})
	if err != nil || lines(results) != "ClusterRoleBinding/"+name+" deleted\nClusterRole/"+name+" deleted" {
		t.Fatalf("disallow --all-service-accounts: %v\n%s", err, lines(results))
	}
	if _, err := c.Kube.RbacV1().ClusterRoles().Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("cluster role still there: %v", err)
	}
}

func TestIntoNamespaces(t *testing.T) {
	ctx := context.Background()
	c := source()
	cl := c.Clients()
	annotation := func() string {
		sa, err := c.Kube.CoreV1().ServiceAccounts("default").Get(ctx, "pod-lister", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, ok := sa.Annotations[v1alpha1.AllowedImportersAnnotation]
		if !ok {
			return "<none>"
		}
		return v
	}
	pl := refs("default/pod-lister")
	steps := []struct {
		name    string
		revoke  bool
		cluster string
		into    []string
		want    string
		wantErr string
	}{
		{name: "disallow from a cluster not narrowed is refused", revoke: true, cluster: "cluster1", into: []string{"team-a"}, want: "<none>",
			wantErr: "cluster1 may import default/pod-lister into any of its namespaces (none is listed for it): there is no namespace to remove. To stop it importing default/pod-lister, run `kubectl mcsa disallow cluster1 default/pod-lister --context cluster2`"},
		{name: "allow into two namespaces", cluster: "cluster1", into: []string{"team-b", "team-a"}, want: "cluster1/team-a,cluster1/team-b"},
		{name: "allow into another adds", cluster: "cluster1", into: []string{"team-c"}, want: "cluster1/team-a,cluster1/team-b,cluster1/team-c"},
		// cluster3 is narrowed alongside, and cluster1's list never restricts it.
		{name: "another cluster narrowed alongside", cluster: "cluster3", into: []string{"*"}, want: "cluster1/team-a,cluster1/team-b,cluster1/team-c,cluster3/*"},
		{name: "disallow narrows", revoke: true, cluster: "cluster1", into: []string{"team-a", "team-c"}, want: "cluster1/team-b,cluster3/*"},
		// Unnamed, cluster1 would be unrestricted: its grant goes with its last namespace.
		{name: "disallow the last takes the grant away", revoke: true, cluster: "cluster1", into: []string{"team-b"}, want: "cluster3/*"},
		// An empty list restricts nobody: no annotation is left that reads as "nobody".
		{name: "the last entry removes the annotation", revoke: true, cluster: "cluster3", into: []string{"*"}, want: "<none>"},
	}
	for _, s := range steps {
		g := Grant{ImportingCluster: s.cluster, ServiceAccounts: pl, IntoNamespaces: s.into}
		var err error
		if s.revoke {
			_, err = Disallow(ctx, cl, g)
		} else {
			_, err = Allow(ctx, cl, g, ui.New(&bytes.Buffer{}))
		}
		if s.wantErr == "" && err != nil || s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)) {
			t.Fatalf("%s: %v, want %q", s.name, err, s.wantErr)
		}
		if got := annotation(); got != s.want {
			t.Errorf("%s: annotation %q, want %q", s.name, got, s.want)
		}
		if s.name == "disallow narrows" {
			// Narrowing the annotation keeps the RBAC grant.
			if got := importedBy(t, c, "default"); strings.Join(got, ",") != "pod-lister" {
				t.Errorf("grant after narrowing: %v", got)
			}
		}
	}
	if got := importedBy(t, c, "default"); len(got) != 0 {
		t.Errorf("cluster1's grant is left after its last namespace: %v", got)
	}
	if _, err := c.Kube.CoreV1().Secrets("default").Get(ctx, grant.AnchorName("cluster1", "pod-lister"), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("cluster1's anchor is left after its last namespace: %v", err)
	}

	// A typo in the annotation is never rewritten into a wider one.
	sa, _ := c.Kube.CoreV1().ServiceAccounts("default").Get(ctx, "pod-lister", metav1.GetOptions{})
	sa.Annotations = map[string]string{v1alpha1.AllowedImportersAnnotation: "cluster1/Team_A"}
	if _, err := c.Kube.CoreV1().ServiceAccounts("default").Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := Allow(ctx, cl, Grant{ImportingCluster: "cluster1", ServiceAccounts: pl, IntoNamespaces: []string{"team-a"}}, ui.New(&bytes.Buffer{}))
	if err == nil || !strings.Contains(err.Error(), "service account default/pod-lister: ") || !strings.Contains(err.Error(), "fix or remove the annotation first") {
		t.Errorf("allow over a bad annotation: %v", err)
	}
	if got := annotation(); got != "cluster1/Team_A" {
		t.Errorf("bad annotation rewritten to %q", got)
	}
}

func TestAllowForbidden(t *testing.T) {
	c := source()
	c.Kube.PrependReactor("get", "roles", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(rbacv1.Resource("roles"), grant.ImportName("cluster1"), fmt.Errorf("no"))
	})
	_, err := Allow(context.Background(), c.Clients(), Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister")}, ui.New(&bytes.Buffer{}))
	if err == nil || !strings.Contains(err.Error(), "ask a cluster admin for access, or check `kubectl auth can-i --list --context cluster2`") {
		t.Errorf("forbidden: %v", err)
	}
}

// TestAllowWarnsWhenUnenforced: a source bootstrapped before token policies does not enforce
// them itself; allow says so and names the command that installs the admission policy.
func TestAllowWarnsWhenUnenforced(t *testing.T) {
	c := kubefake.New("cluster2")
	c.Add(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "pod-lister", Namespace: "default"}})
	var out bytes.Buffer
	if _, err := Allow(context.Background(), c.Clients(), Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister")}, ui.New(&out)); err != nil {
		t.Fatal(err)
	}
	if want := "does not enforce token policies itself yet (ValidatingAdmissionPolicy mcsa-token-grants is missing): the importer keeps to them, but a leaked importer credential would not; run `kubectl mcsa bootstrap cluster1 cluster2` again"; !strings.Contains(out.String(), want) {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
}
