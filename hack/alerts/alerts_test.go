package alerts_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/util/teststorage"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/fixture"
)

// The time of the recording: the test scrapes the real controller every scrapeEvery and stamps
// each scrape interval later than the previous one, as Prometheus scraping every 30 s would
// have stored it, so that the rules' windows and holds (minutes) pass in seconds. The controller
// runs with --max-retry-delay=maxRetryDelay so that a failing import is retried between any two
// scrapes, as the default 5 m delay retries it within each of the rule's 10 m windows.
const (
	interval      = 30 * time.Second
	scrapeEvery   = 100 * time.Millisecond
	maxRetryDelay = "500ms"
	job           = "mcsa-controller-metrics" // the metrics Service's name, the job of its ServiceMonitor
)

// TestAlertsFire runs the controller (importer and webhook) on the harness, drives it through
// the situations the PrometheusRule of manifests/monitoring is for, and evaluates the rules
// with Prometheus' rule engine over its scraped metrics: none fires while it is healthy, and
// each fires in its situation, with the labels that name the culprit.
func TestAlertsFire(t *testing.T) {
	const a, b, ns = "cluster1", "cluster2", "team"
	f := fixture.ForTest(t, fixture.Options{Clusters: []string{a, b}, Install: []string{a}, Bootstrap: []fixture.Link{{Target: a, Source: b}}})
	ctx := t.Context()
	ca, cb := f.Cluster(a), f.Cluster(b)

	// The webhook's Secret and registration, which Install leaves out (the test, not the API
	// server, calls the webhook).
	rendered, err := fixture.Render("webhook")
	if err != nil {
		t.Fatal(err)
	}
	rendered = slices.DeleteFunc(rendered, func(o *unstructured.Unstructured) bool {
		return o.GetKind() != "Secret" && o.GetKind() != "MutatingWebhookConfiguration"
	})
	if err := ca.Apply(ctx, rendered...); err != nil {
		t.Fatal(err)
	}
	// The controller reaches its API server through a proxy that can slow it down, as an
	// overloaded API server would: the webhook's reads then make admissions slow.
	slow := &atomic.Int64{}
	kubeconfig := throughProxy(t, ca.ControllerKubeconfig, slow)
	metricsPort, webhookPort, probePort := freePort(t), freePort(t), freePort(t)
	p := controlplane.StartControllerForTest(t, controlplane.Controller{
		Kubeconfig: kubeconfig,
		Args: []string{"--automount-webhook=true", fmt.Sprintf("--webhook-port=%d", webhookPort),
			fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort), "--metrics-secure=true",
			fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort), "--max-retry-delay=" + maxRetryDelay},
	})
	waitReady(t, probePort)
	scrape := scraper(t, ca, metricsPort)

	// A ready import, and a pod mounting it.
	for _, c := range []*fixture.Cluster{ca, cb} {
		if err := c.Namespaces(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	if err := cb.CreateIfMissing(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"}}); err != nil {
		t.Fatal(err)
	}
	if err := f.Allow(ctx, a, b, ns, "reader", "ghost"); err != nil {
		t.Fatal(err)
	}
	good := &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "reader"},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: b, Namespace: ns, Name: "reader"},
	}
	if err := ca.Client.Create(ctx, good); err != nil {
		t.Fatal(err)
	}
	good, err = fixture.WaitFor(ctx, ca.Client, good, time.Minute, func(i *v1alpha1.ServiceAccountImport) bool { return i.Status.ExpirationTimestamp != nil })
	if err != nil {
		t.Fatal(err)
	}
	admit := admitter(t, ca, webhookPort, ns)
	if !admit(good.Name) {
		t.Fatal("a pod mounting a ready import was refused")
	}

	rec := newRecording(t)
	record := func(steps int, during func(step int)) {
		for i := range steps {
			if during != nil {
				during(i)
			}
			rec.add(scrape())
			time.Sleep(scrapeEvery)
		}
	}

	// Healthy for 10 minutes: pods mounted now and then.
	record(20, func(i int) {
		if i%5 == 0 && !admit(good.Name) {
			t.Error("a pod mounting a ready import was refused")
		}
	})
	rec.expect(t, "healthy", nil)

	// An import of a service account B does not have, failing for 20 minutes, and pods asking
	// for an import that does not exist, refused all along.
	ghost := &v1alpha1.ServiceAccountImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ghost"},
		Spec:       v1alpha1.ServiceAccountImportSpec{ClusterName: b, Namespace: ns, Name: "ghost"},
	}
	if err := ca.Client.Create(ctx, ghost); err != nil {
		t.Fatal(err)
	}
	record(40, func(i int) {
		if i%4 == 0 && admit("missing") {
			t.Error("a pod asking for a missing import was admitted")
		}
	})
	rec.expect(t, "failing import and refused pods", map[string][]map[string]string{
		"McsaImportRefreshFailing": {{"cluster": b, "reason": v1alpha1.ReasonServiceAccountNotFound}},
		"McsaWebhookDenyingPods":   {{"reason": "ImportNotFound"}},
	})
	if err := ca.Client.Delete(ctx, ghost); err != nil {
		t.Fatal(err)
	}

	// A slow API server for 10 minutes: admissions that read from it (a missing import is not
	// in the cache) take over a second.
	record(20, func(i int) {
		if i%3 == 0 {
			slow.Store(int64(1200 * time.Millisecond))
			admit("missing-too")
			slow.Store(0)
		}
	})
	rec.expect(t, "slow API server", map[string][]map[string]string{
		"McsaWebhookSlow": {{}},
		// The slow admissions are refusals too, still within the window.
		"McsaWebhookDenyingPods": {{"reason": "ImportNotFound"}},
	})

	// A controller that serves its metrics but refreshes nothing: on the recording's clock, the
	// ready import's token (an hour's lifetime) nears its expiry while its gauge stays put.
	for rec.now.Before(good.Status.ExpirationTimestamp.Add(-30 * time.Second)) {
		record(1, nil)
	}
	rec.expect(t, "token not refreshed", map[string][]map[string]string{
		"McsaImportTokenExpiringWithoutRefresh": {{"namespace": ns, "name": good.Name}},
	})
	checkDashboard(t, rec.names)

	// The controller stops: every scrape fails for 10 minutes.
	p.Stop()
	for range 21 {
		rec.add(nil)
	}
	rec.expect(t, "controller stopped", map[string][]map[string]string{
		"McsaControllerMetricsAbsent": {{}},
	})
}

