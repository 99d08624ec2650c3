package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// Cluster A (cluster1) imports from cluster B (cluster2), as in the other end-to-end tests.
const (
	clusterA = "cluster1"
	clusterB = "cluster2"
	// Namespaces of B holding the service accounts imported by the bulk runs and by the
	// steady-state run, each granted to A as a whole.
	remoteBulk   = "bench"
	remoteSteady = "steady"
	// controllerNS is the controller's namespace in A.
	controllerNS = v1alpha1.DefaultNamespace
	// importerAgent is the importer's user agent in B (importer.FieldManager); the audit log
	// tells its token requests apart by it.
	importerAgent = "mcsa-importer"
	rawAgent      = "mcsa-bench-raw-loop"
)

// env is the two clusters set up as after `kubectl mcsa install` in A, `kubectl mcsa bootstrap
// cluster1 cluster2` and a namespace-wide `kubectl mcsa allow` in B, plus the webhook's
// registration pointing at the controller on loopback.
type env struct {
	cfg    Config
	report *Report
	log    func(string, ...any)
	dir    string

	a, b   *controlplane.Cluster
	scheme *runtime.Scheme
	// ac, akube and bkube are admin clients without client-side rate limits.
	ac           client.WithWatch
	akube, bkube kubernetes.Interface
	auditLog     string

	// controllerConfig is the controller's identity in A (service account mcsa-controller with
	// the shipped RBAC), as a kubeconfig file for the controller and a config for the raw loop.
	controllerKubeconfig string
	controllerConfig     *rest.Config
	// remoteToken is the importer's identity in B: the cluster credential's first token.
	remoteToken string

	webhookPort, probePort, metricsPort int
	webhookCA                           []byte

	ctrl *controller
	// memory samples the controller's RSS against the imports it holds.
	memory []memorySample
	// ctrlRuns numbers the controller's runs, for log file names.
	ctrlRuns int
}

// auditPolicy records B's token requests, and nothing else, for the steady-state figures.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create]
  resources:
  - group: ""
    resources: [serviceaccounts/token]
