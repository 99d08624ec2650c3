package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/image"
)

// PauseImage is the pod sandbox image, built from test/images/pause when a node starts.
const PauseImage = "mcsa.test/pause:e2e"

const pausePackage = "github.com/kubectl-mcsa/kubectl-mcsa/test/images/pause"

// fieldManager names the node harness in the objects it writes.
const fieldManager = "mcsa-test-node"

// Options tune a node cluster.
type Options struct {
	// APIServerFlags are added to kube-apiserver's flags.
	APIServerFlags []string
	// Images are image tarballs (e.g. from image.Build) imported before the node registers,
	// so that the first pods find them.
	Images []string
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
}

// Cluster is a control plane (etcd, kube-apiserver, kube-controller-manager) with
// kube-scheduler and one node (containerd, kubelet, kube-proxy), all listening on IP inside
// the sandbox. Its pods reach their own apiserver through the `kubernetes` Service (kube-proxy)
// and any other server on IP through the pod network's gateway.
type Cluster struct {
	*controlplane.Cluster
	// NodeName is the node's name (the cluster's name + "-node").
	NodeName string
	// NodeDir holds the node's files: containerd's and the kubelet's, configurations,
	// certificates and component logs (`*.log`); pods' logs are under `pod-logs`.
	NodeDir string

	runtime    *containerd
	procs      []*controlplane.Process
	cgroupRoot string
	start      *Snapshot
	stopOnce   sync.Once
	stopErr    error
}

