package controlplane

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// BuildCommand builds a main package of the product module (e.g.
// "./incluster/cmd/mcsa-controller") into dir and returns the binary's path.
func BuildCommand(pkg, dir string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// Process is a program a test runs in the background, such as the controller running out of
// cluster against a test cluster.
type Process struct {
	p *process
}

// StartProcess runs bin with args, logging to <dir>/<name>.log, in its own process group.
func StartProcess(dir, name, bin string, args ...string) (*Process, error) {
	c := &Cluster{Name: name, Dir: dir}
	p, err := c.startProcess(filepath.Dir(bin), filepath.Base(bin), args...)
	if err != nil {
		return nil, err
	}
	p.name = name
	return &Process{p: p}, nil
}

// Stop ends the process (SIGTERM, then SIGKILL after 10 s).
func (p *Process) Stop() { p.p.stop() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool { return p.p.exited() }

// Logs is the end of the process's log.
func (p *Process) Logs() string { return p.p.tail() }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.p.cmd.Process.Signal(sig) }

var buildMu sync.Mutex

// ControllerForTest builds the in-cluster controller and runs it out of cluster against c,
// with args added to its flags; it is stopped when the test ends, and its log is printed if
// the test failed.
func ControllerForTest(t testing.TB, c *Cluster, args ...string) *Process {
	t.Helper()
	buildMu.Lock()
	bin, err := BuildCommand("./incluster/cmd/mcsa-controller", t.TempDir())
	buildMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := StartProcess(dir, "mcsa-controller", bin, append([]string{
		"--kubeconfig=" + c.Kubeconfig(),
		"--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:0",
	}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("mcsa-controller log:\n%s", p.Logs())
		}
	})
	return p
}
