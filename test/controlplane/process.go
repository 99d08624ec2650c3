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

// StartProcess runs the binary at path with args. Pdeathsig ends it if the test process dies
// without cleaning up.
func StartProcess(dir, name, path string, args ...string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		f.Close()
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
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

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

var buildMu sync.Mutex

// ControllerForTest builds the in-cluster controller and runs it out of cluster against c, the
// importer only, with args added to its flags (later flags win, so args may turn the webhook
// on). It is stopped when the test ends, and its log is printed if the test failed.
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
		// Out of cluster the API server cannot call the webhook's Service anyway; serving it would
		// take a fixed port and write its certificate outside the test's folders.
		"--automount-webhook=false",
		"--webhook-cert-dir=" + filepath.Join(dir, "webhook-certs"),
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
