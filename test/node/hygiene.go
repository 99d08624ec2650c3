package node

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// Sysctls are the kernel settings a node changes: the kubelet's "kernel tunables" (kernel- and
// machine-wide), what the bridge CNI plugin and kube-proxy set (per network namespace: outside
// the sandbox they show the host's values), and conntrack's table size.
var Sysctls = []string{
	"kernel.panic", "kernel.panic_on_oops", "vm.overcommit_memory", "vm.panic_on_oom",
	"kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes",
	"net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding", "net.ipv6.conf.all.forwarding",
	"net.ipv4.conf.all.route_localnet", "net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables", "net.netfilter.nf_conntrack_max",
}

// WatchedPaths are where a kubelet, containerd and the CNI plugins write by default.
var WatchedPaths = []string{
	"/var/lib/kubelet", "/var/lib/containerd", "/var/lib/cni", "/var/log/pods", "/var/log/containers",
	"/run/containerd", "/run/netns", "/run/runc", "/run/kubernetes", "/etc/cni", "/opt/cni",
	"/opt/containerd", "/etc/kubernetes", "/usr/libexec/kubernetes",
}

// nodeExecutables are programs only a node runs; any of them running afterwards is a leak.
var nodeExecutables = map[string]bool{
	"containerd": true, "containerd-shim-runc-v2": true, "containerd-shim": true, "runc": true,
	"kubelet": true, "kube-proxy": true, "kube-scheduler": true, "pause": true, "conntrack": true,
}

// Snapshot is what the host looks like in the respects a node can change it.
type Snapshot struct {
	// Processes are running node programs, or programs whose command line names a node
	// sandbox ("pid exe args").
	Processes map[int]string
	// Mounts are "mountpoint fstype source" of this process's mount namespace.
	Mounts []string
	// Cgroups are the cgroups a node could have made, in every hierarchy under /sys/fs/cgroup
	// ("hierarchy/path"): kubepods trees and node cgroup roots (mcsa-*). Others come and go
	// with the machine's own work.
	Cgroups []string
	// Sysctls are the values of Sysctls ("" when absent).
	Sysctls map[string]string
	// IPTables are the rules of every table, IPv4 and IPv6, nft and legacy backends (counters
	// dropped). Not taken inside a sandbox, whose rules die with its network namespace.
	IPTables []string
	// Links are the network interfaces (not taken inside a sandbox, likewise).
	Links []string
	// Files are WatchedPaths and what they hold, to three levels.
	Files []string
}

// TakeSnapshot records the state of the host as seen from this process.
func TakeSnapshot() (*Snapshot, error) {
	s := &Snapshot{Processes: map[int]string{}, Sysctls: map[string]string{}}
	var errs []error
	if err := s.takeProcesses(); err != nil {
		errs = append(errs, err)
	}
	mounts, err := readMounts()
	errs = append(errs, err)
	for _, m := range mounts {
		s.Mounts = append(s.Mounts, m.point+" "+m.fstype+" "+m.source)
	}
	sort.Strings(s.Mounts)
	cgroups, err := listCgroups()
	errs = append(errs, err)
	for _, c := range cgroups {
		if isNodeCgroup(c) {
			s.Cgroups = append(s.Cgroups, c)
		}
	}
	for _, k := range Sysctls {
		b, err := os.ReadFile(sysctlPath(k))
		if err == nil {
			s.Sysctls[k] = strings.TrimSpace(string(b))
		} else if !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if !InSandbox() {
		s.IPTables, err = iptablesRules()
		errs = append(errs, err)
		entries, err := os.ReadDir("/sys/class/net")
		errs = append(errs, err)
		for _, e := range entries {
			s.Links = append(s.Links, e.Name())
		}
	}
	s.Files = listFiles(WatchedPaths, 3)
	return s, errors.Join(errs...)
}

// ExpectClean takes a snapshot now and, when the test and the cleanups registered after this
// call (ForTest's among them) are done, fails the test if the sandbox differs from it. Call it
// first.
func ExpectClean(t testing.TB) {
	t.Helper()
	before, err := TakeSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		after, err := TakeSnapshot()
		if err != nil {
			t.Error(err)
			return
		}
		if diff := before.Diff(after); len(diff) > 0 {
			t.Errorf("left behind:\n%s", strings.Join(diff, "\n"))
		}
	})
}

