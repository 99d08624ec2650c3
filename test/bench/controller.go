package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// controller is a run of the mcsa-controller binary out of cluster against A, with the flags
// of the shipped Deployment (leader election, the webhook) plus the limits under test.
type controller struct {
	cmd        *exec.Cmd
	done       chan struct{}
	logPath    string
	metricsURL string
	started    time.Time
}

// startController starts the controller and waits until it is ready (its readiness check
// includes the webhook's: serving, with its CA injected).
func (e *env) startController(ctx context.Context, lim Limits, extra ...string) error {
	if e.ctrl != nil {
		return errors.New("controller already running")
	}
	e.ctrlRuns++
	args := append([]string{
		"--kubeconfig=" + e.controllerKubeconfig,
		"--leader-elect",
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", e.metricsPort),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", e.probePort),
		fmt.Sprintf("--webhook-port=%d", e.webhookPort),
		"--webhook-cert-dir=" + filepath.Join(e.dir, "webhook-certs"),
	}, lim.args()...)
	args = append(args, extra...)
	logPath := filepath.Join(e.dir, fmt.Sprintf("mcsa-controller-%d.log", e.ctrlRuns))
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	cmd := exec.Command(e.cfg.ControllerBin, args...)
	cmd.Env = append(os.Environ(), e.cfg.ControllerEnv...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, ended with this process if it dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	c := &controller{cmd: cmd, done: make(chan struct{}), logPath: logPath,
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", e.metricsPort), started: time.Now()}
	if err := cmd.Start(); err != nil {
		f.Close()
		return err
	}
	go func() {
		cmd.Wait()
		f.Close()
		close(c.done)
	}()
	e.ctrl = c
	e.log("controller started (%s)", lim)
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", e.probePort)
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if c.exited() {
			return false, fmt.Errorf("controller exited:\n%s", c.tail())
		}
		resp, err := http.Get(readyz)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("controller not ready: %w\n%s", err, c.tail())
	}
	return nil
}

// stopController ends the controller as Kubernetes would (SIGTERM; it releases its lease).
func (e *env) stopController() {
	if e.ctrl != nil {
		e.ctrl.stop()
		e.ctrl = nil
	}
}

func (c *controller) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *controller) stop() {
	if c.exited() {
		return
	}
	syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

func (c *controller) tail() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// memory is the controller's resident set now (VmRSS) and its peak (VmHWM), in bytes.
func (c *controller) memory() (rss, peak int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.cmd.Process.Pid))
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

// requests counts the controller's requests so far (client-go's rest_client_requests_total)
// by host and method, e.g. "127.0.0.1:40123 PATCH".
func (c *controller) requests() (map[string]float64, error) {
	resp, err := http.Get(c.metricsURL)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		labels, ok := strings.CutPrefix(line, "rest_client_requests_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(labels, "} ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			continue
		}
		var host, method string
		for l := range strings.SplitSeq(labels, ",") {
			k, val, _ := strings.Cut(l, "=")
			switch k {
			case "host":
				host = strings.Trim(val, `"`)
			case "method":
				method = strings.Trim(val, `"`)
			}
		}
		out[host+" "+method] += v
	}
	return out, nil
}

// metric sums the samples of a metric family whose label set contains every label given
// (`name{a="b"}` lines of the Prometheus text format).
func (c *controller) metric(name string, labels ...string) (float64, error) {
	resp, err := http.Get(c.metricsURL)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
lines:
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue lines
			}
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			continue
		}
		sum += v
	}
	return sum, nil
}