- level: None
`

func newEnv(ctx context.Context, cfg Config, report *Report) (_ *env, err error) {
	e := &env{cfg: cfg, report: report, log: cfg.Log}
	if e.log == nil {
		e.log = func(string, ...any) {}
	}
	if e.dir, err = os.MkdirTemp("", "mcsa-bench-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	policy := filepath.Join(e.dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, err
	}
	e.auditLog = filepath.Join(e.dir, "cluster2-audit.log")

	e.log("starting clusters %s and %s", clusterA, clusterB)
	var wg sync.WaitGroup
	var errA, errB error
	wg.Add(2)
	go func() {
		defer wg.Done()
		e.a, errA = controlplane.Start(ctx, clusterA, controlplane.Options{})
	}()
	go func() {
		defer wg.Done()
		e.b, errB = controlplane.Start(ctx, clusterB, controlplane.Options{APIServerFlags: []string{
			"--audit-policy-file=" + policy, "--audit-log-path=" + e.auditLog, "--audit-log-format=json", "--audit-log-maxbackup=0",
		}})
	}()
	wg.Wait()
	if err := errors.Join(errA, errB); err != nil {
		return nil, err
	}

	e.scheme = runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(e.scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(e.scheme); err != nil {
		return nil, err
	}
	unlimited := func(c *rest.Config) *rest.Config {
		c = rest.CopyConfig(c)
		c.QPS, c.Burst = -1, 0
		return c
	}
	if e.ac, err = client.NewWithWatch(unlimited(e.a.Config), client.Options{Scheme: e.scheme}); err != nil {
		return nil, err
	}
	if e.akube, err = kubernetes.NewForConfig(unlimited(e.a.Config)); err != nil {
		return nil, err
	}
	if e.bkube, err = kubernetes.NewForConfig(unlimited(e.b.Config)); err != nil {
		return nil, err
	}
	if err := e.setUpA(ctx); err != nil {
		return nil, fmt.Errorf("setting up %s: %w", clusterA, err)
	}
	if err := e.setUpB(ctx); err != nil {
		return nil, fmt.Errorf("setting up %s: %w", clusterB, err)
	}
	if err := e.addCredential(ctx); err != nil {
		return nil, fmt.Errorf("cluster credential: %w", err)
	}
	for _, p := range []*int{&e.webhookPort, &e.probePort, &e.metricsPort} {
		if *p, err = freePort(); err != nil {
			return nil, err
		}
	}
	if err := e.setUpWebhook(ctx); err != nil {
		return nil, fmt.Errorf("webhook registration: %w", err)
	}
	return e, nil
}

func (e *env) close() {
	if e.ctrl != nil {
		e.ctrl.stop()
	}
	var cs controlplane.Clusters
	for _, c := range []*controlplane.Cluster{e.a, e.b} {
		if c != nil {
			cs = append(cs, c)
		}
	}
	cs.Stop()
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// setUpA installs the CRD and the controller's identity and RBAC as shipped, and writes a
// kubeconfig of that identity for the controller.
func (e *env) setUpA(ctx context.Context) error {
	for _, f := range []string{"crd/multicluster.admiralty.io_serviceaccountimports.yaml", "controller/namespace.yaml",
		"controller/serviceaccount.yaml", "controller/rbac.yaml", "webhook/rbac.yaml"} {
		if err := e.applyManifest(ctx, f); err != nil {
			return err
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		return e.ac.List(ctx, &v1alpha1.ServiceAccountImportList{}) == nil, nil
	}); err != nil {
		return fmt.Errorf("the ServiceAccountImport CRD is not served: %w", err)
	}
	if err := e.waitServiceAccount(ctx, controllerNS, "mcsa-controller"); err != nil {
		return err
	}
	tr, err := e.akube.CoreV1().ServiceAccounts(controllerNS).CreateToken(ctx, "mcsa-controller",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](12 * 3600)}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	e.controllerConfig = &rest.Config{Host: e.a.Server, BearerToken: tr.Status.Token, TLSClientConfig: rest.TLSClientConfig{CAData: e.a.CAData}}
	kc := clientcmdapi.NewConfig()
	kc.Clusters[clusterA] = &clientcmdapi.Cluster{Server: e.a.Server, CertificateAuthorityData: e.a.CAData}
	kc.AuthInfos["mcsa-controller"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	kc.Contexts[clusterA] = &clientcmdapi.Context{Cluster: clusterA, AuthInfo: "mcsa-controller", Namespace: controllerNS}
	kc.CurrentContext = clusterA
	e.controllerKubeconfig = filepath.Join(e.dir, "controller.kubeconfig")
	return clientcmd.WriteToFile(*kc, e.controllerKubeconfig)
}

// setUpB does what bootstrap and a namespace-wide allow do in B, and creates the service
// accounts the runs import.
func (e *env) setUpB(ctx context.Context) error {
	bc, err := client.New(rest.CopyConfig(e.b.Config), client.Options{Scheme: e.scheme})
	if err != nil {
		return err
	}
	objs := []client.Object{grant.ImporterNamespace(), grant.ImporterServiceAccount(clusterA), grant.SelfRenewRole(clusterA), grant.SelfRenewRoleBinding(clusterA)}
	for _, ns := range []string{remoteBulk, remoteSteady} {
		role, err := grant.NamespaceImportRole(clusterA, ns)
		if err != nil {
			return err
		}
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, role, grant.NamespaceImportRoleBinding(clusterA, ns))
	}
	for _, o := range objs {
		if err := bc.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	counts := map[string]int{remoteBulk: max(e.cfg.Imports, webhookImports), remoteSteady: e.cfg.SteadyImports}
	for ns, n := range counts {
		e.log("creating %d service accounts in %s/%s", n, clusterB, ns)
		if err := parallel(ctx, n, 16, func(ctx context.Context, i int) error {
			_, err := e.bkube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: saName(i)}}, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return nil
			}
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// addCredential creates the cluster credential for B in A as bootstrap does: the import named
// after B and its first secret, holding a token of the importer's identity minted by B's admin.
func (e *env) addCredential(ctx context.Context) error {
	imp := &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: controllerNS, Name: clusterB},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: clusterB, Namespace: grant.Namespace, Name: grant.ServiceAccountName(clusterA)},
	}
	if err := e.ac.Create(ctx, imp); err != nil {
		return err
	}
	if err := e.waitServiceAccount(ctx, grant.Namespace, grant.ServiceAccountName(clusterA), e.bkube); err != nil {
		return err
	}
	tr, err := e.bkube.CoreV1().ServiceAccounts(grant.Namespace).CreateToken(ctx, grant.ServiceAccountName(clusterA),
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](12 * 3600)}}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	e.remoteToken = tr.Status.Token
	s, err := credential.NewSecret(imp, credential.Data{ClusterName: clusterB, Server: e.b.Server, CAData: e.b.CAData, Namespace: grant.Namespace, Token: tr.Status.Token})
	if err != nil {
		return err
	}
	return e.ac.Create(ctx, s)
}

func (e *env) waitServiceAccount(ctx context.Context, ns, name string, kube ...kubernetes.Interface) error {
	k := e.akube
	if len(kube) > 0 {
		k = kube[0]
	}
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := k.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil, nil
	})
}

// namespaceA creates a namespace of A and waits for its default service account (pods need it).
func (e *env) namespaceA(ctx context.Context, name string, labels map[string]string) error {
	_, err := e.akube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return e.waitServiceAccount(ctx, name, "default")
}

// createImports creates imports name-0 … name-(n-1) in namespace ns of A, importing
// remoteNS/sa-i of B, as fast as the API server takes them.
func (e *env) createImports(ctx context.Context, ns, prefix, remoteNS string, n int, seconds *int64) error {
	if err := e.namespaceA(ctx, ns, nil); err != nil {
		return err
	}
	return parallel(ctx, n, 16, func(ctx context.Context, i int) error {
		return e.ac.Create(ctx, newImport(ns, prefix, remoteNS, i, seconds))
	})
}

func newImport(ns, prefix, remoteNS string, i int, seconds *int64) *v1alpha1.ServiceAccountImport {
	return &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("%s-%d", prefix, i)},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: clusterB, Namespace: remoteNS, Name: saName(i), ExpirationSeconds: seconds},
	}
}

func saName(i int) string { return fmt.Sprintf("sa-%d", i) }

func (e *env) applyManifest(ctx context.Context, path string) error {
	b, err := manifests.FS.ReadFile(path)
	if err != nil {
		return err
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return err
		}
		if len(m) == 0 {
			continue
		}
		if err := e.ac.Create(ctx, &unstructured.Unstructured{Object: m}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
}

// parallel runs f for 0 … n-1 on workers goroutines, stopping at the first error.
func parallel(ctx context.Context, n, workers int, f func(context.Context, int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
