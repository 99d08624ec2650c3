// Package bench measures kubectl-mcsa against the real limits of the machine it runs on, in
// one run, as ratios where a ratio makes sense (issue 10): bulk import throughput against a raw
// loop doing only the unavoidable work, import latency, the automount webhook's latency and
// its cost on pod creation, the importer's refresh rate in steady state and after a restart,
// the controller's memory, and the plugin's start time.
//
// Everything runs for real: two control planes (test/controlplane), the mcsa-controller
// binary out of cluster with the shipped Deployment's flags and RBAC, and the kubectl-mcsa
// binary. `make bench` runs it through cmd/mcsa-bench; docs/performance.md explains the
// figures.
package bench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// Run runs the phases of cfg and returns the report. A failing phase ends the run with the
// report so far.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	if len(cfg.Phases) == 0 {
		cfg.Phases = AllPhases
	}
	report := &Report{Started: time.Now(), Config: cfg, Machine: machine()}
	report.loadNow("start")
	defer func() { report.Finished = time.Now() }()

	build, err := os.MkdirTemp("", "mcsa-bench-bin-")
	if err != nil {
		return report, err
	}
	defer os.RemoveAll(build)
	for _, b := range []struct {
		path *string
		pkg  string
	}{{&cfg.ControllerBin, "./incluster/cmd/mcsa-controller"}, {&cfg.PluginBin, "./plugin/cmd/kubectl-mcsa"}} {
		if *b.path != "" {
			continue
		}
		cfg.Log("building %s", b.pkg)
		if *b.path, err = controlplane.BuildCommand(b.pkg, build); err != nil {
			return report, err
		}
	}
	report.Config = cfg

	if cfg.has(PhaseCLI) {
		// First, while nothing else runs.
		e := &env{cfg: cfg, report: report, log: cfg.Log}
		if err := e.cli(); err != nil {
			return report, fmt.Errorf("cli: %w", err)
		}
	}
	if !cfg.has(PhaseBulk) && !cfg.has(PhaseWebhook) && !cfg.has(PhaseSteady) {
		return report, nil
	}
	e, err := newEnv(ctx, cfg, report)
	if err != nil {
		return report, err
	}
	defer e.close()
	report.loadNow("clusters set up")

	if cfg.has(PhaseBulk) {
		for _, lim := range cfg.Profiles {
			if err := e.bulk(ctx, lim); err != nil {
				return report, fmt.Errorf("bulk %s: %w", lim.Name, err)
			}
		}
	}
	// The rest runs against the controller with its default limits.
	if e.ctrl != nil && (!cfg.has(PhaseBulk) || cfg.Profiles[len(cfg.Profiles)-1] != DefaultLimits) {
		e.stopController()
	}
	if e.ctrl == nil && (cfg.has(PhaseWebhook) || cfg.has(PhaseSteady)) {
		if err := e.startController(ctx, DefaultLimits); err != nil {
			return report, err
		}
	}
	if cfg.has(PhaseWebhook) {
		if err := e.webhook(ctx); err != nil {
			return report, fmt.Errorf("webhook: %w", err)
		}
	}
	if cfg.has(PhaseSteady) {
		if err := e.steady(ctx); err != nil {
			return report, fmt.Errorf("steady state: %w", err)
		}
	}
	e.projectMemory()
	return report, nil
}

// importCount is the number of imports in A.
func (e *env) importCount(ctx context.Context) (int, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("ServiceAccountImportList"))
	if err := e.ac.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil {
		return 0, err
	}
	return len(list.Items), nil
}

// projectMemory extrapolates the controller's RSS to 10,000 imports linearly from the two
// samples furthest apart, when the run held fewer.
func (e *env) projectMemory() {
	if len(e.memory) < 2 {
		return
	}
	lo, hi := e.memory[0], e.memory[0]
	for _, s := range e.memory {
		if s.imports < lo.imports {
			lo = s
		}
		if s.imports > hi.imports {
			hi = s
		}
	}
	if hi.imports >= 10000 || hi.imports-lo.imports < 500 {
		return
	}
	perImport := float64(hi.rss-lo.rss) / float64(hi.imports-lo.imports)
	projected := float64(hi.rss) + perImport*float64(10000-hi.imports)
	e.report.add(Row{Item: 5, Measure: "Controller memory projected to 10,000 imports (linear in imports, from the samples above)",
		Result: fmt.Sprintf("%s (%.1f KiB per import)", mib(int64(projected)), perImport/1024), Target: "≤ 150 MiB at 10,000",
		Verdict: verdict(projected <= 150<<20) + " (projected)"})
}

// WriteReport prints the report's table to path (creating its directory).
func WriteReport(r *Report, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	r.Markdown(f)
	return f.Close()
}
