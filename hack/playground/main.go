// Command playground runs the walkthrough (test/walkthrough: the original getting-started,
// rotation under load, a pod with two imports) on this machine, prints each step, and leaves
// everything up for exploring until interrupted (Ctrl-C tears everything down), or, with
// --detach, in the background until `playground --stop`.
//
// cluster1 is a real single-node cluster running kubectl-mcsa's controller as a pod; cluster2 and
// cluster3 are control planes. They run inside a sandbox (test/node): their address is reachable
// only from there, so the playground writes wrappers, .playground/kubectl and .playground/shell,
// that run kubectl or a shell inside it with the kubeconfig (.playground/kubeconfig). Where no
// node can run (not root, missing packages, no cgroups), or with --control-planes-only, it says
// so and runs the variant without a node: three control planes on 127.0.0.1, the controller as a
// local process, the walkthrough without pods.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/node"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/walkthrough"
)

// sandboxEnv marks this program's runs inside the node sandbox, which re-executes it.
const sandboxEnv = "MCSA_PLAYGROUND_SANDBOX"

func main() {
	var (
		dir               = flag.String("dir", ".playground", "folder for the kubeconfig, binaries, wrappers, logs and pid file")
		detach            = flag.Bool("detach", false, "run in the background; stop with --stop")
		stop              = flag.Bool("stop", false, "stop a playground started with --detach")
		controlPlanesOnly = flag.Bool("control-planes-only", false, "run the variant without a node even where one could run")
	)
	flag.Parse()
	abs, err := filepath.Abs(*dir)
	if err == nil && os.Getenv(sandboxEnv) != "" {
		// Inside the sandbox: its first process, then the playground itself.
		os.Exit(node.Sandbox(func() int { return exitCode(serve(abs, true, os.Stdout)) }, os.Stderr))
	}
	if err == nil {
		switch {
		case *stop:
			err = stopDetached(abs)
		case *detach:
			err = startDetached(abs)
		default:
			err = run(abs, *controlPlanesOnly, os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "playground:", err)
		os.Exit(1)
	}
}

func exitCode(err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, "playground:", err)
		return 1
	}
	return 0
}

// run is the playground's outer process: it builds what the walkthrough needs (the sandbox has
// no network), then runs the walkthrough in a node sandbox or, where none can run, here.
func run(dir string, controlPlanesOnly bool, out io.Writer) error {
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

	reason := "--control-planes-only"
	realNode := false
	if !controlPlanesOnly {
		if err := node.Prerequisites(); err != nil {
			reason = err.Error()
		} else {
			realNode = true
		}
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	began := time.Now()
	fmt.Fprintln(out, "• building kubectl-mcsa, the controller, the example clients and their images…")
	_, err := walkthrough.Build(ctx, dir)
	cancel()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "• built in %s: %s\n", round(time.Since(began)), filepath.Join(dir, "bin"))

	if realNode {
		fmt.Fprintf(out, "• entering a sandbox (new network, mount and PID namespaces): cluster1 runs a real node there\n")
		if err := os.Setenv(sandboxEnv, "1"); err != nil {
			return err
		}
		// Here, outside, Sandbox runs this program again inside, where main calls Sandbox with
		// the real work (serve); then it checks that the machine is as before.
		if code := node.Sandbox(nil, os.Stderr); code != 0 {
			return fmt.Errorf("exit code %d", code)
		}
		return nil
	}
	fmt.Fprintf(out, `
No real node on this machine: %s.
Running the variant without one: cluster1, cluster2 and cluster3 are control planes on 127.0.0.1, the
controller runs here as a local process, and the walkthrough skips what needs pods (the Job, the
client under load, the pod with two imports); an import's credential is used from here instead.
`, reason)
	return serve(dir, false, out)
}

