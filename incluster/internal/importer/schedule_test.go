package importer

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestRefreshAt(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		min, max time.Duration
	}{
		{"an hour: ~80 %", time.Hour, 45 * time.Minute, 51 * time.Minute},
		{"server capped a requested hour to ten minutes", 10 * time.Minute, 7*time.Minute + 30*time.Second, 8*time.Minute + 30*time.Second},
		{"a day", 24 * time.Hour, 18 * time.Hour, 20*time.Hour + 24*time.Minute},
		{"tiny lifetime: no hot loop", 10 * time.Second, minRefreshInterval, minRefreshInterval},
		{"already expired (clock skew): no hot loop", -time.Minute, minRefreshInterval, minRefreshInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i := range 200 {
				st := tokenState{issued: t0, expires: t0.Add(tt.lifetime)}
				got := refreshAt(st, fmt.Sprintf("uid-%d", i)).Sub(t0)
				if got < tt.min || got > tt.max {
					t.Fatalf("refresh after %s, want within [%s, %s]", got, tt.min, tt.max)
				}
			}
		})
	}
}

func TestRefreshAtJitter(t *testing.T) {
	st := tokenState{issued: t0, expires: t0.Add(time.Hour)}
	seen := map[time.Time]bool{}
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for i := range 1000 {
		key := fmt.Sprintf("uid-%d", i)
		at := refreshAt(st, key)
		if again := refreshAt(st, key); !again.Equal(at) {
			t.Fatalf("not deterministic: %s then %s; a restart would reschedule", at, again)
		}
		seen[at] = true
		lo, hi = min(lo, at.Sub(t0)), max(hi, at.Sub(t0))
	}
	// 1000 imports created together spread over most of the 6-minute window.
	if len(seen) < 900 || hi-lo < 5*time.Minute {
		t.Errorf("%d distinct instants spread over %s; imports issued together would refresh together", len(seen), hi-lo)
	}
	if lo < 45*time.Minute || hi > 51*time.Minute {
		t.Errorf("spread [%s, %s] outside [45m, 51m]", lo, hi)
	}
	// The same import's next token gets another offset: no import is always the last one.
	next := tokenState{issued: t0.Add(48 * time.Minute), expires: t0.Add(108 * time.Minute)}
	if refreshAt(st, "a").Sub(st.issued) == refreshAt(next, "a").Sub(next.issued) {
		t.Errorf("same offset for consecutive tokens")
	}
}

func TestRefreshReason(t *testing.T) {
	clk := clocktesting.NewFakeClock(t0)
	current := tokenState{issued: t0, expires: t0.Add(time.Hour), generation: 2}
	imp := func(annotation, acted string) *v1alpha1.ServiceAccountImport {
		i := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{UID: "u", Generation: 2}}
		if annotation != "" {
			i.Annotations = map[string]string{v1alpha1.RefreshRequestedAnnotation: annotation}
		}
		i.Status.LastRefreshRequest = acted
		return i
	}
	failed := func(i *v1alpha1.ServiceAccountImport, generation int64) *v1alpha1.ServiceAccountImport {
		i.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonForbidden, ObservedGeneration: generation}}
		return i
	}
	due := refreshAt(current, "u")
	tests := []struct {
		name     string
		imp      *v1alpha1.ServiceAccountImport
		st       tokenState
		hasState bool
		advance  time.Duration
		want     string
	}{
		{"no token yet", imp("", ""), tokenState{}, false, 0, refreshNoSecret},
		{"spec changed", imp("", ""), tokenState{issued: t0, expires: t0.Add(time.Hour), generation: 1}, true, 0, refreshSpecChanged},
		{"current", imp("", ""), current, true, 10 * time.Minute, ""},
		{"just before schedule", imp("", ""), current, true, due.Sub(t0) - time.Second, ""},
		{"at schedule", imp("", ""), current, true, due.Sub(t0), refreshScheduled},
		{"forced", imp("2026-03-01T12:05:00Z", ""), current, true, time.Minute, refreshRequested},
		{"forced with a new value", imp("second", "first"), current, true, time.Minute, refreshRequested},
		{"forced request already acted upon", imp("first", "first"), current, true, time.Minute, ""},
		{"annotation removed", imp("", "first"), current, true, time.Minute, ""},
		{"last refresh failed", failed(imp("", ""), 2), current, true, time.Minute, refreshRetry},
		{"failure of an older spec", failed(imp("", ""), 1), current, true, time.Minute, ""},
		{"failed forced request acted upon is retried", failed(imp("first", "first"), 2), current, true, time.Minute, refreshRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.SetTime(t0.Add(tt.advance))
			if got := refreshReason(tt.imp, tt.st, tt.hasState, clk.Now()); got != tt.want {
				t.Errorf("refreshReason = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTokenState(t *testing.T) {
	st := tokenState{issued: t0, expires: t0.Add(time.Hour), generation: 3}
	s := &corev1.Secret{Data: map[string][]byte{v1alpha1.SecretKeyToken: []byte("t")}}
	st.annotate(s)
	got, ok := readTokenState(s)
	if !ok || !got.issued.Equal(st.issued) || !got.expires.Equal(st.expires) || got.generation != 3 {
		t.Fatalf("round trip: %+v, %v; want %+v", got, ok, st)
	}
	tests := []struct {
		name   string
		modify func(*corev1.Secret)
	}{
		{"no secret", nil},
		{"no token", func(s *corev1.Secret) { delete(s.Data, v1alpha1.SecretKeyToken) }},
		{"written by bootstrap: no record", func(s *corev1.Secret) { s.Annotations = nil }},
		{"garbled expiry", func(s *corev1.Secret) { s.Annotations[v1alpha1.TokenExpiresAtAnnotation] = "soon" }},
		{"garbled generation", func(s *corev1.Secret) { s.Annotations[v1alpha1.ImportGenerationAnnotation] = "x" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var in *corev1.Secret
			if tt.modify != nil {
				in = s.DeepCopy()
				tt.modify(in)
			}
			if _, ok := readTokenState(in); ok {
				t.Errorf("state read from an incomplete record")
			}
		})
	}
}