// Summary says briefly what a snapshot covers.
func (s *Snapshot) Summary() string {
	return fmt.Sprintf("checked %d node processes, %d mounts, %d cgroups, %d sysctls, %d iptables rules, %d links, %d watched paths",
		len(s.Processes), len(s.Mounts), len(s.Cgroups), len(s.Sysctls), len(s.IPTables), len(s.Links), len(WatchedPaths))
}

// Diff lists how after differs from s, one line per difference; nil when it does not.
func (s *Snapshot) Diff(after *Snapshot) []string {
	var out []string
	for pid, p := range after.Processes {
		if s.Processes[pid] != p {
			out = append(out, "process left running: "+p)
		}
	}
	out = append(out, diffSets("mount", s.Mounts, after.Mounts)...)
	out = append(out, diffSets("cgroup", s.Cgroups, after.Cgroups)...)
	for _, k := range Sysctls {
		if s.Sysctls[k] != after.Sysctls[k] {
			out = append(out, fmt.Sprintf("sysctl %s: %q before, %q after", k, s.Sysctls[k], after.Sysctls[k]))
		}
	}
	if s.IPTables != nil && after.IPTables != nil {
		out = append(out, diffSets("iptables rule", s.IPTables, after.IPTables)...)
	}
	if s.Links != nil && after.Links != nil {
		out = append(out, diffSets("network interface", s.Links, after.Links)...)
	}
	out = append(out, diffSets("file", s.Files, after.Files)...)
	sort.Strings(out)
	return out
}

func diffSets(what string, before, after []string) []string {
	b := map[string]bool{}
	for _, x := range before {
		b[x] = true
	}
	a := map[string]bool{}
	var out []string
	for _, x := range after {
		a[x] = true
		if !b[x] {
			out = append(out, what+" added: "+x)
		}
	}
	for _, x := range before {
		if !a[x] {
			out = append(out, what+" removed: "+x)
		}
	}
	return out
}

// RestoreSysctls writes back the values of s that differ now, and says which it restored.
func (s *Snapshot) RestoreSysctls() ([]string, error) {
	var restored []string
	var errs []error
	for _, k := range Sysctls {
		want, ok := s.Sysctls[k]
		if !ok {
			continue
		}
		b, err := os.ReadFile(sysctlPath(k))
		if err != nil || strings.TrimSpace(string(b)) == want {
			continue
		}
		if err := os.WriteFile(sysctlPath(k), []byte(want), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring sysctl %s to %s: %w", k, want, err))
			continue
		}
		restored = append(restored, fmt.Sprintf("%s %s→%s", k, strings.TrimSpace(string(b)), want))
	}
	return restored, errors.Join(errs...)
}

// RemoveCgroups removes the cgroups a node sandbox or node left: in every hierarchy, those
// under a top-level cgroup whose name starts with the base name of prefix (each node's cgroup
// root), and, when before is given, new cgroups (absent from it) named kubepods*, in case a
// kubelet did not use its root. Processes still in them are killed first; directories go deepest first. It returns
// how many it removed.
func RemoveCgroups(prefix string, before *Snapshot) (int, error) {
	existed := map[string]bool{}
	if before != nil {
		for _, c := range before.Cgroups {
			existed[c] = true
		}
	}
	name := filepath.Base(prefix)
	now, err := listCgroups()
	if err != nil {
		return 0, err
	}
	var doomed []string
	for _, c := range now {
		rel := strings.SplitN(c, "/", 2) // hierarchy, path
		if len(rel) < 2 {
			continue
		}
		top := strings.SplitN(rel[1], "/", 2)[0]
		if (name != "" && strings.HasPrefix(top, name)) || (before != nil && !existed[c] && strings.Contains(rel[1], "kubepods")) {
			doomed = append(doomed, c)
		}
	}
	// Deepest first.
	sort.Slice(doomed, func(i, j int) bool { return strings.Count(doomed[i], "/") > strings.Count(doomed[j], "/") })
	var errs []error
	for _, c := range doomed {
		dir := filepath.Join(cgroupRoot, c)
		var last error
		// Killed processes take a moment to leave their cgroup.
		err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			killCgroup(dir)
			last = syscall.Rmdir(dir)
			return last == nil || errors.Is(last, syscall.ENOENT), nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w (%w)", dir, last, err))
		}
	}
	return len(doomed) - len(errs), errors.Join(errs...)
}

