// Package controlplane runs real Kubernetes control planes for tests and the playground: etcd,
// kube-apiserver and kube-controller-manager built from source (hack/testbin), listening on
// loopback (or another address of the caller's network namespace), each with its own CA,
// service-account signing key and admin (system:masters) credentials.
//
// The controller manager matters: it creates each namespace's `default` service account and
// `kube-root-ca.crt`, garbage-collects owned objects and runs Jobs, as in a real cluster.
//
// Binaries come from MCSA_TESTBIN_DIR, else from `hack/testbin/ensure.sh`, which builds what is
// missing into the user's cache directory. Set MCSA_KEEP_CLUSTERS=1 to keep a stopped
// cluster's directory (logs, certificates) for debugging.
package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Options tune a cluster. The zero value gives etcd, kube-apiserver and
// kube-controller-manager on 127.0.0.1.
type Options struct {
	// Address is the IP the components listen on; default 127.0.0.1.
	Address string
	// NoControllerManager leaves kube-controller-manager out.
	NoControllerManager bool
	// APIServerFlags are added to kube-apiserver's flags (e.g. --audit-policy-file=…).
	APIServerFlags []string
	// Log receives progress lines; nil discards them.
	Log func(format string, args ...any)
	// AuthenticationConfig starts kube-apiserver with --authentication-config, a file without
	// JWT authenticators (Cluster.AuthenticationConfigFile) that federation adds to: the API
	// server reloads it when it changes.
	AuthenticationConfig bool
}

// emptyAuthenticationConfig is an AuthenticationConfiguration without JWT authenticators.
const emptyAuthenticationConfig = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt: []\n"

// controllers are the kube-controller-manager controllers a cluster runs.
var controllers = []string{
	"namespace-controller", "serviceaccount-controller", "serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller", "garbage-collector-controller",
	"clusterrole-aggregation-controller", "job-controller", "deployment-controller",
	"replicaset-controller", "statefulset-controller", "daemonset-controller",
	"pod-garbage-collector-controller", "endpoints-controller", "endpointslice-controller",
	// For real nodes (test/node): it lifts the not-ready taint a kubelet registers its node with.
	"node-lifecycle-controller",
}

const (
	serviceCIDR         = "10.96.0.0/24"
	kubernetesServiceIP = "10.96.0.1"
)

// Cluster is one running control plane.
type Cluster struct {
	Name string
	// Server is the apiserver's URL, e.g. https://127.0.0.1:40123.
	Server string
	// CAData is the CA bundle (PEM) the cluster's clients trust: the cluster CA, which signs
	// the serving and admin certificates, and, once TrustCAs was called for a rotation of the
	// serving CA, the bundle it was given.
	CAData []byte
	// Config is an admin (system:masters) client config. TrustCAs replaces it.
	Config *rest.Config
	// Dir holds the cluster's files: certificates, data, component logs (`*.log`) and an admin
	// kubeconfig (`kubeconfig`, context named after the cluster).
	Dir string
	// Issuer is the service-account token issuer (and default audience) of this cluster.
	Issuer string
	// ServiceAccountKeyFile is the private key that signs service-account tokens.
	ServiceAccountKeyFile string
	// AuthenticationConfigFile is kube-apiserver's --authentication-config, with
	// Options.AuthenticationConfig; "" otherwise.
	AuthenticationConfigFile string

	clientset *kubernetes.Clientset
	procs     []*Process
	stopOnce  sync.Once
	// serving is what kube-apiserver serves with, for a rotation of its CA (ServeWith).
	serving servingFiles
}

// Kubeconfig is the path of the cluster's admin kubeconfig.
func (c *Cluster) Kubeconfig() string { return filepath.Join(c.Dir, "kubeconfig") }

// Clientset is an admin clientset.
func (c *Cluster) Clientset() *kubernetes.Clientset { return c.clientset }

