package allow

import (
	"bytes"
	"context"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/ui"
)

// TestAnchorsFollowGrants: namespace-wide grants anchor the present service accounts; removing a
// namespace-wide grant keeps the anchors of service accounts still granted by name.
func TestAnchorsFollowGrants(t *testing.T) {
	ctx := context.Background()
	c := source()
	cl := c.Clients()
	exists := func(ns, sa string) bool {
		_, err := c.Kube.CoreV1().Secrets(ns).Get(ctx, grant.AnchorName("cluster1", sa), metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		return err == nil
	}
	var out bytes.Buffer
	if _, err := Allow(ctx, cl, Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"default"}, AcceptNamespaceWideRisk: true}, ui.New(&out)); err != nil {
		t.Fatal(err)
	}
	if !exists("default", "pod-lister") || !exists("default", "reader") {
		t.Fatalf("namespace-wide allow: anchors missing: %v", c.Names())
	}
	if !strings.Contains(out.String(), "`kubectl mcsa allow cluster1 default/SERVICEACCOUNT --context cluster2`") {
		t.Errorf("namespace-wide allow printed %q", out.String())
	}
	if _, err := Allow(ctx, cl, Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/reader")}, ui.New(&out)); err != nil {
		t.Fatal(err)
	}
	if _, err := Disallow(ctx, cl, Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"default"}}); err != nil {
		t.Fatal(err)
	}
	if exists("default", "pod-lister") || !exists("default", "reader") {
		t.Errorf("after disallow --namespace-wide: pod-lister's anchor %v (want gone), reader's %v (want kept)", exists("default", "pod-lister"), exists("default", "reader"))
	}
	c.Add(grant.ClusterCredentialAnchor("cluster1"))
	c.Add(grant.ClusterImportRole("cluster1"), grant.ClusterImportRoleBinding("cluster1"))
	if _, err := Allow(ctx, cl, Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"team-a"}}, ui.New(&out)); err != nil {
		t.Fatal(err)
	}
	c.Add(grant.Anchor("cluster1", "team-a", "x"), grant.Anchor("cluster3", "default", "pod-lister"))
	if _, err := Disallow(ctx, cl, Grant{ImportingCluster: "cluster1", AllServiceAccounts: true}); err != nil {
		t.Fatal(err)
	}
	if !exists("default", "reader") || !exists("team-a", "x") || !exists(grant.Namespace, "cluster1") {
		t.Errorf("disallow --all-service-accounts deleted anchors still granted, or the credential's: %v", c.Names())
	}
	if _, err := c.Kube.CoreV1().Secrets("default").Get(ctx, grant.AnchorName("cluster3", "pod-lister"), metav1.GetOptions{}); err != nil {
		t.Errorf("another cluster's anchor: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	c := source()
	cl := c.Clients()
	if _, err := Allow(ctx, cl, Grant{ImportingCluster: "cluster1", ServiceAccounts: refs("default/pod-lister")}, ui.New(&bytes.Buffer{})); err != nil {
		t.Fatal(err)
	}
	name := grant.AnchorName("cluster1", "pod-lister")
	before, err := c.Kube.CoreV1().Secrets("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	results, err := Revoke(ctx, cl, "cluster1", refs("default/pod-lister"), ui.New(&bytes.Buffer{}))
	if err != nil || lines(results) != "Secret/"+name+" deleted\nSecret/"+name+" created" {
		t.Fatalf("revoke: %v\n%s", err, lines(results))
	}
	after, err := c.Kube.CoreV1().Secrets("default").Get(ctx, name, metav1.GetOptions{})
	if err != nil || after.UID == before.UID || grant.AnchorServiceAccount(after, "cluster1") != "pod-lister" {
		t.Fatalf("anchor after revoke: %v, UID %s (before %s)", err, after.UID, before.UID)
	}

	// Without an anchor (a grant older than anchors): created, with a warning.
	if err := c.Kube.CoreV1().Secrets("default").Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if results, err := Revoke(ctx, cl, "cluster1", refs("default/pod-lister"), ui.New(&out)); err != nil || lines(results) != "Secret/"+name+" created" ||
		!strings.Contains(out.String(), "default/pod-lister had no anchor") {
		t.Fatalf("revoke without anchor: %v, %s, %q", err, lines(results), out.String())
	}

	for _, tt := range []struct{ ref, want string }{
		{"default/reader", "cluster1 may not import default/reader from context \"cluster2\": nothing to revoke (grant it with `kubectl mcsa allow cluster1 default/reader --context cluster2`)"},
		{grant.Namespace + "/cluster1", "is an importer identity, not a grant"},
	} {
		if _, err := Revoke(ctx, cl, "cluster1", refs(tt.ref), ui.New(&bytes.Buffer{})); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("revoke %s: %v, want %q", tt.ref, err, tt.want)
		}
	}
}
