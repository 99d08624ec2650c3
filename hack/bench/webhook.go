package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/manifests"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// Names of manifests/webhook.
const (
	webhookService = manifests.WebhookService
	webhookSecret  = manifests.ServingCertSecret
	webhookPath    = "/mutate-v1-pod"
	// webhookImports is how many imports each benchmark pod asks for.
	webhookImports = 3
	// webhookOffLabel on a namespace keeps the webhook from being called for its pods: the
	// "without the webhook" side of the pod-creation comparison.
	webhookOffLabel = "bench.mcsa.test/webhook"
)

// setUpWebhook registers the shipped MutatingWebhookConfiguration with a loopback URL instead
// of the Service, and gives the controller a serving certificate that also covers 127.0.0.1
// (the controller has no flag for extra names): the certificate Secret is filled beforehand
// with a CA and certificate the controller's rotator accepts and keeps, and injects. An extra
// namespace selector term lets a labelled namespace do without the webhook.
func (e *env) setUpWebhook(ctx context.Context) error {
	svc := webhookService + "." + controllerNS
	caPEM, caKey, certPEM, keyPEM, err := e.servingCertificate([]string{svc + ".svc", svc + ".svc.cluster.local", svc, webhookService}, net.ParseIP("127.0.0.1"))
	if err != nil {
		return err
	}
	e.webhookCA = caPEM
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: controllerNS, Name: webhookSecret},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"ca.crt": caPEM, "ca.key": caKey, corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
	}
	if _, err := e.akube.CoreV1().Secrets(controllerNS).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return err
	}
	b, err := manifests.FS.ReadFile("webhook/mutatingwebhookconfiguration.yaml")
	if err != nil {
		return err
	}
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := yaml.Unmarshal(b, mwc); err != nil {
		return err
	}
	if len(mwc.Webhooks) != 1 || mwc.Webhooks[0].NamespaceSelector == nil {
		return fmt.Errorf("manifests/webhook: expected one webhook with a namespace selector")
	}
	url := fmt.Sprintf("https://127.0.0.1:%d%s", e.webhookPort, webhookPath)
	w := &mwc.Webhooks[0]
	w.ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
	w.NamespaceSelector.MatchExpressions = append(w.NamespaceSelector.MatchExpressions,
		metav1.LabelSelectorRequirement{Key: webhookOffLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"off"}})
	_, err = e.akube.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{})
	return err
}

// servingCertificate makes a CA and a serving certificate for hosts and ip with the harness's
// PKI (in e.dir/webhook-ca) and returns them as the certificate Secret holds them, PEM.
func (e *env) servingCertificate(hosts []string, ip net.IP) (caPEM, caKeyPEM, certPEM, keyPEM []byte, err error) {
	dir := filepath.Join(e.dir, "webhook-ca")
	if err = os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	ca, err := controlplane.NewCA(dir, "mcsa-bench-webhook-ca")
	if err != nil {
		return
	}
	certPath, keyPath, err := ca.Issue(dir, "serving", controlplane.Leaf{CommonName: hosts[0], DNSNames: hosts, IPs: []net.IP{ip}, Server: true})
	if err != nil {
		return
	}
	files := []string{ca.CertPath, filepath.Join(dir, "ca.key"), certPath, keyPath}
	pems := make([][]byte, len(files))
	for i, f := range files {
		if pems[i], err = os.ReadFile(f); err != nil {
			return
		}
	}
	return pems[0], pems[1], pems[2], pems[3], nil
}

