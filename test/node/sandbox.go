// Package node runs a real single-node Kubernetes cluster for end-to-end tests and the
// playground: a control plane from test/controlplane plus kube-scheduler, containerd (with runc
// and the bridge CNI plugin from Debian's packages), a kubelet and kube-proxy, all built or
// installed locally.
//
// A node needs a non-loopback IP, and the kubelet, containerd and the CNI plugins change the
// machine (iptables, mounts, cgroups, sysctls, files under /var/lib and /run). So everything runs
// in a sandbox the test makes: its binary re-executes itself in new network, mount and PID
// namespaces (Sandbox, or RunInNetns from TestMain). Inside, the node has the address IP on an
// interface without a link (a bridge without ports) whose default route leads nowhere, so no
// traffic leaves the sandbox; /run, /var/lib and /var/log are overlays whose writes land in the
// sandbox's directory; and the sandbox's first process reaps and, when it ends, kills every
// process started inside. What the namespaces cannot contain — cgroups and a few kernel-wide
// sysctls — is restored afterwards, and the host is compared before and after: any difference
// fails the run. One sandbox runs at a time on a machine (others wait).
//
// Pods reach their own apiserver through the `kubernetes` Service: the harness's apiservers
// reconcile no endpoints, so Start writes the Service's EndpointSlice (IP and the apiserver's
// port), and kube-proxy (iptables mode, its rules inside the sandbox) forwards the Service's IP
// there — as it does for every Service, e.g. the one in front of an admission webhook, which the
// apiserver calls at its cluster IP. Other apiservers listening on IP are reached directly
// through the pod network's gateway.
//
// Use from a test package:
//
//	func TestMain(m *testing.M) { os.Exit(node.RunInNetns(m)) }
//
//	func TestSomething(t *testing.T) {
//		node.ExpectClean(t)                                   // the sandbox as before, at the end
//		c1 := node.ForTest(t, "cluster1", node.Options{Images: []string{tarball}}) // a real node
//		c2, err := controlplane.Start(ctx, "cluster2", controlplane.Options{Address: node.IP})
//		…
//	}
//
// Without root, containerd, runc, the CNI plugins or cgroups, tests calling Require (ForTest
// does) skip with the reason, or fail when CI=true. `hack/node-prereqs.sh` installs what is
// missing.
package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/image"
)

// IP is the node's address inside the sandbox (TEST-NET-2, RFC 5737: never a real host).
// Control planes other than the node's listen on it too (controlplane.Options{Address: IP}),
// so that pods reach them.
const IP = "198.51.100.10"

// PodSubnet is where pods get their addresses (the benchmarking range, RFC 2544).
const PodSubnet = "198.18.0.0/24"

const (
	ipPrefix  = 24
	linkName  = "mcsa0"
	envStage  = "MCSA_NODE_STAGE" // "init" (first process of the sandbox) or "run"
	envDir    = "MCSA_NODE_SANDBOX"
	stageInit = "init"
	stageRun  = "run"
)

// overlaid are host directories the sandbox sees through an overlay: the kubelet and containerd
// write there at fixed paths (/var/lib/kubelet/device-plugins, /run/containerd/s, /run/netns,
// /var/log/containers, /var/lib/cni), and with an overlay those writes stay in the sandbox.
var overlaid = []string{"/run", "/var/lib", "/var/log"}

// unavailable says why no node can run here (set by RunInNetns before running the tests in
// place).
var unavailable string

// InSandbox reports whether this process runs inside a node sandbox.
func InSandbox() bool { return os.Getenv(envStage) == stageRun }

// RunInNetns is a TestMain for packages with node tests: it runs the package's tests inside a
// sandbox (see the package docs), then restores and checks the host. It returns the exit code.
// Under -short, or where a node cannot run (see Require), the tests run in place and the node
// tests skip.
func RunInNetns(m *testing.M) int {
	if os.Getenv(envStage) != "" {
		return Sandbox(m.Run, os.Stderr)
	}
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	if err := Prerequisites(); err != nil {
		unavailable = err.Error()
		return m.Run()
	}
	return Sandbox(m.Run, os.Stderr)
}

// Require skips the test under -short or where no node can run, saying why; with CI=true a
// missing prerequisite fails it instead. Tests that start a node call it first (ForTest does).
func Require(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test on a real node; runs without -short")
	}
	if InSandbox() {
		return
	}
	reason := unavailable
	if reason == "" {
		reason = "the package's TestMain must call node.RunInNetns"
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("a real node is required in CI but cannot run: %s", reason)
	}
	t.Skipf("no real node on this machine: %s", reason)
}

// Sandbox runs run inside a new sandbox and returns its exit code. Called again inside (the
// binary re-executes itself with the same arguments), it is the sandbox's first process, then
// calls run. Afterwards, outside, it removes what the sandbox left in cgroups, restores sysctls,
// and compares the host with its state before: differences are written to report and make the
// exit code non-zero. The caller must have checked Prerequisites.
func Sandbox(run func() int, report io.Writer) int {
	switch os.Getenv(envStage) {
	case stageRun:
		return run()
	case stageInit:
		return initSandbox(report)
	}
	return outside(report)
}

