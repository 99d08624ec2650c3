package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// bulk measures items 1 and 5 for one set of limits: N imports created while the controller
// is stopped, then the controller started and every import's Ready transition timed; against
// the raw loop doing only the unavoidable work of an import (a TokenRequest in B, a Secret
// create in A) with the same workers and client rate limits.
//
// Both rates are (N-1)/(last completion - first completion): the controller's start-up and
// cache sync, and the raw loop's connection set-up, are left out alike.
func (e *env) bulk(ctx context.Context, lim Limits) error {
	n := e.cfg.Imports
	e.stopController()
	ns := "bulk-" + lim.Name

	e.log("bulk %s: raw loop", lim.Name)
	cpu0 := e.cpuNow()
	raw, err := e.rawLoop(ctx, lim, "raw-"+lim.Name, n)
	if err != nil {
		return fmt.Errorf("raw loop: %w", err)
	}
	rawRate, rawSpan := rate(raw)
	rawCPU := perItem(cpu0, e.cpuNow(), n)

	if bin := e.cfg.BaselineControllerBin; bin != "" {
		if err := e.createImports(ctx, ns+"-baseline", "imp", remoteBulk, n, nil); err != nil {
			return err
		}
		// The baseline's imports are created first, so that each binary finds only its own
		// to issue (and the one under test, the baseline's, Ready, to keep).
		base, err := e.importerRun(ctx, lim, ns+"-baseline", bin, nil)
		if err != nil {
			return fmt.Errorf("baseline controller: %w", err)
		}
		e.stopController()
		e.report.add(Row{Item: 1, Measure: fmt.Sprintf("Bulk import throughput, N=%d, %s, **baseline controller** (%s)", n, lim, bin),
			Result: fmt.Sprintf("importer %.1f/s (%s; %s from process start), raw loop %.1f/s: ratio **%.2f**",
				base.rate, base.span.Round(100*time.Millisecond), base.fromStart.Round(100*time.Millisecond), rawRate, base.rate/rawRate),
			Target: "ratio ≥ 0.8", Verdict: verdict(base.rate/rawRate >= 0.8)})
		e.report.note("Bulk %s, baseline controller, CPU per import (ms), from /proc: importer (from its process start) %s", lim.Name, base.cpu)
		e.report.note("Bulk %s, baseline controller, its requests per import (from its start, list and watch included): %s", lim.Name, base.requests)
	}

	e.log("bulk %s: creating %d imports in %s/%s (controller stopped)", lim.Name, n, clusterA, ns)
	if err := e.createImports(ctx, ns, "imp", remoteBulk, n, nil); err != nil {
		return err
	}
	run, err := e.importerRun(ctx, lim, ns, e.cfg.ControllerBin, e.cfg.ControllerArgs)
	if err != nil {
		return err
	}
	ratio := run.rate / rawRate
	e.report.add(Row{Item: 1, Measure: fmt.Sprintf("Bulk import throughput, N=%d, %s", n, lim),
		Result: fmt.Sprintf("importer %.1f/s (%s; %s from process start), raw loop %.1f/s (%s): ratio **%.2f**",
			run.rate, run.span.Round(100*time.Millisecond), run.fromStart.Round(100*time.Millisecond), rawRate, rawSpan.Round(100*time.Millisecond), ratio),
		Target: "ratio ≥ 0.8", Verdict: verdict(ratio >= 0.8)})

	e.report.note("Bulk %s, CPU per import (ms), from /proc: raw loop %s; importer (from its process start) %s", lim.Name, rawCPU, run.cpu)
	if run.requests != "" {
		e.report.note("Bulk %s, the controller's requests per import (from its start, list and watch included): %s", lim.Name, run.requests)
	}

	rss, peak, err := e.ctrl.memory()
	if err != nil {
		return err
	}
	held, err := e.importCount(ctx)
	if err != nil {
		return err
	}
	e.report.add(Row{Item: 5, Measure: fmt.Sprintf("Controller memory right after the %s run, %d imports held", lim.Name, held),
		Result: fmt.Sprintf("VmRSS %s (peak VmHWM %s)", mib(rss), mib(peak)), Target: "≤ 150 MiB at 10,000",
		Verdict: memoryVerdict(held, rss)})

	// Again once restarted and idle, without the garbage of the run.
	if err := e.restartAndSettle(ctx, lim, held); err != nil {
		return err
	}
	if rss, peak, err = e.ctrl.memory(); err != nil {
		return err
	}
	e.report.add(Row{Item: 5, Measure: fmt.Sprintf("Controller memory, %d imports held, restarted and idle", held),
		Result: fmt.Sprintf("VmRSS %s (peak VmHWM %s)", mib(rss), mib(peak)), Target: "≤ 150 MiB at 10,000",
		Verdict: memoryVerdict(held, rss)})
	e.memory = append(e.memory, memorySample{imports: held, rss: rss})
	e.report.loadNow("after bulk " + lim.Name)
	return nil
}

// importerResult is one controller binary's bulk run.
type importerResult struct {
	rate            float64
	span, fromStart time.Duration
	// cpu and requests describe the CPU of every process and the controller's requests, per
	// import, from the controller's start.
	cpu, requests string
}