// Start starts a cluster named name and waits until it serves (and, with the controller
// manager, until the `default` namespace has its `default` service account).
func Start(ctx context.Context, name string, opts Options) (*Cluster, error) {
	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	addr := opts.Address
	if addr == "" {
		addr = "127.0.0.1"
	}
	ip := net.ParseIP(addr)
	if ip == nil {
		return nil, fmt.Errorf("controlplane: %q is not an IP address", addr)
	}
	dir, err := os.MkdirTemp("", "mcsa-"+name+"-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Name: name, Dir: dir, Issuer: "https://" + name + ".cluster.mcsa.test"}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()

	ips := []net.IP{ip}
	if !ip.IsLoopback() {
		ips = append(ips, net.ParseIP("127.0.0.1"))
	}
	// Pods of a real node (test/node) reach the apiserver at the `kubernetes` Service's IP,
	// the first of --service-cluster-ip-range.
	ips = append(ips, net.ParseIP(kubernetesServiceIP))
	p, err := newPKI(dir, ips)
	if err != nil {
		return nil, fmt.Errorf("controlplane: certificates: %w", err)
	}
	c.CAData, c.ServiceAccountKeyFile = p.caPEM, p.saKey
	c.serving = servingFiles{cert: p.servingCert, key: p.servingKey, leaf: servingLeaf(ips)}

	extra := opts.APIServerFlags
	if opts.AuthenticationConfig {
		c.AuthenticationConfigFile = filepath.Join(dir, "authentication-config.yaml")
		if err := os.WriteFile(c.AuthenticationConfigFile, []byte(emptyAuthenticationConfig), 0o600); err != nil {
			return nil, err
		}
		extra = append(slices.Clone(extra), "--authentication-config="+c.AuthenticationConfigFile)
	}

	// Ports are picked free and may be taken by someone else before the component binds them;
	// a few attempts make that race harmless.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := freePorts(addr, 3)
		if err != nil {
			return nil, err
		}
		logf("%s: starting etcd and kube-apiserver on %s:%d", name, addr, ports[2])
		lastErr = c.startCore(ctx, bin, addr, ports, p, extra)
		if lastErr == nil {
			break
		}
		c.stopProcs()
		if ctx.Err() != nil {
			return nil, lastErr
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	if err := WriteKubeconfig(c.Kubeconfig(), c); err != nil {
		return nil, err
	}
	if !opts.NoControllerManager {
		logf("%s: starting kube-controller-manager", name)
		kcm, err := c.startProcess(bin, "kube-controller-manager",
			"--kubeconfig="+c.Kubeconfig(),
			"--service-account-private-key-file="+p.saKey,
			"--root-ca-file="+p.caCert,
			"--leader-elect=false",
			"--secure-port=0",
			// Only what tests and the playground rely on, to spare the machine's two cores.
			"--controllers="+strings.Join(controllers, ","),
			"--concurrent-gc-syncs=5",
			"-v=1",
		)
		if err != nil {
			return nil, err
		}
		c.procs = append(c.procs, kcm)
		if err := c.waitDefaultServiceAccount(ctx, kcm); err != nil {
			return nil, err
		}
	}
	logf("%s: ready at %s", name, c.Server)
	ok = true
	return c, nil
}

func (c *Cluster) startCore(ctx context.Context, bin, addr string, ports []int, p *pki, extra []string) error {
	host := net.JoinHostPort(addr, "")
	host = strings.TrimSuffix(host, ":")
	etcdURL := fmt.Sprintf("http://%s:%d", host, ports[0])
	etcd, err := c.startProcess(bin, "etcd",
		"--name="+c.Name,
		"--data-dir="+filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		fmt.Sprintf("--listen-peer-urls=http://%s:%d", host, ports[1]),
		fmt.Sprintf("--initial-advertise-peer-urls=http://%s:%d", host, ports[1]),
		fmt.Sprintf("--initial-cluster=%s=http://%s:%d", c.Name, host, ports[1]),
		"--unsafe-no-fsync",
		"--quota-backend-bytes=4294967296",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, etcd)

	c.Server = fmt.Sprintf("https://%s:%d", host, ports[2])
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=" + addr,
		"--advertise-address=" + addr,
		"--secure-port=" + strconv.Itoa(ports[2]),
		"--cert-dir=" + filepath.Join(c.Dir, "apiserver-certs"),
		"--tls-cert-file=" + p.servingCert,
		"--tls-private-key-file=" + p.servingKey,
		"--client-ca-file=" + p.caCert,
		"--service-account-issuer=" + c.Issuer,
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--authorization-mode=Node,RBAC",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--enable-priority-and-fairness=false",
		"--storage-media-type=application/vnd.kubernetes.protobuf",
		"-v=1",
	}
	api, err := c.startProcess(bin, "kube-apiserver", append(args, extra...)...)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, api)

	c.Config = &rest.Config{
		Host:            c.Server,
		TLSClientConfig: rest.TLSClientConfig{CAData: p.caPEM, CertData: p.adminPEM, KeyData: p.adminKPEM},
		QPS:             200,
		Burst:           400,
	}
	if c.clientset, err = kubernetes.NewForConfig(c.Config); err != nil {
		return err
	}
	return c.waitReady(ctx, etcd, api)
}

