package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of ds; 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// windows counts events per second-long window of [from, to): counts[i] is the number of
// events in [from+i s, from+(i+1) s). Events outside are ignored.
func windows(events []time.Time, from, to time.Time) []int {
	n := int(math.Ceil(to.Sub(from).Seconds()))
	if n <= 0 {
		return nil
	}
	counts := make([]int, n)
	for _, t := range events {
		if t.Before(from) || !t.Before(to) {
			continue
		}
		counts[int(t.Sub(from)/time.Second)]++
	}
	return counts
}

// meanMax are the mean and maximum of counts.
func meanMax(counts []int) (mean float64, peak int) {
	if len(counts) == 0 {
		return 0, 0
	}
	sum := 0
	for _, c := range counts {
		sum += c
		peak = max(peak, c)
	}
	return float64(sum) / float64(len(counts)), peak
}

// rate is n events per the span between first and last, per second; the first event starts
// the clock, so it is not counted.
func rate(times []time.Time) (float64, time.Duration) {
	if len(times) < 2 {
		return 0, 0
	}
	first, last := slices.MinFunc(times, time.Time.Compare), slices.MaxFunc(times, time.Time.Compare)
	span := last.Sub(first)
	if span <= 0 {
		return 0, span
	}
	return float64(len(times)-1) / span.Seconds(), span
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func mib(bytes int64) string {
	return fmt.Sprintf("%.0f MiB", float64(bytes)/(1<<20))
}
