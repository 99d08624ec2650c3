// Command playground runs a local multi-cluster playground: real control planes named
// cluster1 and cluster2 on loopback, and one kubeconfig with a context for each, written to
// .playground/kubeconfig. It runs until interrupted (Ctrl-C tears everything down), or, with
// --detach, in the background until `playground --stop`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

func main() {
	var (
		dir      = flag.String("dir", ".playground", "folder for the kubeconfig, logs and pid file")
		clusters = flag.String("clusters", "cluster1,cluster2", "comma-separated cluster names")
		detach   = flag.Bool("detach", false, "run in the background; stop with --stop")
		stop     = flag.Bool("stop", false, "stop a playground started with --detach")
	)
	flag.Parse()
	abs, err := filepath.Abs(*dir)
	if err == nil {
		switch {
		case *stop:
			err = stopDetached(abs)
		case *detach:
			err = startDetached(abs)
		default:
			err = run(abs, strings.Split(*clusters, ","), os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "playground:", err)
		os.Exit(1)
	}
}

func run(dir string, names []string, out io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pidFile := filepath.Join(dir, "pid")
	if pid, ok := runningPID(pidFile); ok && pid != os.Getpid() {
		return fmt.Errorf("a playground is already running (pid %d); stop it with `make playground-stop`", pid)
	}
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return err
	}
	defer os.Remove(pidFile)

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	logf := func(format string, args ...any) { fmt.Fprintf(out, "• "+format+"\n", args...) }
	logf("starting %s (etcd, kube-apiserver, kube-controller-manager each)…", strings.Join(names, ", "))
	start := time.Now()
	cs, err := controlplane.StartAll(ctx, controlplane.Options{Log: logf}, names...)
	if err != nil {
		return err
	}
	defer func() {
		logf("stopping the clusters…")
		cs.Stop()
		logf("stopped")
	}()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := controlplane.WriteKubeconfig(kubeconfig, cs...); err != nil {
		return err
	}
	rel := kubeconfig
	if wd, err := os.Getwd(); err == nil {
		if r, err := filepath.Rel(wd, kubeconfig); err == nil && !strings.HasPrefix(r, "..") {
			rel = r
		}
	}
	fmt.Fprintf(out, `
Playground ready in %s: %s.

  export KUBECONFIG=%s
  kubectl --context %s get namespaces

Logs of each component are under %s. Ctrl-C (or `+"`make playground-stop`"+` when detached) tears
everything down.
`, time.Since(start).Round(time.Second), strings.Join(names, ", "), rel, names[len(names)-1], os.TempDir()+"/mcsa-*")
	// The ready file tells a detached parent that the kubeconfig is usable.
	if err := os.WriteFile(filepath.Join(dir, "ready"), nil, 0o644); err != nil {
		return err
	}
	defer os.Remove(filepath.Join(dir, "ready"))
	<-ctx.Done()
	return nil
}

// startDetached re-runs this program in its own session, logging to dir/playground.log, and
// returns once the playground is ready.
func startDetached(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if pid, ok := runningPID(filepath.Join(dir, "pid")); ok {
		return fmt.Errorf("a playground is already running (pid %d); stop it with `make playground-stop`", pid)
	}
	os.Remove(filepath.Join(dir, "ready"))
	logPath := filepath.Join(dir, "playground.log")
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer log.Close()
	var args []string
	for _, a := range os.Args[1:] {
		if a != "--detach" && a != "-detach" {
			args = append(args, a)
		}
	}
	cmd := exec.Command(os.Args[0], append(args, "--dir", dir)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	fmt.Printf("playground starting in the background (pid %d), log: %s\n", cmd.Process.Pid, logPath)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("playground exited early (%v); see %s", err, logPath)
		case <-time.After(500 * time.Millisecond):
			if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
				b, _ := os.ReadFile(logPath)
				os.Stdout.Write(b)
				return nil
			}
		}
	}
}

func stopDetached(dir string) error {
	pidFile := filepath.Join(dir, "pid")
	pid, ok := runningPID(pidFile)
	if !ok {
		fmt.Println("no playground running")
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if syscall.Kill(pid, 0) != nil {
			fmt.Println("playground stopped")
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.New("playground did not stop within 60s")
}

func runningPID(pidFile string) (int, bool) {
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, syscall.Kill(pid, 0) == nil
}
