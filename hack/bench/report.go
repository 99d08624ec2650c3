package bench

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Row is one line of the results table.
type Row struct {
	// Item is the numbering: 1 throughput … 6 CLI start.
	Item    int
	Measure string
	Result  string
	Target  string
	// Verdict is "met", "MISSED" or "" (no target for this line).
	Verdict string
}

// Report is what a run measured.
type Report struct {
	Started, Finished time.Time
	Config            Config
	// Load is /proc/loadavg at the start, then after each phase.
	Load    []string
	Machine string

	mu    sync.Mutex
	Rows  []Row
	Notes []string
}

func (r *Report) add(row Row) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Rows = append(r.Rows, row)
}

func (r *Report) note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) loadNow(when string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Load = append(r.Load, when+": "+loadAverage())
}

// verdict is "met" when ok, else "MISSED".
func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// Markdown renders the report: the machine, the table, then notes on how each figure was
// measured.
func (r *Report) Markdown(w io.Writer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(w, "## kubectl-mcsa benchmark, %s\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(w, "Machine: %s  \n", r.Machine)
	fmt.Fprintf(w, "Run: %s, %s  \n", r.Config.Summary(), r.Finished.Sub(r.Started).Round(time.Second))
	fmt.Fprintf(w, "Load average (1, 5, 15 min):  \n")
	for _, l := range r.Load {
		fmt.Fprintf(w, "- %s\n", l)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| # | measure | result | target | verdict |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	for _, row := range r.Rows {
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s |\n", row.Item, row.Measure, row.Result, row.Target, row.Verdict)
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(w, "\nNotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
}

// machine describes the CPU, cores, memory, kernel and Go.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
					mem = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
				}
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores, %s RAM, Linux %s, %s", model, runtime.NumCPU(), mem, kernel, runtime.Version())
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], ", ")
}