// serve starts the clusters, runs the walkthrough, prints how to explore, and waits for a
// signal.
func serve(dir string, realNode bool, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	began := time.Now()
	logf := func(format string, args ...any) { fmt.Fprintf(out, "• "+format+"\n", args...) }
	what := "cluster1, cluster2 and cluster3 (control planes)"
	if realNode {
		what = fmt.Sprintf("cluster1 (a real node: containerd, kubelet, kube-proxy, scheduler) and cluster2, cluster3 (control planes), at %s", node.IP)
	}
	logf("starting %s…", what)
	env, err := walkthrough.Start(ctx, walkthrough.Options{Dir: dir, Artifacts: walkthrough.Artifacts{Dir: dir}, RealNode: realNode, Log: logf})
	defer func() {
		if env == nil {
			return
		}
		logf("stopping the clusters…")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(out, "playground:", err)
		}
		logf("stopped")
	}()
	if err != nil {
		return err
	}
	logf("clusters ready in %s", round(time.Since(began)))

	w := walkthrough.New(env, out)
	runErr := w.Run(ctx)
	if ctx.Err() != nil {
		return nil
	}
	if runErr != nil {
		fmt.Fprintf(out, "\n✗ The walkthrough failed: %v\n\nWhat the clusters say:\n", runErr)
		env.Diagnose(ctx, out)
	}
	fmt.Fprintln(out, "\nSteps:")
	w.PrintTimings(out)

	scripts, err := writeScripts(dir, env, realNode)
	defer func() {
		for _, s := range scripts {
			// Best effort on the way out: a wrapper left behind is litter in dir, and the
			// playground's own outcome is what to report.
			_ = os.Remove(s)
		}
	}()
	if err != nil {
		return err
	}
	explore(out, dir, env, realNode, runErr, time.Since(began))
	// The ready file tells a detached parent that the playground is up.
	ready := filepath.Join(dir, "ready")
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		return err
	}
	defer os.Remove(ready)
	<-ctx.Done()
	return runErr
}

