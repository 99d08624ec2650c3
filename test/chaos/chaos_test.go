// Package chaos injects faults into the real control planes and the real controller process and
// measures what users fear: tokens lost, secrets duplicated, tokens minted twice, how long
// recovery takes. `make test` runs a short version; `make chaos` (MCSA_CHAOS=long) runs the full
// one and writes its figures into docs/reliability.md.
package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

const (
	clusterA = "cluster1"
	clusterB = "cluster2"
	ns       = "chaos"
)

// scale is how hard a run pushes.
type scale struct {
	imports int
	kills   int
	outage  time.Duration
}

var (
	short = scale{imports: 10, kills: 2, outage: 15 * time.Second}
	long  = scale{imports: 200, kills: 20, outage: 2 * time.Minute}
)

// figure is one measured result, for the log and docs/reliability.md.
type figure struct{ what, result, promise, verdict string }

type env struct {
	f      *fixture.Fixture
	a, b   *fixture.Cluster
	s      scale
	ctrl   *controlplane.Process
	figs   []figure
	binary string
	// root is the whole run's test: controllers started in a case outlive it.
	root *testing.T
}

func TestChaos(t *testing.T) {
	controlplane.SkipIfShort(t)
	s, longRun := short, os.Getenv("MCSA_CHAOS") == "long"
	if longRun {
		s = long
	}
	f := fixture.ForTest(t, fixture.Options{
		Clusters:  []string{clusterA, clusterB},
		Install:   []string{clusterA},
		Bootstrap: []fixture.Link{{Target: clusterA, Source: clusterB}},
	})
	e := &env{f: f, a: f.Cluster(clusterA), b: f.Cluster(clusterB), s: s, root: t}
	ctx := t.Context()
	must(t, e.a.Namespaces(ctx, ns))
	must(t, e.b.Namespaces(ctx, ns))
	sas := make([]string, s.imports)
	for i := range sas {
		sas[i] = fmt.Sprintf("sa-%d", i)
		must(t, e.b.CreateIfMissing(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sas[i]}}))
	}
	must(t, f.Allow(ctx, clusterA, clusterB, ns, sas...))
	bin, err := controlplane.BuildCommand("./incluster/cmd/mcsa-controller", t.TempDir())
	must(t, err)
	e.binary = bin
	e.startController()
	for i := range sas {
		must(t, e.a.Client.Create(ctx, &v1alpha1.ServiceAccountImport{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sas[i]},
			Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: clusterB, Namespace: ns, Name: sas[i]},
		}))
	}
	e.waitAll(t, "", 2*time.Minute)

	// In order: each case starts from every import ready.
	t.Run("controller killed mid-refresh", e.testKills)
	t.Run("B's API server down, then back", e.testRemoteOutage)
	t.Run("B's etcd restarted", e.testRemoteEtcdRestart)
	t.Run("A's etcd restarted", e.testLocalEtcdRestart)

	var b strings.Builder
	fmt.Fprintf(&b, "| case | result | promise | verdict |\n| --- | --- | --- | --- |\n")
	for _, fg := range e.figs {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", fg.what, fg.result, fg.promise, fg.verdict)
	}
	t.Logf("figures (%d imports, %d kills, %s outage):\n%s", s.imports, s.kills, s.outage, b.String())
	if longRun && !t.Failed() {
		writeFigures(t, s, b.String())
	}
}

func (e *env) startController() {
	e.ctrl = controlplane.StartControllerForTest(e.root, controlplane.Controller{Binary: e.binary, Kubeconfig: e.a.ControllerKubeconfig, Name: "mcsa-controller-" + strconv.Itoa(int(time.Now().UnixNano()%1e6))})
}

// record adds a figure; a broken promise fails the test.
func (e *env) record(t *testing.T, what, result, promise string, kept bool) {
	t.Helper()
	verdict := "kept"
	if !kept {
		verdict = "BROKEN"
		t.Errorf("%s: %s (promise: %s)", what, result, promise)
	}
	e.figs = append(e.figs, figure{what, result, promise, verdict})
}