func (c *Cluster) waitReady(ctx context.Context, procs ...*Process) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, p := range procs {
			if p.Exited() {
				return false, fmt.Errorf("controlplane: %s of cluster %s exited: %s", p.name, c.Name, p.Logs())
			}
		}
		var status int
		c.clientset.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).StatusCode(&status)
		return status == http.StatusOK, nil
	})
	if err != nil && wait.Interrupted(err) {
		return fmt.Errorf("controlplane: kube-apiserver of cluster %s not ready: %w\n%s", c.Name, err, procs[len(procs)-1].Logs())
	}
	return err
}

func (c *Cluster) waitDefaultServiceAccount(ctx context.Context, kcm *Process) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		if kcm.Exited() {
			return false, fmt.Errorf("controlplane: kube-controller-manager of cluster %s exited: %s", c.Name, kcm.Logs())
		}
		_, last = c.clientset.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if last == nil {
			_, last = c.clientset.CoreV1().ConfigMaps(metav1.NamespaceDefault).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		}
		return last == nil, nil
	})
	if err != nil && wait.Interrupted(err) {
		return fmt.Errorf("controlplane: cluster %s: controller manager did not create the default service account: %w (last: %v)\n%s", c.Name, err, last, kcm.Logs())
	}
	return err
}

// kubeconfigFor is an admin kubeconfig for clusters, one context each, named after the
// cluster; the first is current.
func kubeconfigFor(clusters ...*Cluster) *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	for i, c := range clusters {
		cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.CAData}
		cfg.AuthInfos[c.Name+"-admin"] = &clientcmdapi.AuthInfo{
			ClientCertificateData: c.Config.CertData,
			ClientKeyData:         c.Config.KeyData,
		}
		cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: c.Name + "-admin", Namespace: metav1.NamespaceDefault}
		if i == 0 {
			cfg.CurrentContext = c.Name
		}
	}
	return cfg
}

// WriteKubeconfig writes one admin kubeconfig holding a context per cluster, named after it;
// the first cluster's context is current.
func WriteKubeconfig(path string, clusters ...*Cluster) error {
	return clientcmd.WriteToFile(*kubeconfigFor(clusters...), path)
}

// Stop stops the cluster's processes and removes its directory (kept when
// MCSA_KEEP_CLUSTERS is set). It is safe to call more than once.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		c.stopProcs()
		if os.Getenv("MCSA_KEEP_CLUSTERS") == "" {
			// Stop has no caller to report to: a directory left behind is litter in the temporary
			// folder, not a wrong result.
			_ = os.RemoveAll(c.Dir)
		}
	})
}

func (c *Cluster) stopProcs() {
	// Reverse order: the controller manager first, etcd last.
	for i := len(c.procs) - 1; i >= 0; i-- {
		c.procs[i].Stop()
	}
	c.procs = nil
}

// Logs returns the tail of a component's log, for failure messages.
func (c *Cluster) Logs(component string) string {
	for _, p := range c.procs {
		if p.name == component {
			return p.Logs()
		}
	}
	return ""
}

// Clusters is a set of running clusters.
type Clusters []*Cluster

// Stop stops every cluster.
func (cs Clusters) Stop() {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() { defer wg.Done(); c.Stop() }()
	}
	wg.Wait()
}

// StartAll starts clusters concurrently, all with opts; on error, those started are stopped.
func StartAll(ctx context.Context, opts Options, names ...string) (Clusters, error) {
	return StartEach(ctx, func(string) Options { return opts }, names...)
}

// StartEach starts clusters concurrently, each with the options opts gives for its name (e.g.
// an audit log for one of them); on error, those started are stopped.
func StartEach(ctx context.Context, opts func(name string) Options, names ...string) (Clusters, error) {
	cs := make(Clusters, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cs[i], errs[i] = Start(ctx, name, opts(name))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		var started Clusters
		for _, c := range cs {
			if c != nil {
				started = append(started, c)
			}
		}
		started.Stop()
		return nil, err
	}
	return cs, nil
}

// ForTest starts clusters for a test and stops them when it ends. Under -short it skips the
// test: these are end-to-end tests.
func ForTest(t testing.TB, names ...string) Clusters {
	t.Helper()
	return ForTestWith(t, Options{}, names...)
}