// isNodeCgroup tells cgroups a kubelet or a node sandbox makes ("hierarchy/path").
func isNodeCgroup(c string) bool {
	parts := strings.Split(c, "/")
	for i, p := range parts[1:] {
		if strings.HasPrefix(p, "kubepods") || (i == 0 && strings.HasPrefix(p, "mcsa-")) {
			return true
		}
	}
	return false
}

func killCgroup(dir string) {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			// A process that exited already is what this wants; one that survives keeps the
			// cgroup busy, and the caller's rmdir reports that.
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

const cgroupRoot = "/sys/fs/cgroup"

// listCgroups lists "hierarchy/path" of every cgroup below the roots of the hierarchies
// mounted under /sys/fs/cgroup (v1 and v2: each mount point's own directory tree).
func listCgroups() ([]string, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mounts {
		if m.fstype != "cgroup" && m.fstype != "cgroup2" {
			continue
		}
		if !strings.HasPrefix(m.point, cgroupRoot+"/") && m.point != cgroupRoot {
			continue
		}
		h := strings.TrimPrefix(strings.TrimPrefix(m.point, cgroupRoot), "/")
		if h == "" {
			h = "."
		}
		// The walk cannot fail: its function skips what it cannot read and returns nil.
		_ = filepath.WalkDir(m.point, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() || p == m.point {
				return nil
			}
			out = append(out, h+"/"+strings.TrimPrefix(p, m.point+"/"))
			return nil
		})
	}
	sort.Strings(out)
	return out, nil
}

type mount struct{ point, fstype, source string }

// readMounts parses /proc/self/mountinfo.
func readMounts() ([]mount, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var out []mount
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 5 || sep < 0 || sep+2 >= len(f) {
			continue
		}
		out = append(out, mount{point: unescapeMount(f[4]), fstype: f[sep+1], source: f[sep+2]})
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (s *Snapshot) takeProcesses() error {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a kernel thread
		}
		args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
		exe, _ := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if exe == "" {
			exe = args[0]
		}
		if nodeExecutables[filepath.Base(exe)] || strings.Contains(string(cmdline), "mcsa-node-") {
			s.Processes[pid] = fmt.Sprintf("%d %s %s", pid, exe, strings.Join(args[1:], " "))
		}
	}
	return nil
}

func sysctlPath(name string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/"))
}

// iptablesRules lists the rules of every backend that is installed, "tool table rule".
func iptablesRules() ([]string, error) {
	var out []string
	var errs []error
	for _, tool := range []string{"iptables-nft-save", "ip6tables-nft-save", "iptables-legacy-save", "ip6tables-legacy-save"} {
		path, err := exec.LookPath(tool)
		if err != nil {
			continue
		}
		b, err := exec.Command(path).Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", tool, err))
			continue
		}
		table := ""
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case line == "" || strings.HasPrefix(line, "#") || line == "COMMIT":
			case strings.HasPrefix(line, "*"):
				table = line[1:]
			case strings.HasPrefix(line, ":"):
				// ":CHAIN POLICY [packets:bytes]": keep the chain and its policy.
				f := strings.Fields(line)
				if len(f) >= 2 {
					out = append(out, fmt.Sprintf("%s %s %s %s", tool, table, f[0], f[1]))
				}
			default:
				out = append(out, fmt.Sprintf("%s %s %s", tool, table, line))
			}
		}
	}
	sort.Strings(out)
	return out, errors.Join(errs...)
}

// listFiles lists the roots that exist and what they hold, to depth levels.
func listFiles(roots []string, depth int) []string {
	var out []string
	for _, root := range roots {
		base := strings.Count(root, "/")
		// The walk cannot fail: its function skips what it cannot read (a root that does not
		// exist included) and returns nil or SkipDir.
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			out = append(out, p)
			if d.IsDir() && strings.Count(p, "/")-base >= depth {
				return filepath.SkipDir
			}
			return nil
		})
	}
	sort.Strings(out)
	return out
}
