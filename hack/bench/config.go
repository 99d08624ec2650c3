package bench

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits are the importer's throughput settings: its workers and client-side rate limits.
// The raw baseline runs with the same ones.
type Limits struct {
	Name        string
	Concurrency int
	RemoteQPS   float64
	RemoteBurst int
	KubeQPS     float64
	KubeBurst   int
}

// DefaultLimits are mcsa-controller's defaults (incluster/cmd/mcsa-controller).
var DefaultLimits = Limits{Name: "defaults", Concurrency: 4, RemoteQPS: 20, RemoteBurst: 40, KubeQPS: 50, KubeBurst: 100}

// RaisedLimits lift the client-side rate limits well above what two cores serve, so that the
// machine is the limit.
var RaisedLimits = Limits{Name: "raised", Concurrency: 4, RemoteQPS: 1000, RemoteBurst: 2000, KubeQPS: 1000, KubeBurst: 2000}

// args are the controller's flags for these limits.
func (l Limits) args() []string {
	return []string{
		"--concurrency=" + strconv.Itoa(l.Concurrency),
		"--remote-qps=" + strconv.FormatFloat(l.RemoteQPS, 'g', -1, 64),
		"--remote-burst=" + strconv.Itoa(l.RemoteBurst),
		"--kube-api-qps=" + strconv.FormatFloat(l.KubeQPS, 'g', -1, 64),
		"--kube-api-burst=" + strconv.Itoa(l.KubeBurst),
	}
}

func (l Limits) String() string {
	return fmt.Sprintf("%s: concurrency %d, remote %g/%d, local %g/%d qps/burst", l.Name, l.Concurrency, l.RemoteQPS, l.RemoteBurst, l.KubeQPS, l.KubeBurst)
}

// Phases of a run.
const (
	PhaseBulk    = "bulk"    // 1 and 5: throughput against the raw loop; memory
	PhaseWebhook = "webhook" // 3
	PhaseSteady  = "steady"  // 2 and 4: latency at a modest rate; refresh rate and restart
	PhaseCLI     = "cli"     // 6
)

// AllPhases run by default, in this order.
var AllPhases = []string{PhaseBulk, PhaseWebhook, PhaseSteady, PhaseCLI}

// Config is one benchmark run.
type Config struct {
	// Imports is N of the bulk throughput runs, one run per entry of Profiles.
	Imports  int
	Profiles []Limits
	// SteadyImports are created at the steady-state rate SteadyImports/(0.8·SteadyLifetime)
	// with spec.expirationSeconds = SteadyLifetime; their create→Ready latencies are item 2,
	// their refreshes item 4.
	SteadyImports  int
	SteadyLifetime time.Duration
	// SteadyCreateRate overrides the creation rate (imports per second) of the steady-state run.
	SteadyCreateRate float64
	// SteadyRefresh waits for the refreshes (about 1.15·SteadyLifetime in all); without it the
	// run measures only latency and the restart's effect on one-hour tokens.
	SteadyRefresh bool
	// SteadyObserve is how long refreshes are watched after the controller restarts.
	SteadyObserve time.Duration
	// WebhookRates are the AdmissionReview request rates sent straight to the webhook, each
	// for WebhookDuration (the 100 and 500/s, and 10/s as a reference below the
	// webhook's client-side rate limit).
	WebhookRates    []int
	WebhookDuration time.Duration
	// Pods are created through the API server on each side (webhook on, off), at PodRate in all.
	Pods    int
	PodRate float64
	// CLIRuns is how many times `kubectl-mcsa version` runs (`credential`, at least 100 times for its p99).
	CLIRuns int
	// Phases to run (default AllPhases).
	Phases []string
	// ControllerEnv is added to the controller's environment (e.g. GOMEMLIMIT=128MiB).
	ControllerEnv []string
	// ControllerBin and PluginBin are the binaries measured; built from the checkout when empty.
	ControllerBin, PluginBin string
	// BaselineControllerBin, if set, is another controller binary (say, before a change) run
	// in each bulk run too, on imports of its own and before ControllerBin, so that the two
	// compare in the same run: same clusters, same raw loop, same machine load.
	BaselineControllerBin string
	// ControllerArgs are added to ControllerBin's flags (e.g. --pprof-bind-address=127.0.0.1:6060),
	// not to the baseline's, which may not know them.
	ControllerArgs []string
	// Log receives progress lines.
	Log func(format string, args ...any)
}

// DefaultConfig is `make bench` without variables.
func DefaultConfig() Config {
	return Config{
		Imports:         2000,
		Profiles:        []Limits{DefaultLimits, RaisedLimits},
		SteadyImports:   2000,
		SteadyLifetime:  10 * time.Minute,
		SteadyRefresh:   true,
		SteadyObserve:   2 * time.Minute,
		WebhookRates:    []int{10, 100, 500},
		WebhookDuration: 10 * time.Second,
		Pods:            200,
		PodRate:         10,
		CLIRuns:         50,
		Phases:          AllPhases,
	}
}

func (c Config) has(phase string) bool {
	for _, p := range c.Phases {
		if p == phase {
			return true
		}
	}
	return false
}

// Summary is a one-line description of the configuration.
func (c Config) Summary() string {
	var parts []string
	if c.has(PhaseBulk) {
		names := make([]string, len(c.Profiles))
		for i, p := range c.Profiles {
			names[i] = p.Name
		}
		parts = append(parts, fmt.Sprintf("N=%d imports (limits: %s)", c.Imports, strings.Join(names, ", ")))
	}
	if c.has(PhaseSteady) {
		parts = append(parts, fmt.Sprintf("steady state %d imports at %s", c.SteadyImports, c.SteadyLifetime))
	}
	if c.has(PhaseWebhook) {
		parts = append(parts, fmt.Sprintf("webhook %v req/s for %s, %d pods per side", c.WebhookRates, c.WebhookDuration, c.Pods))
	}
	if c.has(PhaseCLI) {
		parts = append(parts, fmt.Sprintf("CLI %d runs", c.CLIRuns))
	}
	if c.BaselineControllerBin != "" {
		parts = append(parts, "baseline controller "+c.BaselineControllerBin)
	}
	if len(c.ControllerArgs) > 0 {
		parts = append(parts, "controller flags "+strings.Join(c.ControllerArgs, " "))
	}
	if len(c.ControllerEnv) > 0 {
		parts = append(parts, "controller environment "+strings.Join(c.ControllerEnv, " "))
	}
	return strings.Join(parts, "; ")
}
