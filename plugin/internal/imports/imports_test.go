package imports

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

func TestParseShort(t *testing.T) {
	tests := []struct {
		in, name, wantErr string
		spec              v1alpha1.ServiceAccountImportSpec
	}{
		{in: "cluster2/default/pod-lister", name: "cluster2-default-pod-lister", spec: v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister"}},
		{in: "cluster2/default", wantErr: "is not CLUSTER/NAMESPACE/SERVICEACCOUNT"},
		{in: "a/b/c/d", wantErr: "is not CLUSTER/NAMESPACE/SERVICEACCOUNT"},
		{in: "a//c", wantErr: "is not CLUSTER/NAMESPACE/SERVICEACCOUNT"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, spec, err := ParseShort(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || name != tt.name || !reflect.DeepEqual(spec, tt.spec) {
				t.Fatalf("got %q %+v %v", name, spec, err)
			}
		})
	}
}

func TestValidateSpec(t *testing.T) {
	ok := v1alpha1.ServiceAccountImportSpec{ClusterName: "cluster2", Namespace: "default", Name: "pod-lister"}
	with := func(f func(*v1alpha1.ServiceAccountImportSpec)) v1alpha1.ServiceAccountImportSpec {
		s := ok
		f(&s)
		return s
	}
	tests := []struct {
		name, importName string
		spec             v1alpha1.ServiceAccountImportSpec
		wantErr          string
	}{
		{"valid", "x", ok, ""},
		{"dotted names are fine", "a.b", with(func(s *v1alpha1.ServiceAccountImportSpec) { s.Name = "sa.with.dots" }), ""},
		{"import name", "X", ok, `import name "X"`},
		{"cluster name with underscores", "x", with(func(s *v1alpha1.ServiceAccountImportSpec) { s.ClusterName = "gke_p_z_c" }), `cluster "gke_p_z_c"`},
		{"namespace", "x", with(func(s *v1alpha1.ServiceAccountImportSpec) { s.Namespace = "a.b" }), `remote namespace "a.b"`},
		{"lifetime", "x", with(func(s *v1alpha1.ServiceAccountImportSpec) { s.ExpirationSeconds = ptr.To[int64](60) }), "token lifetime 1m0s: must be from 10m0s to 24h0m0s"},
		{"lifetime over a day", "x", with(func(s *v1alpha1.ServiceAccountImportSpec) { s.ExpirationSeconds = ptr.To[int64](1e9) }), "must be from 10m0s to 24h0m0s"},
		{"federated", "x", with(func(s *v1alpha1.ServiceAccountImportSpec) {
			s.Mode, s.ExpirationSeconds = v1alpha1.ModeFederated, ptr.To[int64](v1alpha1.MaxFederatedExpirationSeconds)
		}), ""},
		{"federated lifetime over an hour", "x", with(func(s *v1alpha1.ServiceAccountImportSpec) {
			s.Mode, s.ExpirationSeconds = v1alpha1.ModeFederated, ptr.To[int64](7200)
		}), "token lifetime 2h0m0s: a federated import's pod tokens live at most 1h0m0s"},
		{"federated audiences", "x", with(func(s *v1alpha1.ServiceAccountImportSpec) {
			s.Mode, s.Audiences = v1alpha1.ModeFederated, []string{"vault"}
		}), "audiences [vault]: a federated import's pod tokens have the remote cluster's federation audience (kubectl-mcsa.admiralty.io/cluster2) only"},
		{"unknown mode", "x", with(func(s *v1alpha1.ServiceAccountImportSpec) { s.Mode = "Secretless" }), `mode "Secretless": must be Token or Federated`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSpec(tt.importName, tt.spec)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
