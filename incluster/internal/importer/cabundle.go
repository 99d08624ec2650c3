package importer

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/grant"
)

// B's serving CA rotates: kube-controller-manager publishes the CAs that clients should trust in
// every namespace (grant.RootCAConfigMap, from its --root-ca-file), old and new during an
// overlap, before the API server serves with the new one. The importer reads that bundle in
// grant.Namespace with the credential (grant.CAReaderRole), and writes into every import's secret,
// and into the credential's own, the union of the credential's CA and what B publishes: clients
// trust the new CA before B serves with it, and the importer's own client, rebuilt when the
// credential's secret changes, does too. Without the grant (a bootstrap that predates it) or
// the ConfigMap, the credential's CA is kept, as before.

// maxPublishedCerts bounds how many certificates of B's published bundle are kept: the bundle is
// copied into every import's secret, and a rotation needs two or three.
const maxPublishedCerts = 16

// publishedCA caches what a remote cluster publishes of its CA bundle. It is read in the cluster
// credential's reconciles only, at most once per Options.CABundleRecheck; imports use what it
// holds. It outlives the clients built from successive versions of the credential (see
// clusters.get), so that a new client does not read B again. The zero value is ready to use.
type publishedCA struct {
	mu sync.Mutex
	// readAt is the last read's time, successful or not; zero before the first.
	readAt time.Time
	// pem is the bundle B published at the last read that B answered: nil when B refused it or
	// has none. Kept across failures to reach B, which say nothing about the bundle.
	pem []byte
	// reported is the kind of failure last logged ("" none since the last success), so that a
	// failure is logged once, not at every recheck.
	reported string
}

// get is the bundle as last read.
func (p *publishedCA) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pem
}

// due tells whether the bundle should be read again at now: never read, read at least ttl ago,
// or the clock moved back.
func (p *publishedCA) due(now time.Time, ttl time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.readAt.IsZero() || now.Before(p.readAt) || now.Sub(p.readAt) >= ttl
}

// record stores a read's result: answered says whether B answered about the bundle (pem is then
// what it holds, nil for none), failure the kind of failure ("" for none). It tells whether the
// failure is new, to be logged.
func (p *publishedCA) record(now time.Time, pem []byte, answered bool, failure string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.readAt = now
	if answered {
		p.pem = pem
	}
	if failure == p.reported {
		return false
	}
	p.reported = failure
	return failure != ""
}

// Kinds of failures to read B's bundle.
const (
	caForbidden   = "forbidden"
	caNotFound    = "not found"
	caUnreachable = "unreachable"
)

// caReadTTL is how long a read of B's bundle answers, for a recheck period: a little less than
// the period, so that the credential's reconcile requeued after it reads again.
func caReadTTL(recheck time.Duration) time.Duration { return recheck * 9 / 10 }

// learnCA reads, for the cluster credential's reconcile, the CA bundle rem publishes, unless it
// was read less than caReadTTL ago. It never fails the reconcile: a refused or missing bundle
// leaves the credential's CA in use, and a failure to reach B keeps what was read before. Each
// kind of failure is logged once, until a read succeeds.
func (r *Reconciler) learnCA(ctx context.Context, rem *remote, now time.Time) {
	if rem.published == nil || rem.client == nil || !rem.published.due(now, caReadTTL(r.opts.CABundleRecheck)) {
		return
	}
	cm, err := rem.client.CoreV1().ConfigMaps(grant.Namespace).Get(ctx, grant.RootCAConfigMap, metav1.GetOptions{})
	log := logf.FromContext(ctx).WithValues("configMap", grant.Namespace+"/"+grant.RootCAConfigMap)
	switch {
	case err == nil:
		var data []byte
		if v := cm.Data[grant.RootCAKey]; v != "" {
			data = []byte(v)
		}
		rem.published.record(now, data, true, "")
	case apierrors.IsForbidden(err):
		if rem.published.record(now, nil, true, caForbidden) {
			log.Info("The cluster forbids reading the CA bundle it publishes (a bootstrap that predates that grant): the secrets keep the credential's CA, and a rotation of the cluster's serving CA will need bootstrap again. To follow rotations, run bootstrap again.",
				"role", grant.CAReaderName(rem.importingCluster), "command", grant.BootstrapCommand(rem.importingCluster, rem.name))
		}
	case apierrors.IsNotFound(err):
		if rem.published.record(now, nil, true, caNotFound) {
			log.Info("The cluster publishes no CA bundle (its controller manager's root-ca-certificate-publisher is off?): the secrets keep the credential's CA, and a rotation of the cluster's serving CA will need bootstrap again.")
		}
	case ctx.Err() != nil:
		// Stopping: nothing was learnt, and nothing to report.
	default:
		if rem.published.record(now, nil, false, caUnreachable) {
			log.Info("Cannot read the CA bundle the cluster publishes; the bundle read before, if any, stays in use", "error", err.Error())
		}
	}
}

// caBundle is the CA bundle the importer writes for imports of rem, and for its credential:
// the client's CA, merged with what rem publishes (mergeCABundles) for clusters reached through a
// credential.
func (r *Reconciler) caBundle(rem *remote) []byte {
	if rem.published == nil {
		return rem.caData
	}
	return mergeCABundles(rem.caData, rem.published.get(), r.opts.Clock.Now())
}

// mergeCABundles is the CA bundle to trust for a server whose credential trusts own (PEM) and
// which publishes published (PEM): own's certificates, then those of published not in own
// (at most maxPublishedCerts), each once, without those expired at now. The union, so that
// clients trust every CA B serves with during an overlap, and a CA B published once stays
// trusted until it expires (the credential's secret then holds it: own grows).
//
// own is returned as it is, byte for byte, when the merge would not change its certificates
// (so that nothing is rewritten), and also when it cannot be merged safely:
//   - own is empty: the credential trusts the system's roots, and B's server is reached through
//     a certificate of a public CA, which the bundle B publishes (its cluster CA) need not be;
//   - own holds no certificate that parses: what it holds is left to the client to judge;
//   - every certificate would be dropped as expired: an empty bundle would mean the system's
//     roots, not "none".
func mergeCABundles(own, published []byte, now time.Time) []byte {
	ownCerts := parseCerts(own, 0)
	if len(ownCerts) == 0 {
		return own
	}
	var merged []*x509.Certificate
	seen := map[string]bool{}
	add := func(c *x509.Certificate) {
		if seen[string(c.Raw)] || now.After(c.NotAfter) {
			return
		}
		seen[string(c.Raw)] = true
		merged = append(merged, c)
	}
	for _, c := range ownCerts {
		add(c)
	}
	for _, c := range parseCerts(published, maxPublishedCerts) {
		add(c)
	}
	if len(merged) == 0 {
		return own
	}
	if len(merged) == len(ownCerts) {
		same := true
		for i := range merged {
			same = same && bytes.Equal(merged[i].Raw, ownCerts[i].Raw)
		}
		if same {
			return own
		}
	}
	var out bytes.Buffer
	for _, c := range merged {
		// Writing to a bytes.Buffer does not fail.
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	return out.Bytes()
}

// parseCerts is the certificates of a PEM bundle, in order, at most limit of them (0: no limit);
// blocks that are not certificates, or do not parse, are skipped.
func parseCerts(bundle []byte, limit int) []*x509.Certificate {
	var certs []*x509.Certificate
	for rest := bundle; len(rest) > 0 && (limit == 0 || len(certs) < limit); {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" || len(block.Headers) > 0 {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			continue
		}
		certs = append(certs, c)
	}
	return certs
}
