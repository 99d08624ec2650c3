package bench

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(5, 1, 3), 50, 3 * time.Millisecond},
		{"median of even is the lower", ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{"p99 of 100 is the 99th", ms(seq(100)...), 99, 99 * time.Millisecond},
		{"max", ms(3, 9, 1), 100, 9 * time.Millisecond},
		{"min", ms(3, 9, 1), 0, 1 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.in, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %g) = %v, want %v", tc.in, tc.p, got, tc.want)
			}
		})
	}
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

func TestWindowsAndRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms ...int) []time.Time {
		out := make([]time.Time, len(ms))
		for i, m := range ms {
			out[i] = t0.Add(time.Duration(m) * time.Millisecond)
		}
		return out
	}
	for _, tc := range []struct {
		name     string
		events   []time.Time
		to       time.Duration
		want     []int
		mean     float64
		peak     int
		rate     float64
		wantSpan time.Duration
	}{
		{"spread", at(0, 500, 1500, 2999), 3 * time.Second, []int{2, 1, 1}, 4.0 / 3, 2, 3 / 2.999, 2999 * time.Millisecond},
		{"outside ignored", at(-1, 0, 3000), 3 * time.Second, []int{1, 0, 0}, 1.0 / 3, 1, 2.0 / 3.001, 3001 * time.Millisecond},
		{"partial last window", at(100, 2100), 2500 * time.Millisecond, []int{1, 0, 1}, 2.0 / 3, 1, 1.0 / 2, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := windows(tc.events, t0, t0.Add(tc.to))
			if len(got) != len(tc.want) {
				t.Fatalf("windows = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("windows = %v, want %v", got, tc.want)
				}
			}
			mean, peak := meanMax(got)
			if !near(mean, tc.mean) || peak != tc.peak {
				t.Errorf("meanMax = %g, %d, want %g, %d", mean, peak, tc.mean, tc.peak)
			}
			r, span := rate(tc.events)
			if !near(r, tc.rate) || span != tc.wantSpan {
				t.Errorf("rate = %g over %v, want %g over %v", r, span, tc.rate, tc.wantSpan)
			}
		})
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

func TestReadAudit(t *testing.T) {
	log := `{"kind":"Event","stage":"ResponseComplete","verb":"create","userAgent":"mcsa-importer","objectRef":{"resource":"serviceaccounts","namespace":"steady","name":"sa-1","subresource":"token"},"responseStatus":{"code":201},"requestReceivedTimestamp":"2026-01-01T00:00:01.250000Z"}
{"kind":"Event","stage":"ResponseComplete","verb":"create","userAgent":"mcsa-importer","objectRef":{"resource":"serviceaccounts","namespace":"steady","name":"sa-2","subresource":"token"},"responseStatus":{"code":403},"requestReceivedTimestamp":"2026-01-01T00:00:02Z"}
{"kind":"Event","stage":"ResponseStarted","verb":"create","userAgent":"mcsa-importer","objectRef":{"resource":"serviceaccounts","namespace":"steady","name":"sa-3","subresource":"token"},"requestReceivedTimestamp":"2026-01-01T00:00:03Z"}
{"kind":"Event","stage":"ResponseComplete","verb":"get","userAgent":"mcsa-importer","objectRef":{"resource":"serviceaccounts","namespace":"steady","name":"sa-4"},"responseStatus":{"code":200},"requestReceivedTimestamp":"2026-01-01T00:00:04Z"}
{"kind":"Event","stage":"ResponseComplete","verb":"create","userAgent":"other","objectRef":{"resource":"serviceaccounts","namespace":"bench","name":"sa-5","subresource":"token"},"responseStatus":{"code":201},"requestReceivedTimestamp":"2026-01-01T00:00:05Z"}
`
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []tokenRequest{
		{at: time.Date(2026, 1, 1, 0, 0, 1, 250000000, time.UTC), agent: "mcsa-importer", namespace: "steady", name: "sa-1"},
		{at: time.Date(2026, 1, 1, 0, 0, 5, 0, time.UTC), agent: "other", namespace: "bench", name: "sa-5"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if !got[i].at.Equal(want[i].at) || got[i].agent != want[i].agent || got[i].namespace != want[i].namespace || got[i].name != want[i].name {
			t.Errorf("request %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestHeaviestInits(t *testing.T) {
	trace := []byte(`init internal/bytealg @0.003 ms, 0 ms clock, 0 bytes, 0 allocs
init runtime @0.020 ms, 0.030 ms clock, 0 bytes, 0 allocs
init k8s.io/client-go/kubernetes/scheme @5.1 ms, 2.5 ms clock, 900000 bytes, 9000 allocs
init github.com/spf13/cobra @9 ms, 0.40 ms clock, 100 bytes, 2 allocs
not an init line
`)
	total, top := heaviestInits(trace, 2)
	if !near(total, 2.93) {
		t.Errorf("total = %g, want 2.93", total)
	}
	if len(top) != 2 || top[0] != "k8s.io/client-go/kubernetes/scheme 2.50 ms" || top[1] != "github.com/spf13/cobra 0.40 ms" {
		t.Errorf("top = %q", top)
	}
}
