package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mcsa/kubectl-mcsa/test/controlplane"
)

// TestSmoke runs every phase at a tiny size so that the benchmark keeps compiling and
// working; its figures mean nothing (`make bench` measures). The steady-state refreshes, which
// take over ten minutes, are left out.
func TestSmoke(t *testing.T) {
	controlplane.SkipIfShort(t)
	cfg := DefaultConfig()
	cfg.Imports = 20
	cfg.Profiles = []Limits{DefaultLimits}
	cfg.SteadyImports = 10
	cfg.SteadyCreateRate = 20
	cfg.SteadyRefresh = false
	cfg.SteadyObserve = 2 * time.Second
	cfg.WebhookRates = []int{20}
	cfg.WebhookDuration = time.Second
	cfg.Pods = 4
	cfg.CLIRuns = 3
	cfg.Log = t.Logf
	report, err := Run(t.Context(), cfg)
	var out bytes.Buffer
	report.Markdown(&out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	items := map[int]int{}
	for _, r := range report.Rows {
		items[r.Item]++
	}
	// Item 4's refresh rows need the refreshes; the restart row is there.
	for item, want := range map[int]int{1: 1, 2: 1, 3: 2, 4: 1, 5: 3, 6: 2} {
		if items[item] != want {
			t.Errorf("item %d: %d rows, want %d", item, items[item], want)
		}
	}
	if !strings.Contains(out.String(), "| 1 | Bulk import throughput, N=20") {
		t.Errorf("table lacks the throughput row:\n%s", out.String())
	}
}