// ForTest starts a node cluster for a test (Require first) and stops it when the test ends,
// failing the test if it cannot undo what the node did (ExpectClean checks the result).
func ForTest(t testing.TB, name string, opts Options) *Cluster {
	t.Helper()
	Require(t)
	if opts.Log == nil {
		opts.Log = t.Logf
	}
	c, err := Start(context.Background(), name, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// Start starts a node cluster named name inside the sandbox and waits until the node is Ready
// and kube-proxy serves the `kubernetes` Service. One node per sandbox: its kubelet and
// kube-proxy use their fixed ports on IP.
func Start(ctx context.Context, name string, opts Options) (_ *Cluster, err error) {
	if !InSandbox() {
		return nil, errors.New("node: a node runs only inside the sandbox: call node.RunInNetns from TestMain (or node.Sandbox)")
	}
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	start, err := TakeSnapshot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "mcsa-"+name+"-node-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{
		NodeName:   name + "-node",
		NodeDir:    dir,
		start:      start,
		cgroupRoot: "/" + filepath.Base(os.Getenv(envDir)) + "-" + name,
	}
	defer func() {
		if err != nil {
			// What the failed start left behind must not go unnoticed either.
			err = errors.Join(err, c.Stop())
		}
	}()

	// The node's own CA: the kubelet's serving certificate and the apiserver's client
	// certificate towards kubelets must exist before the apiserver starts.
	pki := filepath.Join(dir, "pki")
	if err := os.MkdirAll(pki, 0o700); err != nil {
		return nil, err
	}
	nodeCA, err := controlplane.NewCA(pki, "kubectl-mcsa test node CA")
	if err != nil {
		return nil, err
	}
	kubeletClientCert, kubeletClientKey, err := nodeCA.Issue(pki, "apiserver-kubelet-client", controlplane.Leaf{CommonName: apiserverKubeletUser})
	if err != nil {
		return nil, err
	}
	servingCert, servingKey, err := nodeCA.Issue(pki, "kubelet-serving", controlplane.Leaf{CommonName: c.NodeName, IPs: []net.IP{net.ParseIP(IP)}, DNSNames: []string{c.NodeName}, Server: true})
	if err != nil {
		return nil, err
	}

	// The control plane and containerd (with the pause image) start side by side.
	var wg sync.WaitGroup
	var cpErr, rtErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		flags := append([]string{
			"--kubelet-preferred-address-types=InternalIP,Hostname",
			"--kubelet-client-certificate=" + kubeletClientCert,
			"--kubelet-client-key=" + kubeletClientKey,
			"--kubelet-certificate-authority=" + nodeCA.CertPath,
		}, opts.APIServerFlags...)
		c.Cluster, cpErr = controlplane.Start(ctx, name, controlplane.Options{Address: IP, APIServerFlags: flags, Log: logf})
	}()
	go func() {
		defer wg.Done()
		rtErr = c.startRuntime(ctx, logf, opts.Images)
	}()
	wg.Wait()
	if err := errors.Join(cpErr, rtErr); err != nil {
		return nil, err
	}

	if err := c.setupAPI(ctx); err != nil {
		return nil, err
	}
	clusterCA, err := controlplane.LoadCA(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("node: reading the cluster CA: %w", err)
	}
	kubeconfig := func(user string, groups ...string) (string, error) {
		base := strings.ReplaceAll(strings.TrimPrefix(user, "system:"), ":", "-")
		crt, key, err := clusterCA.Issue(pki, base, controlplane.Leaf{CommonName: user, Groups: groups})
		if err != nil {
			return "", err
		}
		return c.writeKubeconfig(filepath.Join(dir, base+".kubeconfig"), crt, key)
	}
	schedulerKubeconfig, err := kubeconfig("system:kube-scheduler")
	if err != nil {
		return nil, err
	}
	proxyKubeconfig, err := kubeconfig("system:kube-proxy")
	if err != nil {
		return nil, err
	}
	kubeletKubeconfig, err := kubeconfig("system:node:"+c.NodeName, "system:nodes")
	if err != nil {
		return nil, err
	}

	logf("%s: starting kube-scheduler, kube-proxy and the kubelet (node %s at %s)", name, c.NodeName, IP)
	sched, err := startProcess(dir, "kube-scheduler", filepath.Join(bin, "kube-scheduler"),
		"--kubeconfig="+schedulerKubeconfig, "--leader-elect=false", "--secure-port=0", "-v=1")
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, sched)
	proxyConfig := filepath.Join(dir, "kube-proxy.yaml")
	if err := os.WriteFile(proxyConfig, []byte(render(kubeProxyConfig, map[string]string{
		"kubeconfig": proxyKubeconfig, "node": c.NodeName, "cidr": PodSubnet,
	})), 0o644); err != nil {
		return nil, err
	}
	proxy, err := startProcess(dir, "kube-proxy", filepath.Join(bin, "kube-proxy"), "--config="+proxyConfig, "-v=1")
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, proxy)
	if err := c.makeCgroupRoot(); err != nil {
		return nil, err
	}
	kubeletRoot := filepath.Join(dir, "kubelet")
	kubeletConfig := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(kubeletConfig, []byte(render(kubeletConfigTmpl, map[string]string{
		"ip": IP, "socket": c.runtime.socket, "cgroupRoot": c.cgroupRoot, "clientCA": nodeCA.CertPath,
		"cert": servingCert, "key": servingKey, "dir": dir, "root": kubeletRoot,
	})), 0o644); err != nil {
		return nil, err
	}
	kubelet, err := startProcess(dir, "kubelet", filepath.Join(bin, "kubelet"),
		"--config="+kubeletConfig,
		"--kubeconfig="+kubeletKubeconfig,
		"--root-dir="+kubeletRoot,
		"--hostname-override="+c.NodeName,
		"--node-ip="+IP,
		"-v=1",
	)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, kubelet)
	if err := c.waitNode(ctx); err != nil {
		return nil, err
	}
	logf("%s: node %s ready", name, c.NodeName)
	return c, nil
}

// apiserverKubeletUser is the apiserver's identity towards kubelets (logs, exec).
const apiserverKubeletUser = "kube-apiserver-kubelet-client"

func (c *Cluster) startRuntime(ctx context.Context, logf func(string, ...any), images []string) error {
	tarball := filepath.Join(c.NodeDir, "images", "pause.tar")
	if err := image.Build(ctx, tarball, image.Spec{Ref: PauseImage, Package: pausePackage}); err != nil {
		return fmt.Errorf("node: building the pause image: %w", err)
	}
	logf("%s: starting containerd", c.NodeName)
	rt, err := startContainerd(ctx, filepath.Join(c.NodeDir, "containerd"), PauseImage)
	if err != nil {
		return err
	}
	c.runtime = rt
	c.procs = append(c.procs, rt.proc)
	return rt.importImages(ctx, append([]string{tarball}, images...)...)
}