// testKills: the controller is SIGKILLed at random points of a round of refreshes (every import
// asked to rotate), then restarted; every round must complete with one secret per import, every
// import ready with a token B accepts, and at most a few tokens minted twice per kill.
func (e *env) testKills(t *testing.T) {
	extra := 0
	for k := range e.s.kills {
		round := fmt.Sprintf("kill-%d", k)
		before := e.tokensMinted(t)
		e.requestRefresh(t, round)
		time.Sleep(time.Duration(rand.Int64N(int64(1500 * time.Millisecond)))) // somewhere in the round
		if err := syscall.Kill(-e.ctrl.Pid(), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		e.ctrl.Stop() // reaps it
		e.startController()
		e.waitAll(t, round, 2*time.Minute)
		extra += e.tokensMinted(t) - before - e.s.imports
	}
	dups, missing := e.secrets(t)
	e.record(t, fmt.Sprintf("controller SIGKILLed %d times mid-refresh, %d imports", e.s.kills, e.s.imports),
		fmt.Sprintf("%d duplicate secrets, %d imports without a secret", dups, missing), "0 duplicate secrets, 0 lost", dups == 0 && missing == 0)
	rejected := e.tokensRejected(t)
	e.record(t, "tokens held after the kills, checked by B (TokenReview)", fmt.Sprintf("%d of %d rejected", rejected, e.s.imports), "0 rejected", rejected == 0)
	e.record(t, "tokens minted beyond one per import per round", fmt.Sprintf("%d over %d kills", extra, e.s.kills),
		"at most the refreshes in flight at each kill (the controller records a minted token before the next)", extra >= 0 && extra <= e.s.kills*e.s.imports)
}

// testRemoteOutage: B's API server is down while every import is asked to rotate: the tokens in
// A's secrets stay (B is not refusing, only away), conditions say ClusterUnreachable, and the
// rotations complete once B is back.
func (e *env) testRemoteOutage(t *testing.T) {
	ctx := t.Context()
	before := e.tokens(t)
	must(t, e.b.StopComponent("kube-apiserver"))
	down := time.Now()
	e.requestRefresh(t, "outage")
	time.Sleep(e.s.outage)
	var imps v1alpha1.ServiceAccountImportList
	must(t, e.a.Client.List(ctx, &imps, client.InNamespace(ns)))
	unreachable := 0
	for _, i := range imps.Items {
		if c := meta.FindStatusCondition(i.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Reason == v1alpha1.ReasonClusterUnreachable {
			unreachable++
		}
	}
	_, missing := e.secrets(t)
	empty := e.emptyTokens(t)
	e.record(t, fmt.Sprintf("B's API server down %s, every import asked to rotate", e.s.outage.Round(time.Second)),
		fmt.Sprintf("%d tokens removed from A's secrets, %d secrets lost; %d of %d imports say ClusterUnreachable", empty, missing, unreachable, e.s.imports),
		"0 removed, 0 lost (clients keep their current tokens); the condition says why", empty == 0 && missing == 0)
	back := time.Now() // B's API server starting: from here on it may answer
	must(t, e.b.StartComponent(ctx, "kube-apiserver"))
	ready := time.Since(back)
	e.waitAll(t, "outage", 10*time.Minute)
	rotated := 0
	for name, tok := range e.tokens(t) {
		if tok != before[name] {
			rotated++
		}
	}
	e.record(t, "rotations pending when B came back", fmt.Sprintf("%d of %d rotated, all %.1f s after B's API server started (ready after %.1f s; down %.0f s)",
		rotated, e.s.imports, time.Since(back).Seconds(), ready.Seconds(), back.Sub(down).Seconds()),
		"every rotation done (a failed refresh is retried until it succeeds), within the retry backoff (at most --max-retry-delay, 5 min)",
		rotated == e.s.imports && time.Since(back) < 5*time.Minute+30*time.Second)
}

// testRemoteEtcdRestart: B's etcd restarts (killed): imports keep their tokens and refresh after.
func (e *env) testRemoteEtcdRestart(t *testing.T) {
	ctx := t.Context()
	must(t, e.b.KillComponent("etcd"))
	e.requestRefresh(t, "etcd-b")
	time.Sleep(3 * time.Second)
	must(t, e.b.StartComponent(ctx, "etcd"))
	back := time.Now()
	e.waitAll(t, "etcd-b", 10*time.Minute)
	empty := e.emptyTokens(t)
	e.record(t, "B's etcd killed and restarted during rotations", fmt.Sprintf("%d tokens removed; rotations done %.1f s after its return", empty, time.Since(back).Seconds()),
		"0 removed; rotations complete", empty == 0)
}

// testLocalEtcdRestart: A's etcd restarts: the controller recovers by itself (same process).
func (e *env) testLocalEtcdRestart(t *testing.T) {
	ctx := t.Context()
	pid := e.ctrl.Pid()
	must(t, e.a.KillComponent("etcd"))
	time.Sleep(3 * time.Second)
	must(t, e.a.StartComponent(ctx, "etcd"))
	back := time.Now()
	e.requestRefresh(t, "etcd-a")
	e.waitAll(t, "etcd-a", 5*time.Minute)
	e.record(t, "A's etcd killed and restarted", fmt.Sprintf("rotations requested after it done in %.1f s; controller restarted: %v", time.Since(back).Seconds(), e.ctrl.Exited() || e.ctrl.Pid() != pid),
		"the controller recovers without a restart", !e.ctrl.Exited())
}

// requestRefresh asks every import to rotate (the refresh-requested annotation), retrying while
// A's API server is unavailable.
func (e *env) requestRefresh(t *testing.T, value string) {
	t.Helper()
	ctx := t.Context()
	patch := client.RawPatch("application/merge-patch+json", fmt.Appendf(nil, `{"metadata":{"annotations":{%q:%q}}}`, v1alpha1.RefreshRequestedAnnotation, value))
	for i := range e.s.imports {
		imp := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("sa-%d", i)}}
		must(t, wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			return e.a.Client.Patch(ctx, imp, patch) == nil, nil
		}))
	}
}