// ForTestWith is ForTest with options (Log defaults to the test's log).
func ForTestWith(t testing.TB, opts Options, names ...string) Clusters {
	t.Helper()
	SkipIfShort(t)
	if opts.Log == nil {
		opts.Log = t.Logf
	}
	cs, err := StartAll(context.Background(), opts, names...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cs.Stop)
	return cs
}

// SkipIfShort skips end-to-end tests under `go test -short`.
func SkipIfShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test against real control planes; runs without -short")
	}
}

func freePorts(addr string, n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			// Only the port numbers were wanted: closing a listener nobody used cannot lose data.
			_ = l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
		if err != nil {
			return nil, fmt.Errorf("controlplane: no free port on %s: %w", addr, err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) startProcess(bin, name string, args ...string) (*Process, error) {
	p, err := StartProcess(c.Dir, name, filepath.Join(bin, name), args...)
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	return p, nil
}

// BinDir is the directory holding the test binaries: MCSA_TESTBIN_DIR, else the output of
// hack/testbin/ensure.sh (which builds what is missing, printing progress on stderr).
func BinDir() (string, error) {
	binOnce.Do(func() {
		if d := os.Getenv("MCSA_TESTBIN_DIR"); d != "" {
			binDir = d
			return
		}
		root, err := moduleRoot()
		if err != nil {
			binErr = err
			return
		}
		cmd := exec.Command("bash", filepath.Join(root, "hack/testbin/ensure.sh"), "etcd", "kube-apiserver", "kube-controller-manager")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			binErr = fmt.Errorf("controlplane: building test binaries (hack/testbin/ensure.sh): %w", err)
			return
		}
		binDir = strings.TrimSpace(string(out))
	})
	return binDir, binErr
}

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// moduleRoot finds the product module's root from the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/kubectl-mcsa/kubectl-mcsa\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("controlplane: set MCSA_TESTBIN_DIR or run from inside the kubectl-mcsa checkout")
		}
		dir = parent
	}
}

// StopComponent stops one of the cluster's components (etcd, kube-apiserver,
// kube-controller-manager), for fault injection; StartComponent starts it again, with the same
// flags, port and data. Its log goes on in the same file.
func (c *Cluster) StopComponent(name string) error {
	p := c.component(name)
	if p == nil {
		return fmt.Errorf("controlplane: cluster %s has no %s", c.Name, name)
	}
	p.Stop()
	return nil
}

// KillComponent ends one of the cluster's components with SIGKILL: a crash, not a shutdown.
func (c *Cluster) KillComponent(name string) error {
	p := c.component(name)
	if p == nil {
		return fmt.Errorf("controlplane: cluster %s has no %s", c.Name, name)
	}
	if err := syscall.Kill(-p.Pid(), syscall.SIGKILL); err != nil && !p.Exited() {
		return err
	}
	<-p.done
	return nil
}

// StartComponent starts a component StopComponent or KillComponent ended, and waits until the
// API server is ready again.
func (c *Cluster) StartComponent(ctx context.Context, name string) error {
	return c.startComponent(ctx, name)
}

// startComponent is StartComponent with flags (--name=value) replacing those of the same name.
func (c *Cluster) startComponent(ctx context.Context, name string, flags ...string) error {
	p := c.component(name)
	if p == nil {
		return fmt.Errorf("controlplane: cluster %s has no %s", c.Name, name)
	}
	if !p.Exited() {
		return fmt.Errorf("controlplane: %s of cluster %s is running", name, c.Name)
	}
	again, err := StartProcess(c.Dir, name, p.cmd.Path, replaceFlags(p.cmd.Args[1:], flags)...)
	if err != nil {
		return err
	}
	for i := range c.procs {
		if c.procs[i] == p {
			c.procs[i] = again
		}
	}
	var serving []*Process
	for _, name := range []string{"etcd", "kube-apiserver"} {
		if q := c.component(name); q != nil {
			serving = append(serving, q)
		}
	}
	return c.waitReady(ctx, serving...)
}

// replaceFlags is args with each flag of set (--name=value) in place of the flag of that name,
// or added.
func replaceFlags(args, set []string) []string {
	out := slices.Clone(args)
	for _, f := range set {
		name, _, _ := strings.Cut(f, "=")
		i := slices.IndexFunc(out, func(a string) bool { return strings.HasPrefix(a, name+"=") })
		if i < 0 {
			out = append(out, f)
			continue
		}
		out[i] = f
	}
	return out
}

func (c *Cluster) component(name string) *Process {
	for _, p := range c.procs {
		if p.name == name {
			return p
		}
	}
	return nil
}