// checkDashboard parses every query of the Grafana dashboard with Prometheus' parser and checks
// that each metric it selects is one the controller served.
func checkDashboard(t *testing.T, served map[string]bool) {
	t.Helper()
	b, err := manifests.FS.ReadFile("monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	p := parser.NewParser(parser.Options{})
	queries := 0
	for _, panel := range d.Panels {
		for _, q := range panel.Targets {
			queries++
			expr, err := p.ParseExpr(q.Expr)
			if err != nil {
				t.Errorf("dashboard panel %q: %v", panel.Title, err)
				continue
			}
			for _, sel := range parser.ExtractSelectors(expr) {
				for _, m := range sel {
					if m.Name == model.MetricNameLabel && !served[m.Value] {
						t.Errorf("dashboard panel %q queries %s, which the controller did not serve", panel.Title, m.Value)
					}
				}
			}
		}
	}
	if queries == 0 {
		t.Error("the dashboard has no query")
	}
}

// recording is the scraped samples in a TSDB, stamped on the recording's clock, and the
// rules, evaluated every interval as Prometheus would.
type recording struct {
	t      *testing.T
	db     *teststorage.TestStorage
	now    time.Time
	rules  []*rules.AlertingRule
	query  rules.QueryFunc
	evalAt time.Time
	// firing are the alerts firing at the last evaluation, by name.
	firing map[string][]labels.Labels
	// names are the metric names stored, up included.
	names map[string]bool
	start time.Time
}

func newRecording(t *testing.T) *recording {
	db := teststorage.New(t)
	t.Cleanup(func() { _ = db.Close() })
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: 10 * time.Second, LookbackDelta: 5 * time.Minute, Parser: parser.NewParser(parser.Options{})})
	r := &recording{t: t, db: db, now: time.Now().Truncate(time.Second),
		query: rules.EngineQueryFunc(engine, db), rules: loadRules(t), names: map[string]bool{}}
	r.evalAt, r.start = r.now, r.now
	return r
}

