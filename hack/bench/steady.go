package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"

	"k8s.io/utils/ptr"
)

// steady measures items 2 and 4. SteadyImports imports with a SteadyLifetime token are created
// one by one at the steady-state rate P/(0.8·T): their issue times are then spread as after a
// long run, and each one's create→Ready latency is item 2. Their first refreshes come from
// 0.75·T on; from 0.85·T the refresh rate is flat at P/(0.8·T). At 0.95·T the controller is
// restarted. B's audit log gives every token request's time: the rate on the flat part, the
// per-second peak after the restart, each import's refresh point, and whether the restart
// refreshed any of the bulk runs' one-hour tokens.
func (e *env) steady(ctx context.Context) error {
	p, T := e.cfg.SteadyImports, e.cfg.SteadyLifetime
	if e.ctrl == nil {
		if err := e.startController(ctx, DefaultLimits); err != nil {
			return err
		}
	}
	const ns = "steady"
	if err := e.namespaceA(ctx, ns, nil); err != nil {
		return err
	}
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tracker := e.trackReady(tctx, ns)

	createRate := e.cfg.SteadyCreateRate
	if createRate == 0 {
		createRate = float64(p) / (0.8 * T.Seconds())
	}
	interval := time.Duration(float64(time.Second) / createRate)
	e.log("steady: creating %d imports at %.2f/s (token lifetime %s)", p, createRate, T)
	created := make([]time.Time, p)
	t0 := time.Now()
	for i := range p {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(t0.Add(time.Duration(i) * interval))):
		}
		created[i] = time.Now()
		if err := e.ac.Create(ctx, newImport(ns, "st", remoteSteady, i, ptr.To(int64(T/time.Second)))); err != nil {
			return err
		}
	}
	if err := tracker.wait(ctx, p, 5*time.Minute, e.log); err != nil {
		return err
	}
	// Latency of the imports created before the first refreshes, which would add load.
	ready := tracker.times()
	var lat []time.Duration
	for i, c := range created {
		if c.Sub(t0) >= time.Duration(0.75*float64(T)) {
			break
		}
		lat = append(lat, ready[fmt.Sprintf("st-%d", i)].Sub(c))
	}
	p99 := percentile(lat, 99)
	e.report.add(Row{Item: 2, Measure: fmt.Sprintf("Import create → Ready, %d imports created at %.1f/s (defaults), timed by a watch", len(lat), createRate),
		Result: fmt.Sprintf("p50 %s, p99 **%s**, max %s", ms(percentile(lat, 50)), ms(p99), ms(percentile(lat, 100))),
		Target: "p99 ≤ 100 ms", Verdict: verdict(p99 <= 100*time.Millisecond)})
	e.report.loadNow("after latency")

	restartAt := t0.Add(time.Duration(0.95 * float64(T)))
	flatFrom := t0.Add(time.Duration(0.85 * float64(T)))
	if !e.cfg.SteadyRefresh {
		restartAt, flatFrom = time.Now(), time.Time{}
	}
	e.log("steady: restarting the controller at %s", restartAt.Format(time.TimeOnly))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(restartAt)):
	}
	stopAt := time.Now()
	e.stopController()
	if err := e.startController(ctx, DefaultLimits); err != nil {
		return err
	}
	downtime := time.Since(stopAt)
	observeTo := stopAt.Add(e.cfg.SteadyObserve)
	e.log("steady: observing until %s", observeTo.Format(time.TimeOnly))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Until(observeTo) + 2*time.Second):
	}

	reqs, err := readAudit(e.auditLog)
	if err != nil {
		return err
	}
	var steadyTimes, bulkAfter []time.Time
	perSA := map[string][]time.Time{}
	for _, r := range reqs {
		if r.agent != importerAgent {
			continue
		}
		switch r.namespace {
		case remoteSteady:
			steadyTimes = append(steadyTimes, r.at)
			perSA[r.name] = append(perSA[r.name], r.at)
		case remoteBulk:
			if !r.at.Before(stopAt) && r.at.Before(observeTo) {
				bulkAfter = append(bulkAfter, r.at)
			}
		}
	}
	held, err := e.importCount(ctx)
	if err != nil {
		return err
	}
	oneHour := held - p - 1 // all but these and the credential
	e.report.add(Row{Item: 4, Measure: fmt.Sprintf("Restart with %d one-hour imports Ready: their TokenRequests in the %s after the stop", oneHour, e.cfg.SteadyObserve),
		Result: fmt.Sprintf("**%d** (controller down %s)", len(bulkAfter), downtime.Round(100*time.Millisecond)),
		Target: "none due: 0", Verdict: verdict(len(bulkAfter) == 0)})

	if e.cfg.SteadyRefresh {
		e.steadyRows(p, T, perSA, steadyTimes, flatFrom, stopAt, observeTo, downtime)
	}
	rss, peak, err := e.ctrl.memory()
	if err != nil {
		return err
	}
	e.memory = append(e.memory, memorySample{imports: held, rss: rss})
	e.report.add(Row{Item: 5, Measure: fmt.Sprintf("Controller memory at the end, %d imports held (after a restart)", held),
		Result: fmt.Sprintf("VmRSS %s (peak VmHWM %s)", mib(rss), mib(peak)), Target: "≤ 150 MiB at 10,000", Verdict: memoryVerdict(held, rss)})
	e.report.loadNow("after steady state")
	return nil
}

