package manifests_test

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
)

var update = flag.Bool("update", false, "rewrite the generated RBAC tables of docs/security.md")

const (
	securityDoc = "../docs/security.md"
	rbacBegin   = "<!-- BEGIN GENERATED RBAC: `make docs` rewrites this table from the shipped roles -->"
	rbacEnd     = "<!-- END GENERATED RBAC -->"
)

// TestSecurityDocRBAC: docs/security.md states exactly what each identity may do: its table of
// rights is generated from the roles that ship (the rendered manifests in A, the grants the
// plugin writes in B), and this test fails when they drift apart.
func TestSecurityDocRBAC(t *testing.T) {
	var rows []string
	for _, r := range render(t).Resources() {
		kind := r.GetKind()
		if kind != "ClusterRole" && kind != "Role" {
			continue
		}
		b, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var role rbacv1.ClusterRole // a Role has the same fields
		if err := yaml.Unmarshal(b, &role); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row("A (install)", kind, r.GetNamespace(), r.GetName(), role.Rules))
	}
	named, err := grant.ImportRole("A", "NS", []string{"SA"})
	if err != nil {
		t.Fatal(err)
	}
	nsWide, err := grant.NamespaceImportRole("A", "NS")
	if err != nil {
		t.Fatal(err)
	}
	self := grant.SelfRenewRole("A")
	caReader := grant.CAReaderRole("A")
	all := grant.ClusterImportRole("A")
	fed, err := grant.FederatedGrant{ImportingCluster: "A", Namespace: "NS", ServiceAccount: "SA"}.Objects()
	if err != nil {
		t.Fatal(err)
	}
	fedWho, fedWhat := fed[0].(*rbacv1.Role), fed[2].(*rbacv1.ClusterRole)
	check, _ := grant.FederatedCheck("A", "NS", grant.FederatedUser("A", manifests.Namespace, manifests.ControllerServiceAccount))
	rows = append(rows,
		row("B (bootstrap)", "Role", self.Namespace, self.Name, self.Rules),
		row("B (bootstrap)", "Role", caReader.Namespace, caReader.Name, caReader.Rules),
		row("B (allow A NS/SA)", "Role", named.Namespace, named.Name, named.Rules),
		row("B (allow --namespace-wide NS)", "Role", nsWide.Namespace, nsWide.Name, nsWide.Rules),
		row("B (bootstrap --allow-all-service-accounts)", "ClusterRole", "", all.Name, all.Rules),
		row("B (allow A NS/SA --federated), for A's pods", "Role", fedWho.Namespace, fedWho.Name, fedWho.Rules),
		row("B (allow A NS/SA --federated), for A's pods", "ClusterRole", "", fedWhat.Name, fedWhat.Rules),
		row("B (allow A NS/SA --federated), for A's importer", "Role", check.Namespace, check.Name, check.Rules),
	)
	table := "| cluster | role | may |\n| --- | --- | --- |\n" + strings.Join(rows, "\n") + "\n"

	doc, err := os.ReadFile(securityDoc)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok1 := strings.Cut(string(doc), rbacBegin+"\n")
	_, after, ok2 := strings.Cut(rest, rbacEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s has no generated RBAC table between %q and %q", securityDoc, rbacBegin, rbacEnd)
	}
	want := before + rbacBegin + "\n" + table + rbacEnd + after
	if *update {
		if err := os.WriteFile(securityDoc, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(doc) != want {
		t.Errorf("the rights in %s differ from the shipped roles: run `make docs` and review the change; generated:\n%s", securityDoc, table)
	}
}

// row is one role's line: its rules as `verbs resources [names]`, one per line of the cell.
func row(cluster, kind, namespace, name string, rules []rbacv1.PolicyRule) string {
	where := kind + " `" + name + "`"
	if namespace != "" {
		where += " in `" + namespace + "`"
	}
	var may []string
	for _, r := range rules {
		resources := r.Resources
		if len(r.NonResourceURLs) > 0 {
			resources = r.NonResourceURLs
		}
		group := ""
		if len(r.APIGroups) > 0 && r.APIGroups[0] != "" {
			group = "." + strings.Join(r.APIGroups, ",")
		}
		s := fmt.Sprintf("%s `%s%s`", strings.Join(r.Verbs, ", "), strings.Join(resources, ","), group)
		if len(r.ResourceNames) > 0 {
			names := slices.Clone(r.ResourceNames)
			for i := range names {
				names[i] = "`" + names[i] + "`"
			}
			s += " named " + strings.Join(names, ", ")
		}
		may = append(may, s)
	}
	return "| " + cluster + " | " + where + " | " + strings.Join(may, "<br>") + " |"
}