// webhook measures item 3: AdmissionReview requests straight to the controller's webhook at
// fixed rates (open loop: each request leaves at its scheduled time, and its latency counts
// from then), and pod creations through A's API server in a namespace the webhook serves and
// one it does not, interleaved.
func (e *env) webhook(ctx context.Context) error {
	const on, off = "wh-on", "wh-off"
	if err := e.namespaceA(ctx, off, map[string]string{webhookOffLabel: "off"}); err != nil {
		return err
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tracker := e.trackReady(tctx, on)
	if err := e.createImports(ctx, on, "wh", remoteBulk, webhookImports, nil); err != nil {
		return err
	}
	if err := tracker.wait(ctx, webhookImports, 5*time.Minute, e.log); err != nil {
		return err
	}
	names := make([]string, webhookImports)
	for i := range names {
		names[i] = fmt.Sprintf("wh-%d", i)
	}
	pod := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "bench-", Annotations: map[string]string{v1alpha1.ImportNameKey: strings.Join(names, ",")}},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}, {Name: "sidecar", Image: "registry.k8s.io/pause:3.10"}}},
		}
	}

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.webhookCA)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     90 * time.Second,
	}}
	url := fmt.Sprintf("https://127.0.0.1:%d%s", e.webhookPort, webhookPath)
	review := func() ([]byte, error) {
		p := pod()
		p.Name, p.Namespace = "bench-"+string(uuid.NewUUID())[:8], on
		raw, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		gvk := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
		gvr := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
		return json.Marshal(&admissionv1.AdmissionReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
			Request: &admissionv1.AdmissionRequest{
				UID: types.UID(uuid.NewUUID()), Kind: gvk, Resource: gvr, RequestKind: &gvk, RequestResource: &gvr,
				Name: p.Name, Namespace: on, Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw},
				Options: runtime.RawExtension{Raw: []byte(`{"apiVersion":"meta.k8s.io/v1","kind":"CreateOptions"}`)},
			},
		})
	}
	send := func(body []byte) error {
		resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(b, &out); err != nil {
			return fmt.Errorf("status %d: %w", resp.StatusCode, err)
		}
		if out.Response == nil || !out.Response.Allowed || len(out.Response.Patch) == 0 {
			return fmt.Errorf("pod not mutated: %s", b)
		}
		return nil
	}

	// First, pods through the API server, alternating between the two namespaces, at a rate
	// the webhook keeps up with; then the webhook alone, at rising rates.
	e.log("webhook: %d pods through the API server at %g/s", 2*e.cfg.Pods, e.cfg.PodRate)
	for _, ns := range []string{on, off, on, off} { // the API server's first calls set up connections
		if _, err := e.akube.CoreV1().Pods(ns).Create(ctx, pod(), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("warm-up pod in %s: %w", ns, err)
		}
	}
	var mu sync.Mutex
	lats := map[string][]time.Duration{}
	var mutationErr error
	i := 0
	_, errs, err := openLoopTimed(ctx, 2*e.cfg.Pods, e.cfg.PodRate, func(scheduled time.Time) error {
		mu.Lock()
		ns := on
		if i%2 == 1 {
			ns = off
		}
		i++
		mu.Unlock()
		created, err := e.akube.CoreV1().Pods(ns).Create(ctx, pod(), metav1.CreateOptions{})
		d := time.Since(scheduled)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		lats[ns] = append(lats[ns], d)
		if mounted := len(created.Spec.Volumes) > 1; mounted != (ns == on) && mutationErr == nil {
			mutationErr = fmt.Errorf("pod %s/%s: %d volumes: the webhook did not act as expected", ns, created.Name, len(created.Spec.Volumes))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pod creations: %w", err)
	}
	if mutationErr != nil {
		return mutationErr
	}
	with50, with99 := percentile(lats[on], 50), percentile(lats[on], 99)
	wo50, wo99 := percentile(lats[off], 50), percentile(lats[off], 99)
	r50, r99 := float64(with50)/float64(wo50), float64(with99)/float64(wo99)
	e.report.add(Row{Item: 3, Measure: fmt.Sprintf("Pod CREATE through the API server, %d imports, %g pods/s, %d pods each side", webhookImports, e.cfg.PodRate, e.cfg.Pods),
		Result: fmt.Sprintf("with webhook p50 %s / p99 %s; without p50 %s / p99 %s: ratio p50 **%.2f**, p99 %.2f%s",
			ms(with50), ms(with99), ms(wo50), ms(wo99), r50, r99, failures(errs, 2*e.cfg.Pods)),
		Target: "ratio ≤ 1.2 (p50)", Verdict: verdict(r50 <= 1.2 && errs == 0)})
	// Warm up connections and code paths, below any rate limit.
	if _, errs, err := openLoop(ctx, 20, 20, review, send); err != nil || errs > 0 {
		return fmt.Errorf("webhook warm-up: %d errors, %v", errs, err)
	}
	for _, r := range e.cfg.WebhookRates {
		n := int(float64(r) * e.cfg.WebhookDuration.Seconds())
		e.log("webhook: %d AdmissionReviews at %d/s", n, r)
		before, _ := e.histogram()
		lat, errs, err := openLoop(ctx, n, float64(r), review, send)
		if err != nil {
			return err
		}
		after, _ := e.histogram()
		// Let requests still queued in the webhook finish before anything else is measured.
		e.drain(ctx, review, send)
		p50, p99 := percentile(lat, 50), percentile(lat, 99)
		result := fmt.Sprintf("p50 %s, p99 **%s**, max %s", ms(p50), ms(p99), ms(percentile(lat, 100)))
		result += failures(errs, n)
		result += "; in-server histogram: " + after.minus(before).String()
		e.report.add(Row{Item: 3, Measure: fmt.Sprintf("Webhook admission latency at %d req/s, pod with %d imports (HTTPS round trip on loopback)", r, webhookImports),
			Result: result, Target: "p99 ≤ 2 ms", Verdict: verdict(errs == 0 && p99 <= 2*time.Millisecond)})
	}

	e.report.loadNow("after webhook")
	return nil
}

// drain waits, for up to two minutes, until the webhook answers a request within 100 ms.
func (e *env) drain(ctx context.Context, build func() ([]byte, error), send func([]byte) error) {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		body, err := build()
		if err != nil {
			return
		}
		start := time.Now()
		if send(body) == nil && time.Since(start) < 100*time.Millisecond {
			return
		}
		time.Sleep(time.Second)
	}
}