// setupAPI creates what a cluster's installer would: the apiserver's access to kubelets and,
// since the harness's apiservers reconcile no endpoints, the `kubernetes` Service's
// EndpointSlice pointing at the apiserver on IP.
func (c *Cluster) setupAPI(ctx context.Context) error {
	cs := c.Clientset()
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "mcsa-test:apiserver-kubelet"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: apiserverKubeletUser}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{FieldManager: fieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("node: %w", err)
	}
	u, err := url.Parse(c.Server)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		return err
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:      "kubernetes",
			Namespace: metav1.NamespaceDefault,
			Labels: map[string]string{
				discoveryv1.LabelServiceName: "kubernetes",
				discoveryv1.LabelManagedBy:   fieldManager,
			},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{IP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(metav1.NamespaceDefault).Create(ctx, slice, metav1.CreateOptions{FieldManager: fieldManager}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

func (c *Cluster) writeKubeconfig(path, certFile, keyFile string) (string, error) {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificate: certFile, ClientKey: keyFile}
	cfg.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	cfg.CurrentContext = "c"
	return path, clientcmd.WriteToFile(*cfg, path)
}

// makeCgroupRoot creates the node's cgroup root in every hierarchy: the kubelet puts its
// kubepods tree there, so that the node's cgroups are easy to tell from the machine's and to
// remove.
func (c *Cluster) makeCgroupRoot() error {
	mounts, err := readMounts()
	if err != nil {
		return err
	}
	for _, m := range mounts {
		if (m.fstype != "cgroup" && m.fstype != "cgroup2") || !strings.HasPrefix(m.point, cgroupRoot) {
			continue
		}
		dir := filepath.Join(m.point, c.cgroupRoot)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("node: creating cgroup %s: %w", dir, err)
		}
		// A new cpuset cgroup has no CPUs nor memory nodes until given its parent's.
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			// Only the cpuset hierarchy has these files: elsewhere there is nothing to copy.
			if b, err := os.ReadFile(filepath.Join(m.point, f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					return fmt.Errorf("node: cgroup %s: %w", dir, err)
				}
			}
		}
	}
	return nil
}

func (c *Cluster) waitNode(ctx context.Context) error {
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, p := range c.procs {
			if p.Exited() {
				return false, fmt.Errorf("node: %s exited: %s", p.Name(), p.Logs())
			}
		}
		last = c.notReady(ctx)
		return last == "", nil
	})
	if err != nil && wait.Interrupted(err) {
		return fmt.Errorf("node: %s not ready: %s: %w\nkubelet: %s", c.NodeName, last, err, c.Logs("kubelet"))
	}
	return err
}

// notReady says what the node still lacks; "" when it is ready.
func (c *Cluster) notReady(ctx context.Context) string {
	n, err := c.Clientset().CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	ready := false
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status != corev1.ConditionTrue {
				return "node condition Ready: " + cond.Message
			}
			ready = true
		}
	}
	if !ready {
		return "node has no Ready condition yet"
	}
	for _, taint := range n.Spec.Taints {
		if taint.Effect != corev1.TaintEffectPreferNoSchedule {
			return "node still has taint " + taint.ToString()
		}
	}
	out, err := exec.CommandContext(ctx, "iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "default/kubernetes:https") {
		return "kube-proxy has not programmed the kubernetes Service yet"
	}
	return ""
}

// ImportImages imports image tarballs into the node's containerd; pods then use the images by
// reference (with imagePullPolicy IfNotPresent or Never: nothing can be pulled).
func (c *Cluster) ImportImages(ctx context.Context, tarballs ...string) error {
	return c.runtime.importImages(ctx, tarballs...)
}

// Logs returns the tail of a component's log: a node component (containerd, kubelet,
// kube-proxy, kube-scheduler) or a control-plane one.
func (c *Cluster) Logs(component string) string {
	for _, p := range c.procs {
		if p.Name() == component {
			return p.Logs()
		}
	}
	if c.Cluster != nil {
		return c.Cluster.Logs(component)
	}
	return ""
}

// Stop stops the node and its control plane and undoes what they did in the sandbox: it kills
// the containers, unmounts what the kubelet and containerd mounted, removes the node's
// cgroups, restores the sysctls and removes files they created at fixed paths. It reports what
// it could not undo. Safe to call more than once.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var errs []error
		// The kubelet first, so that it does not restart what is being stopped.
		for i := len(c.procs) - 1; i >= 0; i-- {
			c.procs[i].Stop()
		}
		if c.runtime != nil {
			killShims(c.runtime.socket)
		}
		errs = append(errs, unmountUnder(c.NodeDir, "/run/netns/", "/var/run/netns/"))
		_, err := RemoveCgroups(c.cgroupRoot, nil)
		errs = append(errs, err)
		if c.Cluster != nil {
			c.Cluster.Stop()
		}
		if c.start != nil {
			_, err := c.start.RestoreSysctls()
			errs = append(errs, err)
			errs = append(errs, removeNewFiles(c.start.Files))
		}
		if os.Getenv("MCSA_KEEP_CLUSTERS") == "" {
			errs = append(errs, os.RemoveAll(c.NodeDir))
		}
		c.stopErr = errors.Join(errs...)
		if c.stopErr != nil {
			c.stopErr = fmt.Errorf("node %s: cleaning up: %w", c.NodeName, c.stopErr)
		}
	})
	return c.stopErr
}

