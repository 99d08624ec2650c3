package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// cli measures item 6: the wall time of `kubectl-mcsa version`, process start to exit (kubectl
// itself, which execs the plugin, adds its own start-up). When the median misses the target,
// the heaviest package initializers (GODEBUG=inittrace=1) are noted.
func (e *env) cli() error {
	run := func(env ...string) (time.Duration, []byte, error) {
		cmd := exec.Command(e.cfg.PluginBin, "version")
		cmd.Env = append(cmd.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		return time.Since(start), stderr.Bytes(), err
	}
	if _, _, err := run(); err != nil { // warm the page cache
		return fmt.Errorf("kubectl-mcsa version: %w", err)
	}
	var ds []time.Duration
	for range e.cfg.CLIRuns {
		d, _, err := run()
		if err != nil {
			return err
		}
		ds = append(ds, d)
	}
	p50 := percentile(ds, 50)
	e.report.add(Row{Item: 6, Measure: fmt.Sprintf("`kubectl-mcsa version` wall time, %d runs", len(ds)),
		Result: fmt.Sprintf("median **%s**, p90 %s, min %s", ms(p50), ms(percentile(ds, 90)), ms(percentile(ds, 0))),
		Target: "≤ 30 ms", Verdict: verdict(p50 <= 30*time.Millisecond)})
	if p50 > 30*time.Millisecond {
		_, trace, err := run("GODEBUG=inittrace=1")
		if err != nil {
			return err
		}
		total, top := heaviestInits(trace, 5)
		e.report.note("CLI start: package initializers take %.1f ms in all (GODEBUG=inittrace=1); heaviest: %s", total, strings.Join(top, ", "))
	}
	e.report.loadNow("after CLI")
	return nil
}

// heaviestInits parses GODEBUG=inittrace=1 output (`init PKG @T ms, D ms clock, B bytes, A
// allocs`) and returns the total clock time and the n heaviest packages.
func heaviestInits(trace []byte, n int) (float64, []string) {
	type init struct {
		pkg string
		ms  float64
	}
	var inits []init
	total := 0.0
	s := bufio.NewScanner(bytes.NewReader(trace))
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) < 7 || f[0] != "init" || f[6] != "clock," {
			continue
		}
		d, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			continue
		}
		inits = append(inits, init{f[1], d})
		total += d
	}
	slices.SortFunc(inits, func(a, b init) int { return -cmpFloat(a.ms, b.ms) })
	var top []string
	for _, i := range inits[:min(n, len(inits))] {
		top = append(top, fmt.Sprintf("%s %.2f ms", i.pkg, i.ms))
	}
	return total, top
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
