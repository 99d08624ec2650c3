package grant

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestIdentity(t *testing.T) {
	if got, want := Username("cluster1"), "system:serviceaccount:multicluster-service-account:cluster1"; got != want {
		t.Errorf("Username = %q, want %q", got, want)
	}
	sa := ImporterServiceAccount("cluster1")
	if sa.Namespace != Namespace || sa.Name != "cluster1" {
		t.Errorf("ImporterServiceAccount = %s/%s", sa.Namespace, sa.Name)
	}
	if !Selector("cluster1").Matches(labels.Set(sa.Labels)) {
		t.Errorf("Selector does not match the service account's labels %v", sa.Labels)
	}
	if Selector("cluster10").Matches(labels.Set(sa.Labels)) {
		t.Errorf("Selector of another cluster matches %v", sa.Labels)
	}
	if got := Subject("cluster1"); got != (rbacv1.Subject{Kind: "ServiceAccount", Namespace: Namespace, Name: "cluster1"}) {
		t.Errorf("Subject = %+v", got)
	}
}

func TestRoles(t *testing.T) {
	named, err := ImportRole("a", "ns", []string{"y", "x", "y"})
	if err != nil {
		t.Fatal(err)
	}
	nsWide, err := NamespaceImportRole("a", "ns")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		namespace string
		objName   string
		rules     []rbacv1.PolicyRule
		want      []rbacv1.PolicyRule
	}{{
		name:      "self-renew: its own token, nothing else",
		namespace: SelfRenewRole("a").Namespace, objName: SelfRenewRole("a").Name,
		rules: SelfRenewRole("a").Rules,
		want:  []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}, ResourceNames: []string{"a"}}},
	}, {
		name:      "CA reader: B's published CA bundle, nothing else",
		namespace: CAReaderRole("a").Namespace, objName: CAReaderRole("a").Name,
		rules: CAReaderRole("a").Rules,
		want:  []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}, ResourceNames: []string{"kube-root-ca.crt"}}},
	}, {
		name:      "named service accounts, sorted and deduplicated",
		namespace: named.Namespace, objName: named.Name,
		rules: named.Rules,
		want: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}, ResourceNames: []string{"x", "y"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}, ResourceNames: []string{"x", "y"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}, ResourceNames: []string{PoliciesName}},
		},
	}, {
		name:      "whole namespace",
		namespace: nsWide.Namespace, objName: nsWide.Name,
		rules: nsWide.Rules,
		want: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}, ResourceNames: []string{PoliciesName}},
		},
	}, {
		name:    "whole cluster",
		objName: ClusterImportRole("a").Name,
		rules:   ClusterImportRole("a").Rules,
		want: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}},
			{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}, ResourceNames: []string{PoliciesName}},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.rules, tt.want) {
				t.Errorf("rules = %+v, want %+v", tt.rules, tt.want)
			}
			for _, r := range tt.rules {
				for _, res := range r.Resources {
					if strings.Contains(res, "secret") {
						t.Errorf("a grant must never reach secrets: %+v", r)
					}
				}
			}
			if !strings.HasSuffix(tt.objName, ":a") {
				t.Errorf("name %q does not end with the importing cluster", tt.objName)
			}
		})
	}
	if named.Namespace != "ns" || nsWide.Namespace != "ns" || SelfRenewRole("a").Namespace != Namespace || CAReaderRole("a").Namespace != Namespace {
		t.Errorf("namespaces: named %q, namespace-wide %q, self %q, CA reader %q", named.Namespace, nsWide.Namespace, SelfRenewRole("a").Namespace, CAReaderRole("a").Namespace)
	}
}

func TestNamesAreDistinct(t *testing.T) {
	// A cluster whose name looks like another kind's prefix must not collide with it.
	names := map[string]bool{}
	for _, c := range []string{"a", "namespace-a", "all-a", "self-a", "namespace", "all"} {
		for _, n := range []string{SelfRenewName(c), CAReaderName(c), ImportName(c), NamespaceImportName(c), ClusterImportName(c)} {
			if names[n] {
				t.Errorf("name %q used twice", n)
			}
			names[n] = true
		}
	}
}

