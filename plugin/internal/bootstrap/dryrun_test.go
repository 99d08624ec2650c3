package bootstrap

import (
	"slices"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// TestPolicyAudiences: a dry run reads back the audiences the token policy was written with.
func TestPolicyAudiences(t *testing.T) {
	for _, tt := range []struct {
		name      string
		variables []admissionregistrationv1.Variable
		want      []string
	}{
		{"one", grant.TokenPolicy([]string{"https://c2"}).Spec.Variables, []string{"https://c2"}},
		{"two", grant.TokenPolicy([]string{"https://c2", "api"}).Spec.Variables, []string{"https://c2", "api"}},
		{"none", nil, nil},
		{"unreadable", []admissionregistrationv1.Variable{{Name: "apiAudiences", Expression: "['x']"}}, nil},
	} {
		if got := PolicyAudiences(tt.variables); !slices.Equal(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