// killShims kills containerd's shims for socket; their containers' processes are in the
// node's cgroups, which RemoveCgroups empties.
func killShims(socket string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), "containerd-shim") && strings.Contains(string(b), socket) {
			// A shim that is gone already (ESRCH) is what this wants; any other process left is
			// found by Stop's cgroup removal, which kills and reports.
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// unmountUnder unmounts, deepest first, every mount below the given path prefixes.
func unmountUnder(prefixes ...string) error {
	var errs []error
	for attempt := 0; attempt < 3; attempt++ {
		mounts, err := readMounts()
		if err != nil {
			return err
		}
		var points []string
		for _, m := range mounts {
			for _, p := range prefixes {
				if strings.HasPrefix(m.point, strings.TrimSuffix(p, "/")+"/") || m.point == strings.TrimSuffix(p, "/") {
					points = append(points, m.point)
				}
			}
		}
		if len(points) == 0 {
			return nil
		}
		sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
		errs = nil
		for _, p := range points {
			if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeNewFiles removes what appeared under WatchedPaths since the listing before was taken.
func removeNewFiles(before []string) error {
	existed := map[string]bool{}
	for _, f := range before {
		existed[f] = true
	}
	var errs []error
	for _, f := range listFiles(WatchedPaths, 3) {
		if !existed[f] {
			errs = append(errs, os.RemoveAll(f))
		}
	}
	return errors.Join(errs...)
}

const kubeProxyConfig = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: {{kubeconfig}}
hostnameOverride: {{node}}
mode: iptables
clusterCIDR: {{cidr}}
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [primary]
# Lowering its own oom_score_adj needs CAP_SYS_RESOURCE, which these machines lack.
oomScoreAdj: 0
# Conntrack settings are kernel-wide or host-wide: leave them alone.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  # Pods on the one bridge reach each other through Services too.
  masqueradeAll: true
  syncPeriod: 30s
  minSyncPeriod: 0s
`

// kubeletConfigTmpl: cgroup v1 is allowed (these machines are hybrid v1), swap tolerated,
// cgroupfs (no systemd), the apiserver authenticated by the node CA and everything else by
// webhook, no read-only port, secret changes within seconds (syncFrequency), eviction and image
// GC relaxed for small disks, every path in the node's directory, no host resolv.conf.
const kubeletConfigTmpl = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
failSwapOn: false
cgroupDriver: cgroupfs
cgroupRoot: {{cgroupRoot}}
containerRuntimeEndpoint: unix://{{socket}}
imageServiceEndpoint: unix://{{socket}}
address: {{ip}}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: {{cert}}
tlsPrivateKeyFile: {{key}}
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
    cacheTTL: 10s
  x509:
    clientCAFile: {{clientCA}}
authorization:
  mode: Webhook
  webhook:
    cacheAuthorizedTTL: 10s
    cacheUnauthorizedTTL: 5s
podLogsDir: {{dir}}/pod-logs
volumePluginDir: {{root}}/volume-plugins
syncFrequency: 5s
fileCheckFrequency: 20s
nodeStatusUpdateFrequency: 5s
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
  imagefs.inodesFree: 1%
evictionPressureTransitionPeriod: 10s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# Lowering its own oom_score_adj needs CAP_SYS_RESOURCE, which these machines lack.
oomScoreAdj: 0
resolvConf: ""
makeIPTablesUtilChains: false
serializeImagePulls: false
maxPods: 50
kubeAPIQPS: 50
kubeAPIBurst: 100
shutdownGracePeriod: 0s
protectKernelDefaults: false
`

// startProcess runs a node component with the control planes' process handling.
func startProcess(dir, name, path string, args ...string) (*controlplane.Process, error) {
	p, err := controlplane.StartProcess(dir, name, path, args...)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	return p, nil
}