func TestImportRoleRefusesEmpty(t *testing.T) {
	for _, names := range [][]string{nil, {}, {""}} {
		if _, err := ImportRole("a", "ns", names); !errors.Is(err, ErrNoServiceAccounts) {
			t.Errorf("ImportRole(%q) error = %v, want ErrNoServiceAccounts", names, err)
		}
	}
	if _, err := NamespaceImportRole("a", Namespace); err == nil {
		t.Errorf("NamespaceImportRole(%s) must be refused: it holds importer identities", Namespace)
	}
}

func TestSystemNamespaces(t *testing.T) {
	tests := []struct {
		namespace string
		want      bool
	}{
		{"kube-system", true},
		{"kube-public", true},
		{"kube-node-lease", true},
		{"default", false},
		{"kube-system-extra", false},
		{Namespace, false}, // refused outright, not behind a confirmation
	}
	for _, tt := range tests {
		if got := IsSystemNamespace(tt.namespace); got != tt.want {
			t.Errorf("IsSystemNamespace(%q) = %v, want %v", tt.namespace, got, tt.want)
		}
	}
	// The list is a copy: a caller's edit must not change what is refused.
	SystemNamespaces()[0] = "default"
	if IsSystemNamespace("default") || !IsSystemNamespace("kube-system") {
		t.Error("editing the returned list changed the system namespaces")
	}
}

func TestBindings(t *testing.T) {
	tests := []struct {
		name    string
		ref     rbacv1.RoleRef
		subj    []rbacv1.Subject
		objName string
		wantRef string
	}{
		{"self", SelfRenewRoleBinding("a").RoleRef, SelfRenewRoleBinding("a").Subjects, SelfRenewRoleBinding("a").Name, SelfRenewName("a")},
		{"CA reader", CAReaderRoleBinding("a").RoleRef, CAReaderRoleBinding("a").Subjects, CAReaderRoleBinding("a").Name, CAReaderName("a")},
		{"named", ImportRoleBinding("a", "ns").RoleRef, ImportRoleBinding("a", "ns").Subjects, ImportRoleBinding("a", "ns").Name, ImportName("a")},
		{"namespace", NamespaceImportRoleBinding("a", "ns").RoleRef, NamespaceImportRoleBinding("a", "ns").Subjects, NamespaceImportRoleBinding("a", "ns").Name, NamespaceImportName("a")},
		{"cluster", ClusterImportRoleBinding("a").RoleRef, ClusterImportRoleBinding("a").Subjects, ClusterImportRoleBinding("a").Name, ClusterImportName("a")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ref.Name != tt.wantRef || tt.objName != tt.wantRef || tt.ref.APIGroup != rbacv1.GroupName {
				t.Errorf("binding %q refers to %+v, want role %q", tt.objName, tt.ref, tt.wantRef)
			}
			if len(tt.subj) != 1 || tt.subj[0] != Subject("a") {
				t.Errorf("subjects = %+v, want only %+v", tt.subj, Subject("a"))
			}
		})
	}
}

func TestImportedServiceAccounts(t *testing.T) {
	named, _ := ImportRole("a", "ns", []string{"b", "a"})
	nsWide, _ := NamespaceImportRole("a", "ns")
	tests := []struct {
		name string
		role *rbacv1.Role
		want []string
	}{
		{"named", named, []string{"a", "b"}},
		{"namespace-wide is not a named grant", nsWide, nil},
		{"self-renew is not an import grant", SelfRenewRole("a"), nil},
		{"the CA reader is not an import grant", CAReaderRole("a"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ImportedServiceAccounts(tt.role); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ImportedServiceAccounts = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	tests := []struct{ got, want string }{
		{BootstrapCommand("a", "b"), "kubectl mcsa bootstrap a b"},
		{AllowCommand("a", "b", "ns", "sa"), "kubectl mcsa allow a ns/sa --context b"},
		{AllowCommand("a", "b", "ns", "sa", "sb"), "kubectl mcsa allow a ns/sa ns/sb --context b"},
		{AllowIntoNamespacesCommand("a", "b", "ns", "sa", "x", "y"), "kubectl mcsa allow a ns/sa --into-namespaces x,y --context b"},
		{AllowNamespaceCommand("a", "b", "ns"), "kubectl mcsa allow a --namespace-wide ns --context b"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
