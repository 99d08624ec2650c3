package bench

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/credential"
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
	if err := e.credentialRuns(); err != nil {
		return err
	}
	e.report.loadNow("after CLI")
	return nil
}

// credentialRuns measures `kubectl-mcsa credential NAME` as client-go runs it in a pod: the
// import mounted (MCSA_SERVICEACCOUNTIMPORTS_DIR), no API call, the ExecCredential on stdout.
// Client-go waits for it before a request whenever the previous credential is due, so its tail
// latency is a request's.
func (e *env) credentialRuns() error {
	root, err := os.MkdirTemp("", "mcsa-bench-imports-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root) //nolint:errcheck // a temporary folder: nothing to report
	const name = "bench-import"
	now := time.Now()
	claims, _ := json.Marshal(map[string]int64{"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}) // numbers only: cannot fail
	enc := base64.RawURLEncoding.EncodeToString
	token := enc([]byte(`{"alg":"RS256"}`)) + "." + enc(claims) + "." + enc([]byte("signature"))
	data, err := credential.Data{ClusterName: "cluster2", Server: "https://cluster2.example:6443", CAData: []byte("CA"), Namespace: "default", Token: token}.
		SecretData(v1alpha1.MountPath(name))
	if err != nil {
		return err
	}
	dir := filepath.Join(root, name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			return err
		}
	}
	run := func() (time.Duration, error) {
		cmd := exec.Command(e.cfg.PluginBin, "credential", name)
		cmd.Env = append(cmd.Environ(), "MCSA_SERVICEACCOUNTIMPORTS_DIR="+root)
		var stdout bytes.Buffer
		cmd.Stdout = &stdout
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err == nil && !bytes.Contains(stdout.Bytes(), []byte(`"kind":"ExecCredential"`)) {
			err = fmt.Errorf("kubectl-mcsa credential printed no ExecCredential: %s", stdout.String())
		}
		return d, err
	}
	if _, err := run(); err != nil { // warm the page cache
		return fmt.Errorf("kubectl-mcsa credential: %w", err)
	}
	runs := max(e.cfg.CLIRuns, 100) // a p99 needs a hundred
	var ds []time.Duration
	for range runs {
		d, err := run()
		if err != nil {
			return err
		}
		ds = append(ds, d)
	}
	p99 := percentile(ds, 99)
	e.report.add(Row{Item: 6, Measure: fmt.Sprintf("`kubectl-mcsa credential NAME` in a pod (mounted import) wall time, %d runs", len(ds)),
		Result: fmt.Sprintf("p99 **%s**, median %s, max %s", ms(p99), ms(percentile(ds, 50)), ms(percentile(ds, 100))),
		Target: "p99 ≤ 20 ms", Verdict: verdict(p99 <= 20*time.Millisecond)})
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
