package node

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// CNIBinDir is where Debian's containernetworking-plugins installs the plugins.
const CNIBinDir = "/usr/lib/cni"

// hostTools are the programs a node uses from the machine (hack/node-prereqs.sh installs them).
var hostTools = []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "ip", "iptables", "iptables-save", "conntrack"}

var cniPlugins = []string{"bridge", "host-local", "loopback", "portmap"}

// kubeBinaries are the Kubernetes binaries a node cluster runs, built by hack/testbin/ensure.sh,
// and kubectl, which the walkthrough runs in a pod.
var kubeBinaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"}

// Prerequisites says what keeps a node from running on this machine, with the remedy; nil when
// it can run. It builds missing Kubernetes binaries (hack/testbin/ensure.sh) and exports their
// directory as MCSA_TESTBIN_DIR, since the sandbox has no network to fetch modules.
func Prerequisites() error {
	if os.Geteuid() != 0 {
		return errors.New("not root: a node needs root for its network, mount and PID namespaces and cgroups (run as root; CI does)")
	}
	var missing []string
	for _, t := range hostTools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, t)
		}
	}
	for _, p := range cniPlugins {
		if _, err := os.Stat(filepath.Join(CNIBinDir, p)); err != nil {
			missing = append(missing, filepath.Join(CNIBinDir, p))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: run `sudo hack/node-prereqs.sh`", strings.Join(missing, ", "))
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
		if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err != nil || !strings.Contains(string(b), "memory") {
			return errors.New("no cgroup hierarchy with the memory controller under /sys/fs/cgroup")
		}
	}
	cmd := exec.Command("true")
	cmd.SysProcAttr = sandboxAttr()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cannot create network, mount and PID namespaces: %v %s", err, out)
	}
	return ensureBinaries()
}

var (
	binOnce sync.Once
	binErr  error
)

// ensureBinaries makes MCSA_TESTBIN_DIR hold every binary a node cluster needs.
func ensureBinaries() error {
	binOnce.Do(func() {
		if dir := os.Getenv("MCSA_TESTBIN_DIR"); dir != "" && hasAll(dir) {
			return
		}
		root, err := moduleRoot()
		if err != nil {
			binErr = err
			return
		}
		cmd := exec.Command("bash", append([]string{filepath.Join(root, "hack/testbin/ensure.sh")}, kubeBinaries...)...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			binErr = fmt.Errorf("building the Kubernetes binaries (hack/testbin/ensure.sh): %w", err)
			return
		}
		binErr = os.Setenv("MCSA_TESTBIN_DIR", strings.TrimSpace(string(out)))
	})
	return binErr
}

func hasAll(dir string) bool {
	for _, b := range kubeBinaries {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return false
		}
	}
	return true
}

// binDir is the directory of the Kubernetes binaries, checked to hold the node's.
func binDir() (string, error) {
	dir, err := controlplane.BinDir()
	if err != nil {
		return "", err
	}
	if !hasAll(dir) {
		return "", fmt.Errorf("%s lacks some of %s: run `hack/testbin/ensure.sh %s`", dir, strings.Join(kubeBinaries, ", "), strings.Join(kubeBinaries, " "))
	}
	return dir, nil
}

// moduleRoot finds the kubectl-mcsa module's root from the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/kubectl-mcsa/kubectl-mcsa\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("node: set MCSA_TESTBIN_DIR or run from inside the kubectl-mcsa checkout")
		}
		dir = parent
	}
}
