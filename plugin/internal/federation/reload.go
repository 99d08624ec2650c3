package federation

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mcsa/kubectl-mcsa/plugin/internal/kube"
)

// B's kube-apiserver swaps its JWT authenticators, all rebuilt from its file, about 10 s after
// the file changes, once the new ones are healthy; it keeps its previous ones while the file is
// invalid or an issuer of it cannot be fetched. A token of A signed with A's current key does
// not tell the old authenticator for A from the new one, which fetches A's keys anew: B's
// metric LoadedConfigMetric does, naming the hash of the file it loaded last.

// LoadedConfigMetric is kube-apiserver's metric (alpha, in recent versions) whose hash label names the
// authentication configuration file it loaded last (ConfigHash of its content).
const LoadedConfigMetric = "apiserver_authentication_config_controller_last_config_info"

// maxMetricsSize bounds the metrics read: a server that ignores the name[] filter sends them all.
const maxMetricsSize = 64 << 20

// ConfigHash names an authentication configuration file's content as kube-apiserver does.
func ConfigHash(data []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(data)) }

// loadedConfigs are the hashes of the authentication configurations that c's API server reports
// loaded (one per API server answering; none when its metrics lack LoadedConfigMetric).
func loadedConfigs(ctx context.Context, c *kube.Clients) ([]string, error) {
	cfg := rest.CopyConfig(c.Config)
	cfg.GroupVersion = &schema.GroupVersion{}
	cfg.NegotiatedSerializer = scheme.Codecs.WithoutConversion()
	cfg.QPS = -1 // the caller polls at its own pace
	rc, err := rest.UnversionedRESTClientFor(cfg)
	if err != nil {
		return nil, err
	}
	stream, err := rc.Get().AbsPath("/metrics").Param("name[]", LoadedConfigMetric).Stream(ctx)
	if err != nil {
		return nil, err
	}
	defer stream.Close()
	var hashes []string
	sc := bufio.NewScanner(io.LimitReader(stream, maxMetricsSize))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), LoadedConfigMetric+"{")
		if !ok {
			continue
		}
		labels, _, _ := strings.Cut(rest, "}")
		for l := range strings.SplitSeq(labels, ",") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), `hash="`); ok {
				hashes = append(hashes, strings.TrimSuffix(v, `"`))
			}
		}
	}
	return hashes, sc.Err()
}

// waitLoaded waits, up to Wait, until B's kube-apiserver reports that it loaded B's file as it
// is now: then its authenticator for A is built from this entry, and any key of A it fetches is
// one A publishes now. When B's metrics cannot tell (no access to /metrics, an older server), it
// says so and returns nil: the canary alone is verified.
func (f *Federate) waitLoaded(ctx context.Context, p *Plan) error {
	t := f.timings.withDefaults()
	want := p.File.Hash()
	written := p.FileAction == kube.Configured
	f.UI.Step("waiting until %s's kube-apiserver has loaded %s as it is now (%s, in its metric %s; up to %s)", f.BName, p.File.Path, want, LoadedConfigMetric, f.Wait)
	start := time.Now()
	var (
		last    []string
		lastErr error
		unknown error
	)
	err := wait.PollUntilContextTimeout(ctx, t.interval, f.Wait, true, func(ctx context.Context) (bool, error) {
		hashes, err := loadedConfigs(ctx, f.B)
		if ctx.Err() != nil {
			return false, nil // cut short by the deadline: the previous answer stands
		}
		switch {
		case apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) || apierrors.IsNotFound(err):
			unknown = err
			return true, nil
		case err != nil:
			lastErr = err
			return false, nil
		case len(hashes) == 0:
			unknown = fmt.Errorf("its metrics have no %s", LoadedConfigMetric)
			return true, nil
		}
		last, lastErr = hashes, nil
		return slices.Contains(hashes, want), nil
	})
	switch {
	case unknown != nil:
		if written || p.KeysChanged {
			f.UI.Warn("cannot tell when %s loads %s (%v): it does about 10 s after the file changes, and keeps its previous configuration while the new one fails (its kube-apiserver log says why). Before %s signs with a new key, wait until %s has loaded the file",
				f.BName, p.File.Path, unknown, f.AName, f.BName)
		}
		return nil
	case err == nil:
		f.UI.Done("%s has loaded %s as it is now (after %s): its authenticator for %s fetches the keys %s publishes now", f.BName, p.File.Path,
			time.Since(start).Round(100*time.Millisecond), f.AName, f.AName)
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s's kube-apiserver did not load %s (%s) within %s: ", f.BName, p.File.Path, want, f.Wait)
	if lastErr != nil {
		fmt.Fprintf(&b, "reading its metrics: %v. Check that %s's API server is reachable at %s from here.", lastErr, f.BName, f.B.Config.Host)
	} else {
		fmt.Fprintf(&b, "it reports having loaded %s. It swaps its authenticators only once the new ones can fetch their issuers, and retries every minute. Check, in order:\n  1. %s's kube-apiserver reads %s (its --authentication-config flag);",
			strings.Join(last, ", "), f.BName, p.File.Path)
		f.checkList(ctx, &b, p)
	}
	b.WriteString("\nRun this again to wait longer: what is in place stays; --wait=false skips the verification.")
	return &NotVerifiedError{b.String()}
}