// writeScripts writes dir/kubectl and dir/shell: kubectl, and a shell, with the playground's
// kubeconfig and the plugin on PATH, inside the sandbox when there is one.
func writeScripts(dir string, env *walkthrough.Env, realNode bool) ([]string, error) {
	prefix := ""
	if realNode {
		enter, err := node.EnterCommand()
		if err != nil {
			return nil, err
		}
		// Keep the caller's working directory (nsenter would start at the sandbox's), so that
		// relative paths (kubectl -f file.yaml) work.
		if n := len(enter); n > 0 && enter[n-1] == "--" {
			enter = append(enter[:n-1:n-1], `--wd="$PWD"`, "--")
		}
		prefix = strings.Join(enter, " ") + " "
	}
	envLine := fmt.Sprintf("env KUBECONFIG=%s PATH=%s:\"$PATH\"", shellQuote(env.Kubeconfig), shellQuote(filepath.Join(dir, "bin")))
	shell := "sh -i"
	if _, err := exec.LookPath("bash"); err == nil {
		shell = "bash --norc -i"
	}
	where := "on this machine"
	if realNode {
		where = "inside the playground's sandbox, where the clusters are reachable"
	}
	scripts := map[string]string{
		"kubectl": fmt.Sprintf("#!/bin/sh\n# kubectl %s,\n# with the playground's kubeconfig and kubectl-mcsa on PATH (so `kubectl mcsa …` works).\nexec %s%s kubectl \"$@\"\n", where, prefix, envLine),
		"shell":   fmt.Sprintf("#!/bin/sh\n# A shell %s, with KUBECONFIG set and kubectl-mcsa on PATH.\nexec %s%s PS1='[mcsa-playground] \\w\\$ ' %s\n", where, prefix, envLine, shell),
	}
	var written []string
	for name, text := range scripts {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func explore(out io.Writer, dir string, env *walkthrough.Env, realNode bool, runErr error, took time.Duration) {
	rel := func(p string) string {
		if wd, err := os.Getwd(); err == nil {
			if r, err := filepath.Rel(wd, p); err == nil && !strings.HasPrefix(r, "..") {
				return r
			}
		}
		return p
	}
	k, sh := rel(filepath.Join(dir, "kubectl")), rel(filepath.Join(dir, "shell"))
	status := "The playground is up"
	if runErr != nil {
		status = "The playground is up, but the walkthrough failed (see above)"
	}
	fmt.Fprintf(out, "\n%s, %s after the start: cluster1, cluster2, cluster3.\n\n", status, round(took))
	if realNode {
		enter, _ := node.EnterCommand()
		fmt.Fprintf(out, `Everything runs inside a sandbox: the clusters' address %s is not reachable from this
machine's own network, so run kubectl inside it, through the wrappers:

  %s --context cluster1 get pods -A   # kubectl in the sandbox, with the kubeconfig
  %s                                   # a shell in the sandbox: KUBECONFIG set, kubectl mcsa on PATH

or enter it yourself: %s env KUBECONFIG=%s bash
`, node.IP, k, sh, strings.Join(enter, " "), env.Kubeconfig)
	} else {
		fmt.Fprintf(out, `The clusters listen on 127.0.0.1:

  %s --context cluster1 get namespaces   # kubectl with the kubeconfig, kubectl mcsa on PATH
  %s                                   # a shell: KUBECONFIG set, kubectl mcsa on PATH
`, k, sh)
	}
	if _, err := exec.LookPath("kubectl"); err != nil {
		fmt.Fprintf(out, "  (kubectl is not installed here: install it for the wrappers, or run %s directly)\n", rel(env.Artifacts.Plugin()))
	}
	fmt.Fprintf(out, `
Try:
  %[1]s mcsa get --context cluster1 -o wide
  %[1]s mcsa doctor --context cluster1
  %[1]s mcsa inspect cluster2-default-pod-lister --can-i list,pods --context cluster1
  %[1]s mcsa rotate cluster2-default-pod-lister --wait --context cluster1
`, k)
	if realNode {
		fmt.Fprintf(out, "  %[1]s --context cluster1 logs job/multicluster-client\n  %[1]s --context cluster1 logs two-clusters-client\n", k)
	}
	fmt.Fprintf(out, `  tail -f %s   # cluster2's record of pod-lister's calls, with each token's ID

Kubeconfig: %s (contexts cluster1, cluster2, cluster3); plugin: %s.
Component logs: %s (cluster1), %s (cluster2), %s (cluster3)`,
		rel(env.AuditLog), rel(env.Kubeconfig), rel(env.Artifacts.Plugin()), env.C1.Dir, env.C2.Dir, env.C3.Dir)
	if env.Node != nil {
		fmt.Fprintf(out, ", %s (the node)", env.Node.NodeDir)
	} else {
		fmt.Fprintf(out, ", %s (the controller)", rel(env.ControllerLog()))
	}
	fmt.Fprintf(out, ".\nCtrl-C (or `make playground-stop` when detached) tears everything down")
	if realNode {
		fmt.Fprint(out, " and checks that the machine is as before")
	}
	fmt.Fprintln(out, ".")
}

func round(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond)
	}
	return d.Round(time.Second)
}

// startDetached re-runs this program in its own session, logging to dir/playground.log, shows
// the log as it grows, and returns once the playground is up.
func startDetached(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if pid, ok := runningPID(filepath.Join(dir, "pid")); ok {
		return fmt.Errorf("a playground is already running (pid %d); stop it with `make playground-stop`", pid)
	}
	// The ready file of an earlier run would say this one is up.
	if err := os.Remove(filepath.Join(dir, "ready")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
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
	var shown int64
	show := func() {
		f, err := os.Open(logPath)
		if err != nil {
			return
		}
		defer f.Close()
		if _, err := f.Seek(shown, io.SeekStart); err == nil {
			n, _ := io.Copy(os.Stdout, f)
			shown += n
		}
	}
	// As long as it takes: the playground itself gives up on its own timeouts, and exits.
	return wait.PollUntilContextCancel(context.Background(), 500*time.Millisecond, false, func(context.Context) (bool, error) {
		show()
		select {
		case err := <-exited:
			show()
			return false, fmt.Errorf("playground exited early (%v); see %s", err, logPath)
		default:
		}
		_, err := os.Stat(filepath.Join(dir, "ready"))
		return err == nil, nil
	})
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
	// Stopping a node and checking the machine takes a while.
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		return syscall.Kill(pid, 0) != nil, nil
	})
	if err != nil {
		return errors.New("playground did not stop within 2 minutes; see its log in playground.log")
	}
	fmt.Println("playground stopped")
	return nil
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
