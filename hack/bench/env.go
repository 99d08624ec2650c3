package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
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
// cluster1 cluster2` and a namespace-wide `kubectl mcsa allow` in B (test/fixture), plus the
// webhook's registration pointing at the controller on loopback.
type env struct {
	cfg    Config
	report *Report
	log    func(string, ...any)
	dir    string

	f    *fixture.Fixture
	a, b *fixture.Cluster
	// ac, akube and bkube are admin clients without client-side rate limits.
	ac           client.WithWatch
	akube, bkube kubernetes.Interface
	auditLog     string

	// controllerConfig is the controller's identity in A (service account mcsa-controller with
	// the shipped RBAC), for the raw loop; the controller runs with its kubeconfig file.
	controllerConfig *rest.Config
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
	e.f, err = fixture.Start(ctx, fixture.Options{
		Clusters: []string{clusterA, clusterB},
		ClusterOptions: func(name string) controlplane.Options {
			if name != clusterB {
				return controlplane.Options{}
			}
			return controlplane.Options{APIServerFlags: []string{
				"--audit-policy-file=" + policy, "--audit-log-path=" + e.auditLog, "--audit-log-format=json", "--audit-log-maxbackup=0",
			}}
		},
		Install:   []string{clusterA},
		Bootstrap: []fixture.Link{{Target: clusterA, Source: clusterB}},
	})
	if err != nil {
		return nil, err
	}
	e.a, e.b = e.f.Cluster(clusterA), e.f.Cluster(clusterB)
	e.controllerConfig = e.a.ControllerConfig
	e.remoteToken = e.f.BootstrapToken(clusterA, clusterB)

	unlimited := func(c *rest.Config) *rest.Config {
		c = rest.CopyConfig(c)
		c.QPS, c.Burst = -1, 0
		return c
	}
	if e.ac, err = client.NewWithWatch(unlimited(e.a.Config), client.Options{Scheme: e.f.Scheme}); err != nil {
		return nil, err
	}
	if e.akube, err = kubernetes.NewForConfig(unlimited(e.a.Config)); err != nil {
		return nil, err
	}
	if e.bkube, err = kubernetes.NewForConfig(unlimited(e.b.Config)); err != nil {
		return nil, err
	}
	if err := e.setUpB(ctx); err != nil {
		return nil, fmt.Errorf("setting up %s: %w", clusterB, err)
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

// close stops the controller and the clusters and removes the run's folder.
func (e *env) close() {
	e.stopController()
	if e.f != nil {
		e.f.Stop()
	}
	// On the way out, after the report or with the run's own error: a folder left behind is
	// litter in the temporary folder, not a wrong figure.
	_ = os.RemoveAll(e.dir)
}

// setUpB grants A the namespaces of B the runs import from, as a namespace-wide allow does, and
// creates their service accounts.
func (e *env) setUpB(ctx context.Context) error {
	for _, ns := range []string{remoteBulk, remoteSteady} {
		if err := e.b.CreateIfMissing(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return err
		}
		if err := e.f.AllowNamespace(ctx, clusterA, clusterB, ns); err != nil {
			return err
		}
	}
	counts := map[string]int{remoteBulk: max(e.cfg.Imports, webhookImports), remoteSteady: e.cfg.SteadyImports}
	for ns, n := range counts {
		e.log("creating %d service accounts in %s/%s", n, clusterB, ns)
		if err := parallel(ctx, n, 16, func(ctx context.Context, i int) error {
			_, err := e.bkube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: saName(i)}}, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return err
			}
			return e.f.Anchor(ctx, clusterA, clusterB, ns, saName(i))
		}); err != nil {
			return err
		}
	}
	return nil
}

// namespaceA creates a namespace of A and waits for its default service account (pods need it).
func (e *env) namespaceA(ctx context.Context, name string, labels map[string]string) error {
	_, err := e.akube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return e.a.Namespaces(ctx, name)
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