// waitAll waits until every import is ready with a token and, if request is set, has acted on
// that refresh request.
func (e *env) waitAll(t *testing.T, request string, timeout time.Duration) {
	t.Helper()
	var pending []string
	err := wait.PollUntilContextTimeout(t.Context(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var imps v1alpha1.ServiceAccountImportList
		if err := e.a.Client.List(ctx, &imps, client.InNamespace(ns)); err != nil {
			return false, nil // A may be restarting
		}
		pending = pending[:0]
		for _, i := range imps.Items {
			c := meta.FindStatusCondition(i.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != i.Generation || request != "" && i.Status.LastRefreshRequest != request {
				pending = append(pending, i.Name)
			}
		}
		return len(imps.Items) == e.s.imports && len(pending) == 0, nil
	})
	if err != nil {
		t.Fatalf("imports not ready (request %q) after %s: %v; controller log:\n%s", request, timeout, pending, e.ctrl.Logs())
	}
}

// secrets counts imports with more than one secret, and imports with none.
func (e *env) secrets(t *testing.T) (dups, missing int) {
	t.Helper()
	list, err := e.a.Clientset().CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{LabelSelector: v1alpha1.ImportNameKey})
	must(t, err)
	per := map[string]int{}
	for _, s := range list.Items {
		per[s.Labels[v1alpha1.ImportNameKey]]++
	}
	for i := range e.s.imports {
		switch n := per[fmt.Sprintf("sa-%d", i)]; {
		case n == 0:
			missing++
		case n > 1:
			dups += n - 1
		}
	}
	return dups, missing
}

// tokens are the tokens of the imports' secrets, by import.
func (e *env) tokens(t *testing.T) map[string]string {
	t.Helper()
	list, err := e.a.Clientset().CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{LabelSelector: v1alpha1.ImportNameKey})
	must(t, err)
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Labels[v1alpha1.ImportNameKey]] = string(s.Data[v1alpha1.SecretKeyToken])
	}
	return out
}

// emptyTokens counts import secrets without a token.
func (e *env) emptyTokens(t *testing.T) int {
	t.Helper()
	list, err := e.a.Clientset().CoreV1().Secrets(ns).List(t.Context(), metav1.ListOptions{LabelSelector: v1alpha1.ImportNameKey})
	must(t, err)
	n := 0
	for _, s := range list.Items {
		if len(s.Data[v1alpha1.SecretKeyToken]) == 0 {
			n++
		}
	}
	return n
}

// tokensRejected asks B (TokenReview, as its admin) about every import's token.
func (e *env) tokensRejected(t *testing.T) int {
	t.Helper()
	ctx := t.Context()
	list, err := e.a.Clientset().CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.ImportNameKey})
	must(t, err)
	rejected := 0
	for _, s := range list.Items {
		tr, err := e.b.Clientset().AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: string(s.Data[v1alpha1.SecretKeyToken])}}, metav1.CreateOptions{})
		if err != nil || !tr.Status.Authenticated {
			rejected++
		}
	}
	return rejected
}

// tokensMinted is B's count of TokenRequests answered 201 (its apiserver_request_total).
func (e *env) tokensMinted(t *testing.T) int {
	t.Helper()
	raw, err := e.b.Clientset().RESTClient().Get().AbsPath("/metrics").DoRaw(t.Context())
	must(t, err)
	total := 0
	for line := range strings.Lines(string(raw)) {
		if !strings.HasPrefix(line, "apiserver_request_total{") || !strings.Contains(line, `resource="serviceaccounts"`) ||
			!strings.Contains(line, `subresource="token"`) || !strings.Contains(line, `code="201"`) {
			continue
		}
		fields := strings.Fields(line)
		n, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		must(t, err)
		total += int(n)
	}
	return total
}

const (
	doc      = "../../docs/reliability.md"
	docBegin = "<!-- BEGIN CHAOS FIGURES: `make chaos` rewrites this section -->"
	docEnd   = "<!-- END CHAOS FIGURES -->"
)

// writeFigures replaces the figures of docs/reliability.md with this run's.
func writeFigures(t *testing.T, s scale, table string) {
	b, err := os.ReadFile(doc)
	must(t, err)
	before, rest, ok1 := strings.Cut(string(b), docBegin+"\n")
	_, after, ok2 := strings.Cut(rest, docEnd)
	if !ok1 || !ok2 {
		t.Fatalf("%s has no %q … %q section", doc, docBegin, docEnd)
	}
	section := fmt.Sprintf("Run of %s, %d cores: %d imports, %d controller kills, B's API server down %s.\n\n%s",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.NumCPU(), s.imports, s.kills, s.outage, table)
	must(t, os.WriteFile(doc, []byte(before+docBegin+"\n"+section+docEnd+after), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
