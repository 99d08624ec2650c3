package importer

import (
	"hash/fnv"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// The secret records the token it holds in annotations (v1alpha1.Token*Annotation), so that the
// refresh schedule survives restarts (and a status write lost in a crash) without minting a token
// again.

// Refresh happens between these fractions of the token's lifetime: ~80 %, spread so that imports
// created together do not refresh together.
const (
	refreshFractionMin = 0.75
	refreshFractionMax = 0.85
)

// minRefreshInterval bounds how often a token is refreshed on schedule: a server returning tiny
// lifetimes (a short cap, a skewed clock) must not make the importer mint tokens in a loop.
const minRefreshInterval = time.Minute

// tokenState describes the token held by a secret.
type tokenState struct {
	issued, expires time.Time
	// generation is the import's generation the token was requested for.
	generation int64
}

// readTokenState reads the state recorded on a secret. Without a complete record (a secret
// written by bootstrap, or edited by hand) there is none, and the token is refreshed.
func readTokenState(s *corev1.Secret) (tokenState, bool) {
	if s == nil || len(s.Data[v1alpha1.SecretKeyToken]) == 0 {
		return tokenState{}, false
	}
	issued, err1 := time.Parse(time.RFC3339, s.Annotations[v1alpha1.TokenIssuedAtAnnotation])
	expires, err2 := time.Parse(time.RFC3339, s.Annotations[v1alpha1.TokenExpiresAtAnnotation])
	gen, err3 := strconv.ParseInt(s.Annotations[v1alpha1.ImportGenerationAnnotation], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return tokenState{}, false
	}
	return tokenState{issued: issued, expires: expires, generation: gen}, true
}

func (st tokenState) annotate(s *corev1.Secret) {
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[v1alpha1.TokenIssuedAtAnnotation] = st.issued.UTC().Format(time.RFC3339)
	s.Annotations[v1alpha1.TokenExpiresAtAnnotation] = st.expires.UTC().Format(time.RFC3339)
	s.Annotations[v1alpha1.ImportGenerationAnnotation] = strconv.FormatInt(st.generation, 10)
}

// refreshAt is when a token is refreshed on schedule: at 75–85 % of the lifetime the server
// actually granted (it may cap the requested one), never sooner than minRefreshInterval after
// issue. The spread comes from a hash of key and the issue time rather than a random draw, so
// that a restarted importer computes the same instant and does not refresh everything at once.
func refreshAt(st tokenState, key string) time.Time {
	lifetime := st.expires.Sub(st.issued)
	fraction := refreshFractionMin + (refreshFractionMax-refreshFractionMin)*jitter(key, st.issued)
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
