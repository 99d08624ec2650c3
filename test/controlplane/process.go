package controlplane

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
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

// Process is a program run in the background (a component, or the controller out of cluster),
// in its own process group so that stopping it stops its children, logging to <dir>/<name>.log.
type Process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

// StartProcess runs the binary at path with args, in this process's environment. Pdeathsig
// ends it if the test process dies without cleaning up.
func StartProcess(dir, name, path string, args ...string) (*Process, error) {
	return StartProcessEnv(dir, name, path, nil, args...)
}

// StartProcessEnv is StartProcess with env (KEY=VALUE) added to the environment, e.g. a
// GOMEMLIMIT for a controller under benchmark.
func StartProcessEnv(dir, name, path string, env []string, args ...string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		_ = f.Close() // nothing was written to it: the start's error is the one to report
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		// A background process's exit status is not its result: Exited tells that it ended
		// and its log says why. The log is unbuffered (an *os.File written by the child), so
		// closing it loses nothing.
		_ = cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// Name is the name the process was started with.
func (p *Process) Name() string { return p.name }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop ends the process group: SIGTERM, then SIGKILL after 10 s.
func (p *Process) Stop() {
	if p.Exited() {
		return
	}
	// A failed kill means the group is already gone (ESRCH): waiting for done below is what
	// tells that the process ended, either way.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Pid is the process's id, e.g. to read its /proc entries.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Logs is the end of the process's log, for failure messages.
func (p *Process) Logs() string {
	b, _ := os.ReadFile(p.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}

// Controller says how to run the in-cluster controller (incluster/cmd/mcsa-controller) out of
// cluster: in tests, in the walkthrough without a node, and under benchmark.
type Controller struct {
	// Binary is the mcsa-controller binary (BuildCommand, or a prebuilt one).
	Binary string
	// Kubeconfig is the identity it runs as in its cluster: an admin's, or the controller's own
	// service account (test/fixture writes one).
	Kubeconfig string
	// Dir receives its log, <Name>.log.
	Dir string
	// Name names the log; default "mcsa-controller".
	Name string
	// Env is added to its environment (KEY=VALUE), e.g. a GOMEMLIMIT.
	Env []string
	// Args are added after the default flags; later flags win, so Args may turn the webhook on
	// (--automount-webhook=true) or bind the metrics and probes to known ports.
	Args []string
}

// ControllerFlags are the flags every out-of-cluster run starts with: no metrics server, probes
// on a free loopback port, and the importer only (out of cluster the API server cannot reach the
// webhook through its Service; serving it would take a fixed port and write its certificate
// outside the run's folders).
var ControllerFlags = []string{
	"--metrics-bind-address=0",
	"--health-probe-bind-address=127.0.0.1:0",
	"--automount-webhook=false",
}

// StartController runs the controller as c says. Stop the Process when done.
func StartController(c Controller) (*Process, error) {
	if c.Name == "" {
		c.Name = "mcsa-controller"
	}
	args := append([]string{"--kubeconfig=" + c.Kubeconfig}, ControllerFlags...)
	return StartProcessEnv(c.Dir, c.Name, c.Binary, c.Env, append(args, c.Args...)...)
}

var buildMu sync.Mutex

// ControllerForTest builds the in-cluster controller and runs it out of cluster against c, as
// its admin, the importer only, with args added to its flags (later flags win, so args may turn
// the webhook on). It is stopped when the test ends, and its log is printed if the test failed.
func ControllerForTest(t testing.TB, c *Cluster, args ...string) *Process {
	t.Helper()
	return StartControllerForTest(t, Controller{Kubeconfig: c.Kubeconfig(), Args: args})
}

// StartControllerForTest runs the controller as c says, building it first when c.Binary is
// empty; c.Dir defaults to a temporary folder of the test. It is stopped when the test ends,
// and its log is printed if the test failed.
func StartControllerForTest(t testing.TB, c Controller) *Process {
	t.Helper()
	if c.Binary == "" {
		buildMu.Lock()
		bin, err := BuildCommand("./incluster/cmd/mcsa-controller", t.TempDir())
		buildMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		c.Binary = bin
	}
	if c.Dir == "" {
		c.Dir = t.TempDir()
	}
	p, err := StartController(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s log:\n%s", p.Name(), p.Logs())
		}
	})
	return p
}
