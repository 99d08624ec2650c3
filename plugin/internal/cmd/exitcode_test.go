package cmd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// TestExitCodes: scripts can tell usage mistakes, connection problems and failed checks apart.
func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("NO_COLOR", "1")
	unreachable := filepath.Join(dir, "unreachable")
	if err := os.WriteFile(unreachable, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		kubeconfig string
		args       []string
		want       int
	}{
		{"help", "", []string{"--help"}, ExitOK},
		{"unknown command", "", []string{"nosuch"}, ExitUsage},
		{"unknown flag", "", []string{"get", "--bogus"}, ExitUsage},
		{"too many arguments", "", []string{"inspect", "a", "b"}, ExitUsage},
		{"bad flag value", "", []string{"allow", "c1", "ns/sa", "--max-token-lifetime", "soon"}, ExitUsage},
		{"no kubeconfig", filepath.Join(dir, "missing"), []string{"get"}, ExitConnection},
		{"unknown context", unreachable, []string{"get", "--context", "other"}, ExitConnection},
		{"API server unreachable", unreachable, []string{"get", "--request-timeout", "2s"}, ExitConnection},
		{"refused before connecting", "", []string{"allow", "c1"}, ExitError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kc := tt.kubeconfig
			if kc == "" {
				kc = filepath.Join(dir, "missing")
			}
			t.Setenv("KUBECONFIG", kc)
			streams, _, _, errOut := genericiooptions.NewTestIOStreams()
			root := NewRootCmd(streams)
			root.SetArgs(tt.args)
			markUsageErrors(root)
			if got := exitCode(root.Execute()); got != tt.want {
				t.Errorf("exit code %d, want %d (stderr %q)", got, tt.want, errOut.String())
			}
		})
	}
	for _, tc := range []struct {
		err  error
		want int
	}{
		{checkFailed{"2 check(s) failed"}, ExitCheckFailed},
		{errSilent, ExitCheckFailed},
		{errors.New("refused"), ExitError},
		{nil, ExitOK},
	} {
		if got := exitCode(tc.err); got != tc.want {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
