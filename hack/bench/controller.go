package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// controller is a run of the mcsa-controller binary out of cluster against A, with the flags
// of the shipped Deployment (leader election, the webhook) plus the limits under test.
type controller struct {
	proc       *controlplane.Process
	metricsURL string
	started    time.Time
}

// startController starts the controller under test as its own identity and waits until it is
// ready (its readiness check includes the webhook's: serving, with its CA injected).
func (e *env) startController(ctx context.Context, lim Limits) error {
	return e.startBinary(ctx, lim, e.cfg.ControllerBin, e.cfg.ControllerArgs)
}

// startBinary starts the controller binary bin as startController does, with extra flags.
func (e *env) startBinary(ctx context.Context, lim Limits, bin string, extra []string) error {
	if e.ctrl != nil {
		return errors.New("controller already running")
	}
	e.ctrlRuns++
	started := time.Now()
	p, err := controlplane.StartController(controlplane.Controller{
		Binary:     bin,
		Kubeconfig: e.a.ControllerKubeconfig,
		// Each run logs to its own file in e.dir.
		Dir:  e.dir,
		Name: fmt.Sprintf("mcsa-controller-%d", e.ctrlRuns),
		Env:  e.cfg.ControllerEnv,
		// The shipped Deployment's: leader election and the webhook; plus the limits under test.
		Args: append([]string{
			"--leader-elect",
			"--automount-webhook=true",
			fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", e.metricsPort),
			// Plain HTTP on loopback: the bench scrapes without a token.
			"--metrics-secure=false",
			fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", e.probePort),
			fmt.Sprintf("--webhook-port=%d", e.webhookPort),
		}, append(lim.args(), extra...)...),
	})
	if err != nil {
		return err
	}
	c := &controller{proc: p, metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", e.metricsPort), started: started}
	e.ctrl = c
	e.log("controller started (%s)", lim)
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", e.probePort)
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("controller exited:\n%s", p.Logs())
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, readyz, nil)
		if err != nil {
			return false, err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		// Only the status matters; the body's close cannot change it.
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("controller not ready: %w\n%s", err, p.Logs())
	}
	return nil
}

// stopController ends the controller as Kubernetes would (SIGTERM; it releases its lease).
func (e *env) stopController() {
	if e.ctrl != nil {
		e.ctrl.proc.Stop()
		e.ctrl = nil
	}
}

// memory is the controller's resident set now (VmRSS) and its peak (VmHWM), in bytes.
func (c *controller) memory() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.proc.Pid()))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = kb << 10
		case "VmHWM":
			peak = kb << 10
		}
	}
	return rss, peak, nil
}

// scrape reads the controller's metrics, in the Prometheus text format it serves by default.
func (c *controller) scrape() (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(c.metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", c.metricsURL, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// requests counts the controller's requests so far (client-go's rest_client_requests_total)
// by host and method, e.g. "127.0.0.1:40123 PATCH".
func (c *controller) requests() (map[string]float64, error) {
	families, err := c.scrape()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, m := range families["rest_client_requests_total"].GetMetric() {
		out[label(m, "host")+" "+label(m, "method")] += m.GetCounter().GetValue()
	}
	return out, nil
}

// metric sums the values of a counter or gauge over its series that carry every label given.
func (c *controller) metric(name string, labels map[string]string) (float64, error) {
	families, err := c.scrape()
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, m := range families[name].GetMetric() {
		if hasLabels(m, labels) {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum, nil
}

// label is the value of a series' label, "" when it has none of that name.
func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func hasLabels(m *dto.Metric, labels map[string]string) bool {
	for k, v := range labels {
		if label(m, k) != v {
			return false
		}
	}
	return true
}