// loadRules reads the shipped PrometheusRule.
func loadRules(t *testing.T) []*rules.AlertingRule {
	t.Helper()
	b, err := manifests.FS.ReadFile("monitoring/prometheusrule.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Spec struct {
			Groups []struct {
				Rules []struct {
					Alert, Expr, For    string
					Labels, Annotations map[string]string
				}
			}
		}
	}
	if err := yaml.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	var out []*rules.AlertingRule
	p := parser.NewParser(parser.Options{})
	for _, g := range pr.Spec.Groups {
		for _, r := range g.Rules {
			expr, err := p.ParseExpr(r.Expr)
			if err != nil {
				t.Fatalf("alert %s: %v", r.Alert, err)
			}
			var hold time.Duration
			if r.For != "" {
				d, err := model.ParseDuration(r.For)
				if err != nil {
					t.Fatalf("alert %s: for: %v", r.Alert, err)
				}
				hold = time.Duration(d)
			}
			out = append(out, rules.NewAlertingRule(r.Alert, expr, hold, 0, labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", false, nil))
		}
	}
	if len(out) == 0 {
		t.Fatal("the PrometheusRule has no alert")
	}
	return out
}

// add stores one scrape (nil: the scrape failed) at the next interval, with the up series
// Prometheus adds, and evaluates the rules up to then.
func (r *recording) add(families map[string]*dtoFamily) {
	r.t.Helper()
	r.now = r.now.Add(interval)
	ts := r.now.UnixMilli()
	app := r.db.Appender(context.Background())
	base := map[string]string{"job": job, "instance": "mcsa-controller"}
	up := 0.0
	if families != nil {
		up = 1
	}
	appendSample := func(name string, ls map[string]string, v float64) {
		all := maps.Clone(base)
		maps.Copy(all, ls)
		all[model.MetricNameLabel] = name
		r.names[name] = true
		if _, err := app.Append(0, labels.FromMap(all), ts, v); err != nil {
			r.t.Fatal(err)
		}
	}
	appendSample("up", nil, up)
	for _, fam := range families {
		for _, s := range fam.samples {
			appendSample(s.name, s.labels, s.value)
		}
	}
	if err := app.Commit(); err != nil {
		r.t.Fatal(err)
	}
	r.evaluate(r.now)
}

// evaluate runs every rule at each interval up to until, keeping what fires at the last.
func (r *recording) evaluate(until time.Time) {
	r.t.Helper()
	for ; !r.evalAt.After(until); r.evalAt = r.evalAt.Add(interval) {
		r.firing = map[string][]labels.Labels{}
		for _, rule := range r.rules {
			if _, err := rule.Eval(context.Background(), 0, r.evalAt, r.query, &url.URL{}, 0); err != nil {
				r.t.Fatalf("alert %s at %s: %v", rule.Name(), r.evalAt, err)
			}
			for _, al := range rule.ActiveAlerts() {
				if al.State == rules.StateFiring {
					r.firing[rule.Name()] = append(r.firing[rule.Name()], al.Labels)
					for _, v := range al.Annotations.Map() {
						if strings.Contains(v, "error expanding template") {
							r.t.Errorf("alert %s: %s", rule.Name(), v)
						}
					}
				}
			}
		}
	}
}

// expect checks that exactly the alerts named fire now, each once per labels given (a subset
// of its labels).
func (r *recording) expect(t *testing.T, phase string, want map[string][]map[string]string) {
	t.Helper()
	got := map[string][]labels.Labels{}
	maps.Copy(got, r.firing)
	for name, sets := range want {
		for _, w := range sets {
			i := slices.IndexFunc(got[name], func(ls labels.Labels) bool {
				for k, v := range w {
					if ls.Get(k) != v {
						return false
					}
				}
				return true
			})
			if i < 0 {
				t.Errorf("%s: alert %s with %v does not fire; firing: %v", phase, name, w, r.firing)
				continue
			}
			got[name] = slices.Delete(got[name], i, i+1)
		}
	}
	for name, rest := range got {
		if len(rest) > 0 {
			t.Errorf("%s: alert %s fires unexpectedly: %v", phase, name, rest)
		}
	}
	t.Logf("%s, at %s of recording: firing %v", phase, r.now.Sub(r.start), slices.Sorted(maps.Keys(r.firing)))
}

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

type dtoFamily struct{ samples []sample }

// scraper returns a function that scrapes the controller's metrics as Prometheus does (HTTPS,
// the bearer token of a service account bound to mcsa-metrics-reader) and parses them; nil
// when the scrape fails.
func scraper(t *testing.T, c *fixture.Cluster, port int) func() map[string]*dtoFamily {
	t.Helper()
	ctx := t.Context()
	cs := c.Clientset()
	if _, err := cs.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "prometheus"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "mcsa-metrics-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "default", Name: "prometheus"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts("default").CreateToken(ctx, "prometheus", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Self-signed, as the ServiceMonitor's insecureSkipVerify says.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback, self-signed by design
	get := func() (map[string]*dtoFamily, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/metrics", port), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tr.Status.Token)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("scrape: %s", resp.Status)
		}
		return parse(resp.Body)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		_, err := get()
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("the controller's metrics never answered: %v", err)
	}
	return func() map[string]*dtoFamily {
		fams, err := get()
		if err != nil {
			t.Logf("scrape failed: %v", err)
			return nil
		}
		return fams
	}
}

