package allow

import (
	"strings"
	"testing"
)

func TestParseRefs(t *testing.T) {
	refs, err := ParseRefs([]string{"default/pod-lister", "team-a/reader.v2"})
	if err != nil || len(refs) != 2 || refs[1].Namespace != "team-a" || refs[1].Name != "reader.v2" {
		t.Fatalf("got %v, %v", refs, err)
	}
	for _, bad := range []string{"pod-lister", "/x", "ns/", "a/b/c", "Default/x", "ns/X"} {
		if _, err := ParseRefs([]string{bad}); err == nil {
			t.Errorf("ParseRefs(%q) accepted", bad)
		}
	}
}

func TestGrantValidate(t *testing.T) {
	sa := []ServiceAccountRef{{Namespace: "default", Name: "pod-lister"}}
	tests := []struct {
		name    string
		g       Grant
		revoke  bool
		wantErr string
	}{
		{"named", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa}, false, ""},
		{"namespace-wide", Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"monitoring"}}, false, ""},
		{"into namespaces", Grant{ImportingCluster: "cluster1", ServiceAccounts: sa, IntoNamespaces: []string{"team-a", "*"}}, false, ""},
		{"nothing named", Grant{ImportingCluster: "cluster1"}, false, "name service accounts"},
		{"bad cluster", Grant{ImportingCluster: "Cluster_1", ServiceAccounts: sa}, false, "not a DNS-1123 label"},
		{"all is for disallow", Grant{ImportingCluster: "cluster1", AllServiceAccounts: true}, false, "is for disallow"},
		{"disallow all", Grant{ImportingCluster: "cluster1", AllServiceAccounts: true}, true, ""},
		{"into without names", Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"x"}, IntoNamespaces: []string{"a"}}, false, "applies to named"},
		{"bad namespace", Grant{ImportingCluster: "cluster1", NamespaceWide: []string{"Bad"}}, false, `namespace "Bad"`},
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
