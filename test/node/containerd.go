package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// containerd is the node's container runtime, with a private root, state and socket.
type containerd struct {
	dir    string
	socket string
	proc   *controlplane.Process
}

// containerdConfig is containerd 1.6's configuration (version 2). Settings that matter here:
// restrict_oom_score_adj (without CAP_SYS_RESOURCE runc cannot lower a container's
// oom_score_adj and fails), the locally built sandbox image (nothing is pulled), cgroupfs (no
// systemd), the CNI plugins of Debian's package with a configuration of our own, and every
// path inside the node's directory. Unprivileged ports let the non-root nginx stand-in listen
// on :80 inside its pod.
const containerdConfig = `version = 2
root = "{{dir}}/root"
state = "{{dir}}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{{socket}}"

[ttrpc]
  address = "{{socket}}.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{{dir}}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{pause}}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_unprivileged_ports = true
  enable_unprivileged_icmp = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{cnibin}}"
    conf_dir = "{{dir}}/net.d"
    max_conf_num = 1
`

// cniConfig is the pod network: a bridge inside the sandbox's network namespace, addresses from
// PodSubnet, masquerading for traffic leaving it (to the node's address, where the apiservers
// listen), and host ports.
const cniConfig = `{
  "cniVersion": "1.0.0",
  "name": "mcsa",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "mcsa-br0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "{{subnet}}"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "{{dir}}/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

func render(tmpl string, vars map[string]string) string {
	for k, v := range vars {
		tmpl = strings.ReplaceAll(tmpl, "{{"+k+"}}", v)
	}
	return tmpl
}

// startContainerd starts containerd in dir and waits until it answers.
func startContainerd(ctx context.Context, dir, pauseImage string) (*containerd, error) {
	c := &containerd{dir: dir, socket: filepath.Join(dir, "containerd.sock")}
	vars := map[string]string{"dir": dir, "socket": c.socket, "pause": pauseImage, "cnibin": CNIBinDir, "subnet": PodSubnet}
	if err := os.MkdirAll(filepath.Join(dir, "net.d"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "net.d", "10-mcsa.conflist"), []byte(render(cniConfig, vars)), 0o644); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(render(containerdConfig, vars)), 0o644); err != nil {
		return nil, err
	}
	path, err := exec.LookPath("containerd")
	if err != nil {
		return nil, err
	}
	if c.proc, err = startProcess(dir, "containerd", path, "--config", cfg, "--log-level", "warn"); err != nil {
		return nil, err
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if c.proc.Exited() {
			return false, fmt.Errorf("node: containerd exited: %s", c.proc.Logs())
		}
		return c.ctr(ctx, "version") == nil, nil
	})
	if err != nil {
		c.proc.Stop()
		if wait.Interrupted(err) {
			err = fmt.Errorf("node: containerd did not answer: %w\n%s", err, c.proc.Logs())
		}
		return nil, err
	}
	return c, nil
}

// ctr runs containerd's client in the Kubernetes namespace; its error holds the output.
func (c *containerd) ctr(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.socket, "--namespace", "k8s.io"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// importImages imports image tarballs (docker save or OCI layout) for the kubelet to use.
func (c *containerd) importImages(ctx context.Context, tarballs ...string) error {
	for _, t := range tarballs {
		if err := c.ctr(ctx, "images", "import", t); err != nil {
			return fmt.Errorf("node: importing %s: %w", t, err)
		}
	}
	return nil
}