func failures(errs, n int) string {
	if errs == 0 {
		return ""
	}
	return fmt.Sprintf("; **%d of %d failed** (10 s timeout)", errs, n)
}

// openLoop sends n requests at rate per second, body built beforehand, and returns each
// request's latency from its scheduled time (so that a slow server is not hidden by a sender
// waiting for it) and the number that failed.
func openLoop(ctx context.Context, n int, rate float64, build func() ([]byte, error), send func([]byte) error) ([]time.Duration, int, error) {
	bodies := make([][]byte, n)
	for i := range bodies {
		var err error
		if bodies[i], err = build(); err != nil {
			return nil, 0, err
		}
	}
	next := 0
	var mu sync.Mutex
	return openLoopTimed(ctx, n, rate, func(time.Time) error {
		mu.Lock()
		b := bodies[next]
		next++
		mu.Unlock()
		return send(b)
	})
}

func openLoopTimed(ctx context.Context, n int, rate float64, do func(scheduled time.Time) error) ([]time.Duration, int, error) {
	interval := time.Duration(float64(time.Second) / rate)
	var mu sync.Mutex
	var wg sync.WaitGroup
	lat := make([]time.Duration, 0, n)
	errs := 0
	var firstErr error
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil, 0, ctx.Err()
		case <-time.After(time.Until(at)):
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := do(at)
			d := time.Since(at)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			lat = append(lat, d)
		}()
	}
	wg.Wait()
	if errs > 0 && len(lat) == 0 {
		return nil, errs, firstErr
	}
	return lat, errs, nil
}

// admissionHistogram is the controller's mcsa_automount_admission_duration_seconds for mutated
// pods: cumulative counts by upper bound.
type admissionHistogram struct {
	count   float64
	buckets map[float64]float64
}

// histogramBounds are the upper bounds (seconds) of the buckets reported, a subset of the
// controller's.
var histogramBounds = []float64{0.001, 0.0025, 0.005, 0.01}

func (e *env) histogram() (admissionHistogram, error) {
	h := admissionHistogram{buckets: map[float64]float64{}}
	families, err := e.ctrl.scrape()
	if err != nil {
		return h, err
	}
	for _, m := range families["mcsa_automount_admission_duration_seconds"].GetMetric() {
		if label(m, "outcome") != "mutated" {
			continue
		}
		h.count += float64(m.GetHistogram().GetSampleCount())
		for _, b := range m.GetHistogram().GetBucket() {
			h.buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	return h, nil
}

func (h admissionHistogram) minus(o admissionHistogram) admissionHistogram {
	d := admissionHistogram{count: h.count - o.count, buckets: map[float64]float64{}}
	for k, v := range h.buckets {
		d.buckets[k] = v - o.buckets[k]
	}
	return d
}

func (h admissionHistogram) String() string {
	if h.count == 0 {
		return "no samples"
	}
	parts := make([]string, 0, len(histogramBounds))
	for _, le := range histogramBounds {
		parts = append(parts, fmt.Sprintf("%.0f%% ≤ %g ms", 100*h.buckets[le]/h.count, le*1000))
	}
	return strings.Join(parts, ", ")
}
