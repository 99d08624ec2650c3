package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFederateErrors: mistakes refused before anything is read from the clusters, which are
// unreachable here, and the unreachable clusters themselves.
func TestFederateErrors(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
contexts:
- {name: c1, context: {cluster: c, user: u}}
- {name: c2, context: {cluster: c, user: u}}
- {name: gke_proj_zone_c3, context: {cluster: c, user: u}}
users:
- name: u
  user: {token: x}
current-context: c1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	servers := []string{"--issuer-server", "https://c1.example:6443", "--source-server", "https://c2.example:6443", "--request-timeout", "2s"}
	tests := []struct {
		name string
		args []string
		want string
		code int
	}{
		{"one context", []string{"federate", "c1"}, "give both TARGET_CONTEXT and SOURCE_CONTEXT", ExitError},
		{"no context", []string{"federate"}, "`kubectl mcsa federate TARGET_CONTEXT SOURCE_CONTEXT`", ExitError},
		{"contexts twice", []string{"federate", "c1", "c2", "--source-context", "c2"}, "not both", ExitError},
		{"unknown context", []string{"federate", "c1", "nope"}, `context "nope"`, ExitConnection},
		{"bad dry run", []string{"federate", "c1", "c2", "--dry-run=maybe"}, `--dry-run must be "none", "client" or "server"`, ExitError},
		{"bad output", []string{"federate", "c1", "c2", "-o", "wide"}, "--output must be yaml or json", ExitError},
		{"no timeout", []string{"federate", "c1", "c2", "--timeout", "0s"}, "--wait=false", ExitError},
		{"same names", []string{"federate", "c1", "c2", "--target-name", "x", "--source-name", "x"}, "does not federate with itself", ExitError},
		{"bad issuer server", []string{"federate", "c1", "c2", "--issuer-server", "c1:6443"}, "--issuer-server", ExitError},
		{"context named after a cloud", append([]string{"federate", "c1", "gke_proj_zone_c3"}, servers...), "connect: connection refused", ExitConnection},
		{"unreachable", append([]string{"federate", "c1", "c2"}, servers...), "reading the service-account issuer of context \"c1\"", ExitConnection},
		{"unfederate bad dry run", []string{"unfederate", "c1", "c2", "--dry-run=maybe"}, `--dry-run must be`, ExitError},
		{"unfederate one context", []string{"unfederate", "c1"}, "give both TARGET_CONTEXT and SOURCE_CONTEXT", ExitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, err := run(t, kubeconfig, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q\n%s", err, tt.want, errOut)
			}
			if got := exitCode(err); got != tt.code {
				t.Errorf("exit code %d, want %d", got, tt.code)
			}
		})
	}
}

func TestFederateCompletion(t *testing.T) {
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: c1, context: {cluster: c}}, {name: c2, context: {cluster: c}}]
current-context: c1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "federate", ""}, []string{"c1", "c2"}},
		{[]string{"__complete", "unfederate", "c1", ""}, []string{"c1", "c2"}},
		{[]string{"__complete", "federate", "--dry-run="}, []string{"none", "client", "server"}},
		{[]string{"__complete", "federate", "-o", ""}, []string{"yaml", "json"}},
		{[]string{"__complete", "federate", "--source-context", ""}, []string{"c1", "c2"}},
	} {
		out, _, err := run(t, kubeconfig, tt.args...)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out, w+"\n") {
				t.Errorf("%v: no %s in\n%s", tt.args, w, out)
			}
		}
	}
}
