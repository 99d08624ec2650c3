package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/config"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/podlister"
)

// TestRun lists pods of a real cluster through mounted imports.
func TestRun(t *testing.T) {
	c := fixture.ForTest(t, fixture.Options{Clusters: []string{"cluster2"}}).Cluster("cluster2")
	podlister.Create(t, c, "remote", true, "nginx-b", "nginx-a")
	podlister.Create(t, c, "locked", false, "secret-pod")

	tests := []struct {
		name    string
		imports map[string]string // import name → remote namespace
		want    string
		errHas  []string
	}{
		{name: "the single import", imports: map[string]string{"cluster2-remote-pod-lister": "remote"},
			want: "nginx-a\nnginx-b\n"},
		{name: "no import", imports: map[string]string{},
			errHas: []string{"no service account import is mounted", "multicluster.admiralty.io/service-account-import.name"}},
		{name: "several imports", imports: map[string]string{"a": "remote", "b": "remote"},
			errHas: []string{"several service account imports are mounted", "(a, b)"}},
		{name: "denied: not allowed to list", imports: map[string]string{"cluster2-locked-pod-lister": "locked"},
			errHas: []string{"listing pods in namespace locked of " + c.Server, "forbidden"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "imports")
			t.Setenv(config.MountRootEnv, root)
			t.Setenv("KUBECONFIG", c.Kubeconfig()) // must not be used
			for name, ns := range tt.imports {
				podlister.Mount(t, c, ns, root, name)
			}
			var out bytes.Buffer
			err := run(context.Background(), &out)
			if tt.errHas != nil {
				if err == nil {
					t.Fatalf("no error; printed %q", out.String())
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("printed %q, want %q", out.String(), tt.want)
			}
		})
	}
}
