package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/config"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/podlister"
)

// isolate points the client at an empty mount root, no kubeconfig and no pod.
func isolate(t *testing.T) (root string) {
	t.Helper()
	dir := t.TempDir()
	root = filepath.Join(dir, "imports")
	t.Setenv(config.MountRootEnv, root)
	t.Setenv("KUBECONFIG", filepath.Join(dir, "no-kubeconfig"))
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	return root
}

func TestUsageAndNoCredentials(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		errHas   string
	}{
		{"argument", []string{"pods"}, 2, "takes no arguments"},
		{"bad interval", []string{"-loop", "-interval=0s"}, 2, "must be positive"},
		{"unknown flag", []string{"-x"}, 2, "flag provided but not defined"},
		{"no credentials at all", nil, 1, "generic-client: no service account import is mounted"},
		{"-all without imports", []string{"-all"}, 1, "generic-client: -all: no service account import is mounted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			var stdout, stderr bytes.Buffer
			if code := realMain(tt.args, &stdout, &stderr); code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(stderr.String(), tt.errHas) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.errHas)
			}
		})
	}
}

// TestListOnRealCluster lists pods with a kubeconfig, then with a mounted import, which wins.
func TestListOnRealCluster(t *testing.T) {
	c := fixture.ForTest(t, fixture.Options{Clusters: []string{"cluster1"}}).Cluster("cluster1")
	podlister.Create(t, c, "default", false, "local-pod")
	podlister.Create(t, c, "remote", true, "remote-a", "remote-b")
	podlister.Create(t, c, "locked", false)

	t.Run("once", func(t *testing.T) {
		tests := []struct {
			name       string
			args       []string
			kubeconfig bool
			imports    map[string]string // import name → namespace
			want       string
			wantCode   int
			errHas     string
		}{
			{name: "kubeconfig context", kubeconfig: true, want: "local-pod\n"},
			{name: "mounted import wins over the kubeconfig", kubeconfig: true,
				imports: map[string]string{"cluster1-remote-pod-lister": "remote"}, want: "remote-a\nremote-b\n"},
			{name: "several imports: an error, not the kubeconfig", kubeconfig: true,
				imports:  map[string]string{"a": "remote", "b": "remote"},
				wantCode: 1, errHas: "several service account imports are mounted"},
			{name: "denied: the import may not list pods", imports: map[string]string{"locked": "locked"},
				wantCode: 1, errHas: "forbidden"},
			{name: "-all: every import, sorted, each pod prefixed", args: []string{"-all"}, kubeconfig: true,
				imports: map[string]string{"b": "remote", "a": "remote"}, want: "a\tremote-a\na\tremote-b\nb\tremote-a\nb\tremote-b\n"},
			{name: "-all: one denied import fails the run", args: []string{"-all"},
				imports:  map[string]string{"a": "remote", "locked": "locked"},
				want:     "a\tremote-a\na\tremote-b\n",
				wantCode: 1, errHas: "forbidden"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				root := isolate(t)
				if tt.kubeconfig {
					t.Setenv("KUBECONFIG", c.Kubeconfig())
				}
				for name, ns := range tt.imports {
					podlister.Mount(t, c, ns, root, name)
				}
				var stdout, stderr bytes.Buffer
				code := realMain(tt.args, &stdout, &stderr)
				if code != tt.wantCode || stdout.String() != tt.want {
					t.Errorf("exit code %d, printed %q; want %d, %q (stderr %q)", code, stdout.String(), tt.wantCode, tt.want, stderr.String())
				}
				if !strings.Contains(stderr.String(), tt.errHas) {
					t.Errorf("stderr %q does not contain %q", stderr.String(), tt.errHas)
				}
			})
		}
	})

	// The loop ends on SIGTERM with a summary. The signal goes to the test process itself,
	// which realMain has subscribed to it by the time it prints.
	t.Run("loop until SIGTERM", func(t *testing.T) {
		tests := []struct {
			name     string
			args     []string
			imports  map[string]string
			waitFor  *regexp.Regexp // in the output before the signal
			summary  *regexp.Regexp
			wantCode int
		}{
			{name: "all calls succeed", imports: map[string]string{"remote": "remote"},
				waitFor:  regexp.MustCompile(`listed 2 pods in namespace remote \(successes=3 failures=0\)`),
				summary:  regexp.MustCompile(`(?m)^generic-client: summary: successes=([3-9]|\d\d+) failures=0$`),
				wantCode: 0},
			{name: "failures are counted", imports: map[string]string{"locked": "locked"},
				waitFor:  regexp.MustCompile(`forbidden.*\(successes=0 failures=3\)`),
				summary:  regexp.MustCompile(`(?m)^generic-client: summary: successes=0 failures=([3-9]|\d\d+)$`),
				wantCode: 1},
			{name: "-all: each import's list is a call", args: []string{"-all"}, imports: map[string]string{"a": "remote", "b": "remote"},
				waitFor:  regexp.MustCompile(`listed 2 pods in namespace remote with import b \(successes=4 failures=0\)`),
				summary:  regexp.MustCompile(`(?m)^generic-client: summary: successes=([4-9]|\d\d+) failures=0$`),
				wantCode: 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				root := isolate(t)
				for name, ns := range tt.imports {
					podlister.Mount(t, c, ns, root, name)
				}
				var out syncBuffer
				code := make(chan int, 1)
				go func() { code <- realMain(append([]string{"--loop", "-interval=50ms"}, tt.args...), &out, &out) }()
				err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
					return tt.waitFor.MatchString(out.String()), nil
				})
				if err != nil {
					t.Fatalf("waiting for %s: %v; output:\n%s", tt.waitFor, err, out.String())
				}
				if err := syscall.Kill(syscall.Getpid(), syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
				select {
				case got := <-code:
					if got != tt.wantCode {
						t.Errorf("exit code %d, want %d", got, tt.wantCode)
					}
				case <-time.After(time.Minute):
					t.Fatal("still running a minute after SIGTERM")
				}
				if !tt.summary.MatchString(out.String()) {
					t.Errorf("no summary matching %s in:\n%s", tt.summary, out.String())
				}
			})
		}
	})
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader in different goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
