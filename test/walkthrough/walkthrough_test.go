package walkthrough_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/node"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/walkthrough"
)

// artifactsEnv passes the directory of what TestMain built to the runs inside the sandbox.
const artifactsEnv = "MCSA_WALKTHROUGH_ARTIFACTS"

// soakEnv sets how many kubelet rotations the federated client must go through (`make soak`: 3;
// 0 skips that client, for quicker runs while developing).
const soakEnv = "MCSA_SOAK_KUBELET_ROTATIONS"

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The first run of the binary builds the binaries and images while the module proxy is
	// reachable; the runs inside the sandbox (which has no network) inherit the directory.
	if !testing.Short() && os.Getenv(artifactsEnv) == "" {
		dir, err := os.MkdirTemp("", "mcsa-walkthrough-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		began := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		_, err = walkthrough.Build(ctx, dir)
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "walkthrough: plugin, controller, clients and images built in %s\n", time.Since(began).Round(100*time.Millisecond))
		if err := os.Setenv(artifactsEnv, dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return node.RunInNetns(m)
}

// TestWalkthrough runs the scenario on a real node: the controller and the webhook as pods
// installed by `kubectl mcsa install`, the original getting-started and its three checks, the
// import rotated under load, and a pod with imports from two clusters. The machine (here, the
// sandbox; the host is compared by RunInNetns) must be as before afterwards.
func TestWalkthrough(t *testing.T) {
	node.Require(t)
	node.ExpectClean(t)
	scenario(t, true)
}

// TestWalkthroughWithoutNode runs the playground's variant for machines without a node: three
// control planes, the controller as a local process, no pods.
func TestWalkthroughWithoutNode(t *testing.T) {
	controlplane.SkipIfShort(t)
	scenario(t, false)
}

func scenario(t *testing.T, realNode bool) {
	// The federated client waits for the kubelet to rotate its token (about 8 minutes each).
	rotations := 1
	if n, err := strconv.Atoi(os.Getenv(soakEnv)); err == nil && n >= 0 {
		rotations = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute+time.Duration(rotations)*10*time.Minute)
	defer cancel()
	began := time.Now()
	env, err := walkthrough.Start(ctx, walkthrough.Options{
		Dir:              t.TempDir(),
		Artifacts:        walkthrough.Artifacts{Dir: os.Getenv(artifactsEnv)},
		RealNode:         realNode,
		Log:              t.Logf,
		KubeletRotations: rotations,
	})
	t.Cleanup(func() {
		began := time.Now()
		if err := env.Stop(); err != nil {
			t.Error(err)
		}
		t.Logf("clusters stopped in %s", time.Since(began).Round(100*time.Millisecond))
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("clusters ready in %s", time.Since(began).Round(100*time.Millisecond))

	out := &testWriter{}
	w := walkthrough.New(env, out)
	for _, p := range w.Parts() {
		ok := t.Run(p.Name, func(t *testing.T) {
			out.set(t)
			defer out.set(nil)
			if err := p.Run(ctx); err != nil {
				t.Fatal(err)
			}
		})
		if !ok {
			var b bytes.Buffer
			env.Diagnose(ctx, &b)
			t.Log(b.String())
			break
		}
	}
	var b bytes.Buffer
	w.PrintTimings(&b)
	t.Logf("steps:\n%s", b.String())
	t.Logf("whole scenario %s", time.Since(began).Round(100*time.Millisecond))
}

// testWriter sends the report, line by line, to the running subtest's log.
type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	line []byte
}

func (w *testWriter) set(t *testing.T) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.t != nil && len(w.line) > 0 {
		w.t.Log(string(w.line))
	}
	w.t, w.line = t, nil
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		if w.t != nil {
			w.t.Log(strings.TrimRight(string(w.line[:i]), " "))
		}
		w.line = w.line[i+1:]
	}
	return len(p), nil
}