func (e *env) steadyRows(p int, T time.Duration, perSA map[string][]time.Time, times []time.Time, flatFrom, stopAt, observeTo time.Time, downtime time.Duration) {
	theory := float64(p) / (0.8 * T.Seconds())
	all := windows(times, flatFrom, observeTo)
	mean, _ := meanMax(all)
	before := windows(times, flatFrom, stopAt)
	meanBefore, peakBefore := meanMax(before)
	after := windows(times, stopAt, observeTo)
	_, peakAfter := meanMax(after)

	// Where in its token's lifetime each import was refreshed.
	var fractions []float64
	extra := 0
	for _, ts := range perSA {
		slices.SortFunc(ts, time.Time.Compare)
		for i := 1; i < len(ts); i++ {
			f := ts[i].Sub(ts[i-1]).Seconds() / T.Seconds()
			fractions = append(fractions, f)
			if f < 0.74 {
				extra++
			}
		}
	}
	fMean, fMin, fMax := 0.0, 0.0, 0.0
	if len(fractions) > 0 {
		fMin, fMax = slices.Min(fractions), slices.Max(fractions)
		for _, f := range fractions {
			fMean += f
		}
		fMean /= float64(len(fractions))
	}
	e.report.add(Row{Item: 4, Measure: fmt.Sprintf("Sustained TokenRequest rate, %d imports at %s in steady state (from %s audit log, %s window)", p, T, clusterB, observeTo.Sub(flatFrom).Round(time.Second)),
		Result: fmt.Sprintf("**%.2f/s** = %.2f× N/(0.8·TTL) (%.2f/s); %d refreshes at %.1f–%.1f %% of the lifetime (mean %.1f %%), %d early",
			mean, mean/theory, theory, len(fractions), 100*fMin, 100*fMax, 100*fMean, extra),
		Target: "≤ 1.5× N/(0.8·TTL)", Verdict: verdict(mean <= 1.5*theory && extra == 0)})
	e.report.add(Row{Item: 4, Measure: fmt.Sprintf("Peak 1-s window of TokenRequests after a controller restart (down %s)", downtime.Round(100*time.Millisecond)),
		Result: fmt.Sprintf("**%d** in the %s after the stop = %.1f× the mean %.2f/s (before the restart: peak %d, mean %.2f/s)",
			peakAfter, observeTo.Sub(stopAt).Round(time.Second), float64(peakAfter)/mean, mean, peakBefore, meanBefore),
		Target: "≤ 3× the mean", Verdict: verdict(float64(peakAfter) <= 3*mean)})
	if fMean > 0 {
		n := e.cfg.Imports
		hourly := float64(n) / (fMean * 3600)
		e.report.add(Row{Item: 4, Measure: fmt.Sprintf("Implied average for N=%d at a 1 h lifetime (N / (mean refresh point · 1 h))", n),
			Result: fmt.Sprintf("%.2f/s = %.2f× N/(0.8·TTL) (%.2f/s)", hourly, hourly/(float64(n)/(0.8*3600)), float64(n)/(0.8*3600)),
			Target: "≤ 1.5× N/(0.8·TTL)", Verdict: verdict(hourly <= 1.5*float64(n)/(0.8*3600))})
	}
}

// tokenRequest is one TokenRequest of B's audit log.
type tokenRequest struct {
	at              time.Time
	agent           string
	namespace, name string
}

// readAudit reads B's audit log: the completed, successful token requests.
func readAudit(path string) ([]tokenRequest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []tokenRequest
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 1<<20), 1<<24)
	for s.Scan() {
		var ev struct {
			Stage     string `json:"stage"`
			Verb      string `json:"verb"`
			UserAgent string `json:"userAgent"`
			ObjectRef *struct {
				Resource, Namespace, Name, Subresource string
			} `json:"objectRef"`
			ResponseStatus *struct {
				Code int `json:"code"`
			} `json:"responseStatus"`
			RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
		}
		if err := json.Unmarshal(s.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if ev.Stage != "ResponseComplete" || ev.Verb != "create" || ev.ObjectRef == nil || ev.ObjectRef.Subresource != "token" ||
			ev.ResponseStatus == nil || ev.ResponseStatus.Code != 201 {
			continue
		}
		out = append(out, tokenRequest{at: ev.RequestReceivedTimestamp, agent: ev.UserAgent, namespace: ev.ObjectRef.Namespace, name: ev.ObjectRef.Name})
	}
	return out, s.Err()
}
