package importer

import (
	"hash/fnv"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// The import's status records the token its secret holds: lastRefreshTime, expirationTimestamp
// and tokenGeneration are the refresh schedule. Only the importer writes the status (the status
// subresource; those who may edit the secret, its namespace's users, may not edit the status), so
// that nobody but the importer decides when a token is refreshed or what the import reports as
// its expiry. The schedule survives restarts without minting a token again; a status lost (wiped,
// or its write lost in a crash after the secret's) costs one refresh, which is safe: the previous
// token stays valid until it expires.

// minRefreshInterval bounds how often a token is refreshed on schedule: a server returning tiny
// lifetimes (a short cap, a skewed clock) must not make the importer mint tokens in a loop.
const minRefreshInterval = time.Minute

// tokenState describes the token held by an import's secret.
type tokenState struct {
	issued, expires time.Time
	// generation is the import's generation the token was requested for.
	generation int64
}

// readTokenState reads the state of the token in the import's secret from the import's status.
// Without the secret, or without a complete record (a credential written by bootstrap, a status
// lost), there is none, and the token is refreshed.
func readTokenState(imp *v1alpha1.ServiceAccountImport, hasSecret bool) (tokenState, bool) {
	s := imp.Status
	if !hasSecret || s.LastRefreshTime == nil || s.ExpirationTimestamp == nil {
		return tokenState{}, false
	}
	gen := s.TokenGeneration
	if gen == 0 {
		gen = legacyTokenGeneration(imp)
	}
	if gen == 0 {
		return tokenState{}, false
	}
	return tokenState{issued: s.LastRefreshTime.Time, expires: s.ExpirationTimestamp.Time, generation: gen}, true
}

// legacyTokenGeneration reads the generation of the token from a status written before
// tokenGeneration existed, so that an upgrade does not refresh every import at once: such an
// importer reported Ready for a generation only with a token issued for it. 0 means unknown.
func legacyTokenGeneration(imp *v1alpha1.ServiceAccountImport) int64 {
	c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || c.Reason != v1alpha1.ReasonTokenIssued {
		return 0
	}
	return c.ObservedGeneration
}

// record writes st into status, the import's schedule.
func (st tokenState) record(status *v1alpha1.ServiceAccountImportStatus) {
	status.LastRefreshTime = &metav1.Time{Time: st.issued}
	status.ExpirationTimestamp = &metav1.Time{Time: st.expires}
	status.TokenGeneration = st.generation
}

// refreshAt is when a token is refreshed on schedule: at 75–85 % of the lifetime the server
// actually granted (it may cap the requested one), never sooner than minRefreshInterval after
// issue. The spread comes from a hash of key and the issue time rather than a random draw, so
// that a restarted importer computes the same instant and does not refresh everything at once.
func refreshAt(st tokenState, key string) time.Time {
	lifetime := st.expires.Sub(st.issued)
	fraction := v1alpha1.RefreshFractionMin + (v1alpha1.RefreshFractionMax-v1alpha1.RefreshFractionMin)*jitter(key, st.issued)
	at := st.issued.Add(time.Duration(float64(lifetime) * fraction))
	if earliest := st.issued.Add(minRefreshInterval); at.Before(earliest) {
		return earliest
	}
	return at
}

// jitter is a deterministic fraction in [0, 1).
func jitter(key string, issued time.Time) float64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	h.Write([]byte(issued.UTC().Format(time.RFC3339)))
	return float64(h.Sum64()>>11) / (1 << 53)
}

// Why a token is refreshed, for logs, events and metrics.
const (
	refreshNoSecret    = "NoToken"
	refreshSpecChanged = "SpecChanged"
	refreshRequested   = "Requested"
	refreshRetry       = "Retry"
	refreshScheduled   = "Scheduled"
)

// refreshReason says why imp needs a new token now, or "" if the one in its secret is current.
func refreshReason(imp *v1alpha1.ServiceAccountImport, st tokenState, hasState bool, now time.Time) string {
	switch {
	case !hasState:
		return refreshNoSecret
	case st.generation != imp.Generation:
		return refreshSpecChanged
	case refreshRequest(imp) != "" && refreshRequest(imp) != imp.Status.LastRefreshRequest:
		return refreshRequested
	case failedBefore(imp):
		// A failed refresh is retried (with backoff) until it succeeds, even if the current token
		// is still valid: the import keeps reporting the failure rather than flapping to Ready.
		return refreshRetry
	case !now.Before(refreshAt(st, string(imp.UID))):
		return refreshScheduled
	}
	return ""
}

// failedBefore reports whether the last reconcile of the current spec failed.
func failedBefore(imp *v1alpha1.ServiceAccountImport) bool {
	c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionReady)
	return c != nil && c.Status == metav1.ConditionFalse && c.ObservedGeneration == imp.Generation
}

func refreshRequest(imp *v1alpha1.ServiceAccountImport) string {
	return imp.Annotations[v1alpha1.RefreshRequestedAnnotation]
}