// importerRun starts the controller binary bin (the one under test stopped first) and times
// the Ready transitions of the n imports of ns, created beforehand; the controller is left
// running.
func (e *env) importerRun(ctx context.Context, lim Limits, ns, bin string, extra []string) (importerResult, error) {
	n := e.cfg.Imports
	e.log("bulk %s: importer %s", lim.Name, bin)
	e.stopController()
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tracker := e.trackReady(tctx, ns)
	cpu0 := e.cpuNow()
	if err := e.startBinary(ctx, lim, bin, extra); err != nil {
		return importerResult{}, err
	}
	started := e.ctrl.started
	// Generous: ten times what the remote rate limit allows, plus start-up.
	timeout := 5*time.Minute + time.Duration(float64(n)*2/lim.RemoteQPS*10)*time.Second
	if err := tracker.wait(ctx, n, timeout, e.log); err != nil {
		return importerResult{}, fmt.Errorf("importer: %w", err)
	}
	var done []time.Time
	var last time.Time
	for _, t := range tracker.times() {
		done = append(done, t)
		if t.After(last) {
			last = t
		}
	}
	res := importerResult{cpu: perItem(cpu0, e.cpuNow(), n), fromStart: last.Sub(started)}
	res.rate, res.span = rate(done)
	if reqs, err := e.ctrl.requests(); err == nil {
		res.requests = e.describeRequests(reqs, n)
	}
	return res, nil
}

// restartAndSettle restarts the controller and waits until it has reconciled every import
// once and its queue is empty, then a few seconds more.
func (e *env) restartAndSettle(ctx context.Context, lim Limits, imports int) error {
	e.stopController()
	if err := e.startController(ctx, lim); err != nil {
		return err
	}
	controller := map[string]string{"controller": "serviceaccountimport"}
	var done, depth float64
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 10*time.Minute, true, func(context.Context) (bool, error) {
		var err1, err2 error
		done, err1 = e.ctrl.metric("controller_runtime_reconcile_total", controller)
		depth, err2 = e.ctrl.metric("workqueue_depth", controller)
		return err1 == nil && err2 == nil && done >= float64(imports) && depth == 0, nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("the restarted controller did not settle: %g reconciles of %d imports, queue depth %g", done, imports, depth)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(5 * time.Second):
	}
	return nil
}

// describeRequests names the hosts of requests counts and divides them by items.
func (e *env) describeRequests(reqs map[string]float64, items int) string {
	var parts []string
	for _, c := range []struct{ name, server string }{{clusterA, e.a.Server}, {clusterB, e.b.Server}} {
		host := strings.TrimPrefix(c.server, "https://")
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if v := reqs[host+" "+m]; v > 0 {
				parts = append(parts, fmt.Sprintf("%s %s %.2f", c.name, m, v/float64(items)))
			}
		}
	}
	return strings.Join(parts, ", ")
}

// memoryVerdict judges only at 10,000 imports or more.
func memoryVerdict(held int, rss int64) string {
	if held < 10000 {
		return ""
	}
	return verdict(rss <= 150<<20)
}

// rawLoop is the lower bound of an import's cost: a TokenRequest in B as the importer's
// identity, then the same secret created in A as the controller's identity, with the
// importer's concurrency and client rate limits. It returns each item's completion time.
func (e *env) rawLoop(ctx context.Context, lim Limits, ns string, n int) ([]time.Time, error) {
	if err := e.namespaceA(ctx, ns, nil); err != nil {
		return nil, err
	}
	remote, err := kubernetes.NewForConfig(&rest.Config{
		Host: e.b.Server, BearerToken: e.remoteToken, TLSClientConfig: rest.TLSClientConfig{CAData: e.b.CAData},
		QPS: float32(lim.RemoteQPS), Burst: lim.RemoteBurst, Timeout: 30 * time.Second, UserAgent: rawAgent,
	})
	if err != nil {
		return nil, err
	}
	lc := rest.CopyConfig(e.controllerConfig)
	lc.QPS, lc.Burst, lc.UserAgent = float32(lim.KubeQPS), lim.KubeBurst, rawAgent
	local, err := kubernetes.NewForConfig(lc)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	done := make([]time.Time, 0, n)
	err = parallel(ctx, n, lim.Concurrency, func(ctx context.Context, i int) error {
		tr, err := remote.CoreV1().ServiceAccounts(remoteBulk).CreateToken(ctx, saName(i), &authenticationv1.TokenRequest{
			// As the importer asks: bound to the grant's anchor (B's admission refuses otherwise).
			Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600), BoundObjectRef: grant.BoundObjectRef(clusterA, saName(i))},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		data, err := credential.Data{ClusterName: clusterB, Server: e.b.Server, CAData: e.b.CAData, Namespace: remoteBulk, Token: tr.Status.Token}.SecretData(v1alpha1.MountPath(fmt.Sprintf("raw-%d", i)))
		if err != nil {
			return err
		}
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("raw-%d-token", i)}, Type: corev1.SecretTypeOpaque, Data: data}
		if _, err := local.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			return err
		}
		mu.Lock()
		done = append(done, time.Now())
		mu.Unlock()
		return nil
	})
	return done, err
}

type memorySample struct {
	imports int
	rss     int64
}