func outside(report io.Writer) int {
	// Nodes build their pause image inside, with hack/dist's image tool: compile it here, where
	// its modules can be downloaded.
	if err := image.Prepare(context.Background()); err != nil {
		fmt.Fprintf(report, "node sandbox: %v\n", err)
		return 1
	}
	// One sandbox at a time on a machine: they share the kernel-wide sysctls and the host
	// comparison would see another sandbox's processes and cgroups.
	unlock, err := lockMachine(report)
	if err != nil {
		fmt.Fprintf(report, "node sandbox: %v\n", err)
		return 1
	}
	defer unlock()
	// Holding the lock, no other sandbox runs: cgroups of one are left from a sandbox that was
	// killed before it could clean up.
	if n, err := RemoveCgroups("mcsa-node-", nil); err != nil {
		fmt.Fprintf(report, "node sandbox: %v\n", err)
	} else if n > 0 {
		fmt.Fprintf(report, "node sandbox: removed %d cgroups left by an earlier sandbox\n", n)
	}
	before, err := TakeSnapshot()
	if err != nil {
		fmt.Fprintf(report, "node sandbox: host snapshot: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "mcsa-node-")
	if err != nil {
		fmt.Fprintf(report, "node sandbox: %v\n", err)
		return 1
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), envStage+"="+stageInit, envDir+"="+dir)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = sandboxAttr()
	code := 1
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(report, "node sandbox: entering new namespaces: %v\n", err)
	} else {
		// Without the file the payload starts after a wait, and only EnterCommand fails: say why.
		if err := os.WriteFile(filepath.Join(dir, hostPIDFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
			fmt.Fprintf(report, "node sandbox: %v\n", err)
		}
		stop := forwardSignals(cmd.Process)
		err := cmd.Wait()
		stop()
		code = exitCode(err)
	}

	// The sandbox's PID namespace is gone, so nothing runs in its cgroups any more.
	var problems []string
	if n, err := RemoveCgroups(dir, before); err != nil {
		problems = append(problems, err.Error())
	} else if n > 0 {
		fmt.Fprintf(report, "node sandbox: removed %d cgroups left by the sandbox\n", n)
	}
	if restored, err := before.RestoreSysctls(); err != nil {
		problems = append(problems, err.Error())
	} else if len(restored) > 0 {
		fmt.Fprintf(report, "node sandbox: restored sysctls %s\n", strings.Join(restored, ", "))
	}
	if os.Getenv("MCSA_KEEP_CLUSTERS") != "" {
		fmt.Fprintf(report, "node sandbox: kept %s (MCSA_KEEP_CLUSTERS)\n", dir)
	} else if err := os.RemoveAll(dir); err != nil {
		problems = append(problems, fmt.Sprintf("removing the sandbox directory: %v", err))
	}
	after, err := TakeSnapshot()
	if err != nil {
		problems = append(problems, fmt.Sprintf("host snapshot after the sandbox: %v", err))
	} else {
		problems = append(problems, before.Diff(after)...)
	}
	if len(problems) > 0 {
		fmt.Fprintf(report, "--- FAIL: host hygiene: the machine differs after the node sandbox:\n")
		for _, p := range problems {
			fmt.Fprintf(report, "    %s\n", p)
		}
		fmt.Fprintln(report, "FAIL")
		return 1
	}
	fmt.Fprintf(report, "node sandbox: host unchanged (%s)\n", before.Summary())
	return code
}

const hostPIDFile = "host-pid"

// EnterCommand is a command line that enters the sandbox's network and mount namespaces from
// the host (e.g. for a shell next to the playground's clusters): append the command to run.
// Only inside a sandbox.
func EnterCommand() ([]string, error) {
	if !InSandbox() {
		return nil, errors.New("node: not in a sandbox")
	}
	b, err := os.ReadFile(filepath.Join(os.Getenv(envDir), hostPIDFile))
	if err != nil {
		return nil, fmt.Errorf("node: the sandbox's process id: %w", err)
	}
	return []string{"nsenter", "--target", strings.TrimSpace(string(b)), "--net", "--mount", "--"}, nil
}

// lockMachine takes a machine-wide lock: an abstract Unix socket (in the host's network
// namespace), which the kernel releases when the process ends, however it ends.
func lockMachine(report io.Writer) (unlock func(), err error) {
	waiting := false
	var l net.Listener
	// As long as it takes: the other sandbox's test has its own timeout.
	err = wait.PollUntilContextCancel(context.Background(), time.Second, true, func(context.Context) (bool, error) {
		var err error
		l, err = net.Listen("unix", "@kubectl-mcsa-node-sandbox")
		switch {
		case err == nil:
			return true, nil
		case !errors.Is(err, syscall.EADDRINUSE):
			return false, fmt.Errorf("machine-wide lock: %w", err)
		}
		if !waiting {
			fmt.Fprintln(report, "node sandbox: waiting for another node sandbox on this machine to end")
			waiting = true
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	// Closing the socket releases the lock; nothing was ever written to it.
	return func() { _ = l.Close() }, nil
}

func sandboxAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		// A new PID namespace: its first process reaps orphans, and when it exits the kernel
		// kills everything left inside, whatever the tests did.
		Cloneflags: syscall.CLONE_NEWPID,
		// Go makes / private (recursively) after unsharing the mount namespace, so no mount
		// made inside propagates to the host.
		Unshareflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS,
		Pdeathsig:    syscall.SIGKILL,
	}
}

// initSandbox is the sandbox's first process (PID 1 of its namespace): it sets up mounts and
// the network, runs the binary again as the payload, and reaps every process until the payload
// exits.
func initSandbox(report io.Writer) int {
	dir := os.Getenv(envDir)
	if dir == "" {
		fmt.Fprintln(report, "node sandbox: "+envDir+" is not set")
		return 1
	}
	if err := setupMounts(dir); err != nil {
		fmt.Fprintf(report, "node sandbox: mounts: %v\n", err)
		return 1
	}
	if err := setupNetwork(); err != nil {
		fmt.Fprintf(report, "node sandbox: network: %v\n", err)
		return 1
	}
	// The outer process records this process's host id (for EnterCommand) right after
	// starting it; wait for that before running the payload. Without it after 10 s (the outer
	// process reported why), the payload runs anyway: only EnterCommand needs the file.
	_ = wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, err := os.Stat(filepath.Join(dir, hostPIDFile))
		return err == nil, nil
	})
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o1777); err != nil {
		fmt.Fprintf(report, "node sandbox: %v\n", err)
		return 1
	}
	cmd := exec.Command("/proc/self/exe", os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(withoutEnv(os.Environ(), envStage, "TMPDIR"), envStage+"="+stageRun, "TMPDIR="+tmp)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(report, "node sandbox: %v\n", err)
		return 1
	}
	stop := forwardSignals(cmd.Process)
	defer stop()
	// Reap everything: as PID 1, this process inherits every orphan (containerd's shims,
	// containers whose shim died). cmd.Wait is never called; the payload is reaped here too.
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			fmt.Fprintf(report, "node sandbox: wait: %v\n", err)
			return 1
		}
		if pid == cmd.Process.Pid {
			if ws.Signaled() {
				return 128 + int(ws.Signal())
			}
			return ws.ExitStatus()
		}
	}
}

