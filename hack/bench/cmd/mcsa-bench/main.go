// Command mcsa-bench runs kubectl-mcsa's benchmarks (package hack/bench) on two real control
// planes, prints the results table and writes it to a file. `make bench` runs it; see
// docs/performance.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-mcsa/kubectl-mcsa/hack/bench"
)

func main() {
	cfg := bench.DefaultConfig()
	var (
		out, phases, profiles, rates string
		raised                       = bench.RaisedLimits
	)
	flag.IntVar(&cfg.Imports, "imports", cfg.Imports, "N, imports of each bulk throughput run")
	flag.StringVar(&profiles, "profiles", "defaults,raised", "limits of the bulk runs: defaults (the controller's) and/or raised")
	flag.Float64Var(&raised.RemoteQPS, "raised-qps", raised.RemoteQPS, "remote and local QPS of the raised profile")
	flag.IntVar(&raised.RemoteBurst, "raised-burst", raised.RemoteBurst, "remote and local burst of the raised profile")
	flag.IntVar(&raised.Concurrency, "raised-concurrency", raised.Concurrency, "workers of the raised profile")
	flag.IntVar(&cfg.SteadyImports, "steady-imports", cfg.SteadyImports, "imports of the steady-state run")
	flag.DurationVar(&cfg.SteadyLifetime, "steady-lifetime", cfg.SteadyLifetime, "token lifetime of the steady-state run (at least 10m)")
	flag.Float64Var(&cfg.SteadyCreateRate, "steady-create-rate", 0, "creation rate of the steady-state run (default: the steady-state rate, imports/(0.8·lifetime))")
	flag.BoolVar(&cfg.SteadyRefresh, "steady-refresh", cfg.SteadyRefresh, "wait for the steady-state run's refreshes (about 1.15× its lifetime)")
	flag.DurationVar(&cfg.SteadyObserve, "steady-observe", cfg.SteadyObserve, "how long refreshes are watched after the restart")
	flag.StringVar(&rates, "webhook-rates", "10,100,500", "AdmissionReview rates (per second) sent straight to the webhook")
	flag.DurationVar(&cfg.WebhookDuration, "webhook-duration", cfg.WebhookDuration, "duration of each webhook rate")
	flag.IntVar(&cfg.Pods, "pods", cfg.Pods, "pods created through the API server on each side (with, without the webhook)")
	flag.Float64Var(&cfg.PodRate, "pod-rate", cfg.PodRate, "pod creations per second, both sides together")
	flag.IntVar(&cfg.CLIRuns, "cli-runs", cfg.CLIRuns, "runs of `kubectl-mcsa version`")
	flag.StringVar(&phases, "phases", strings.Join(bench.AllPhases, ","), "phases to run: bulk, webhook, steady, cli")
	flag.Func("controller-env", "KEY=VALUE added to the controller's environment, e.g. GOMEMLIMIT=128MiB (repeatable)", func(v string) error {
		if !strings.Contains(v, "=") {
			return fmt.Errorf("want KEY=VALUE")
		}
		cfg.ControllerEnv = append(cfg.ControllerEnv, v)
		return nil
	})
	flag.StringVar(&cfg.ControllerBin, "controller", "", "mcsa-controller binary (default: built from the checkout)")
	flag.StringVar(&cfg.BaselineControllerBin, "baseline-controller", "", "another mcsa-controller binary (e.g. before a change) measured in the same bulk runs, before -controller")
	flag.Func("controller-arg", "flag added to the controller's, e.g. --pprof-bind-address=127.0.0.1:6060 (repeatable)", func(v string) error {
		cfg.ControllerArgs = append(cfg.ControllerArgs, v)
		return nil
	})
	flag.StringVar(&cfg.PluginBin, "plugin", "", "kubectl-mcsa binary (default: built from the checkout)")
	flag.StringVar(&out, "out", os.Getenv("BENCH_OUT"), "file the results table is written to (default $BENCH_OUT, else a new temporary directory)")
	flag.Parse()

	raised.KubeQPS, raised.KubeBurst = raised.RemoteQPS, raised.RemoteBurst
	cfg.Phases = strings.Split(phases, ",")
	cfg.Profiles = nil
	for _, p := range strings.Split(profiles, ",") {
		switch p {
		case "defaults":
			cfg.Profiles = append(cfg.Profiles, bench.DefaultLimits)
		case "raised":
			cfg.Profiles = append(cfg.Profiles, raised)
		default:
			fatalf("unknown profile %q: use defaults and/or raised", p)
		}
	}
	cfg.WebhookRates = nil
	for _, r := range strings.Split(rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			fatalf("bad --webhook-rates %q", rates)
		}
		cfg.WebhookRates = append(cfg.WebhookRates, n)
	}
	if cfg.SteadyLifetime < 10*time.Minute {
		fatalf("--steady-lifetime must be at least 10m, the TokenRequest API's minimum")
	}
	cfg.Log = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
	}
	if out == "" {
		dir, err := os.MkdirTemp("", "mcsa-bench-results-")
		if err != nil {
			fatalf("%v", err)
		}
		out = filepath.Join(dir, "bench-results.md")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	report, runErr := bench.Run(ctx, cfg)
	report.Markdown(os.Stdout)
	if err := bench.WriteReport(report, out); err != nil {
		fatalf("writing %s: %v", out, err)
	}
	fmt.Fprintf(os.Stderr, "results written to %s\n", out)
	if runErr != nil {
		fatalf("%v", runErr)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "mcsa-bench: "+format+"\n", args...)
	os.Exit(1)
}