// parse flattens the text exposition into samples, histograms into their _bucket, _sum and
// _count series as Prometheus stores them.
func parse(r io.Reader) (map[string]*dtoFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	out := map[string]*dtoFamily{}
	for name, fam := range fams {
		d := &dtoFamily{}
		for _, m := range fam.GetMetric() {
			ls := map[string]string{}
			for _, l := range m.GetLabel() {
				ls[l.GetName()] = l.GetValue()
			}
			switch {
			case m.Counter != nil:
				d.samples = append(d.samples, sample{name, ls, m.GetCounter().GetValue()})
			case m.Gauge != nil:
				d.samples = append(d.samples, sample{name, ls, m.GetGauge().GetValue()})
			case m.Untyped != nil:
				d.samples = append(d.samples, sample{name, ls, m.GetUntyped().GetValue()})
			case m.Histogram != nil:
				h := m.GetHistogram()
				for _, bk := range h.GetBucket() {
					bl := maps.Clone(ls)
					bl["le"] = fmt.Sprint(bk.GetUpperBound())
					d.samples = append(d.samples, sample{name + "_bucket", bl, float64(bk.GetCumulativeCount())})
				}
				inf := maps.Clone(ls)
				inf["le"] = "+Inf"
				d.samples = append(d.samples, sample{name + "_bucket", inf, float64(h.GetSampleCount())},
					sample{name + "_sum", ls, h.GetSampleSum()}, sample{name + "_count", ls, float64(h.GetSampleCount())})
			case m.Summary != nil:
				s := m.GetSummary()
				d.samples = append(d.samples, sample{name + "_sum", ls, s.GetSampleSum()}, sample{name + "_count", ls, float64(s.GetSampleCount())})
			}
		}
		out[name] = d
	}
	return out, nil
}

// throughProxy writes a copy of kubeconfig whose server is a TCP proxy to the real one on
// 127.0.0.1 (the serving certificate names the IP, not the port), which holds every chunk sent
// to the server for delay's nanoseconds.
func throughProxy(t *testing.T, kubeconfig string, delay *atomic.Int64) string {
	t.Helper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var target string
	for _, c := range cfg.Clusters {
		target = strings.TrimPrefix(c.Server, "https://")
		c.Server = "https://" + l.Addr().String()
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			mu.Lock()
			conns = append(conns, in, out)
			mu.Unlock()
			wg.Go(func() { pipe(out, in, delay); _ = out.Close() })
			wg.Go(func() { _, _ = io.Copy(in, out); _ = in.Close() })
		}
	})
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func pipe(dst io.Writer, src io.Reader, delay *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			time.Sleep(time.Duration(delay.Load()))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitReady(t *testing.T, port int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d/readyz", port), nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatal("the controller never got ready")
	}
}

// admitter asks the webhook, as the API server would, to admit a pod of namespace annotated
// with an import; it says whether the pod was allowed.
func admitter(t *testing.T, c *fixture.Cluster, port int, namespace string) func(importName string) bool {
	t.Helper()
	// The CA bundle the controller injected, and the path, as the API server reads them.
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := c.Client.Get(t.Context(), client.ObjectKey{Name: manifests.WebhookConfiguration}, mwc); err != nil {
		t.Fatal(err)
	}
	cc := mwc.Webhooks[0].ClientConfig
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(cc.CABundle) || cc.Service == nil || cc.Service.Path == nil {
		t.Fatalf("webhook configuration %s has no CA bundle or no service path", mwc.Name)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, ServerName: manifests.WebhookService + "." + manifests.Namespace + ".svc", MinVersion: tls.VersionTLS12,
	}}}
	var n atomic.Int64
	return func(importName string) bool {
		t.Helper()
		pod, err := json.Marshal(&corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: metav1.ObjectMeta{Name: "client", Annotations: map[string]string{v1alpha1.ImportNameKey: importName}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "busybox"}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		review, err := json.Marshal(&admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID: types.UID(fmt.Sprintf("review-%d", n.Add(1))), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
				Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: namespace,
				Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: pod},
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Post(fmt.Sprintf("https://127.0.0.1:%d%s", port, *cc.Service.Path), "application/json", bytes.NewReader(review))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var answer admissionv1.AdmissionReview
		if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Response == nil {
			t.Fatalf("webhook answered %s: %v", resp.Status, err)
		}
		return answer.Response.Allowed
	}
}