func setupMounts(dir string) error {
	// A /proc for the new PID namespace.
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	// A /sys describing the new network namespace (/sys/class/net), keeping the cgroup
	// hierarchies mounted below it: copy them aside, replace /sys, move them back.
	keep := filepath.Join(dir, "mnt", "cgroup")
	if err := os.MkdirAll(keep, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("/sys/fs/cgroup", keep, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("keeping /sys/fs/cgroup: %w", err)
	}
	if err := syscall.Unmount("/sys", syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("unmounting /sys: %w", err)
	}
	if err := syscall.Mount("sysfs", "/sys", "sysfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /sys: %w", err)
	}
	if err := syscall.Mount(keep, "/sys/fs/cgroup", "", syscall.MS_MOVE, ""); err != nil {
		return fmt.Errorf("restoring /sys/fs/cgroup: %w", err)
	}
	for _, p := range overlaid {
		base := filepath.Join(dir, "overlay", strings.ReplaceAll(strings.Trim(p, "/"), "/", "-"))
		upper, work := filepath.Join(base, "upper"), filepath.Join(base, "work")
		for _, d := range []string{upper, work} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", p, upper, work)
		if err := syscall.Mount("overlay", p, "overlay", 0, opts); err != nil {
			return fmt.Errorf("overlay on %s: %w", p, err)
		}
	}
	return nil
}

func setupNetwork() error {
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		// A bridge without ports: an interface that holds the node's address and carries
		// nothing (dummy interfaces need a kernel module these machines cannot load).
		{"link", "add", linkName, "type", "bridge"},
		{"addr", "add", fmt.Sprintf("%s/%d", IP, ipPrefix), "dev", linkName},
		{"link", "set", linkName, "up"},
		// Needed for connect() to service IPs (kube-proxy rewrites them after routing); the
		// portless bridge drops what it is given, so nothing leaves the sandbox.
		{"route", "add", "default", "dev", linkName},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

func forwardSignals(p *os.Process) (stop func()) {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				// A child that ended already has nothing left to be told.
				_ = p.Signal(s)
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(sigs); close(done) }
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return exit.ExitCode()
	}
	return 1
}

func withoutEnv(env []string, names ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}
