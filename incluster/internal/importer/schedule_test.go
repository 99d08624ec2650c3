package importer

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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

// TestTokenState: the schedule is read from the import's status alone, never from the secret.
func TestTokenState(t *testing.T) {
	st := tokenState{issued: t0, expires: t0.Add(time.Hour), generation: 3}
	recorded := func() *v1alpha1.ServiceAccountImport {
		imp := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
		st.record(&imp.Status)
		return imp
	}
	ready := func(status metav1.ConditionStatus, reason string, generation int64) []metav1.Condition {
		return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, ObservedGeneration: generation}}
	}
	tests := []struct {
		name      string
		modify    func(*v1alpha1.ServiceAccountImport)
		hasSecret bool
		want      *tokenState // nil: no state, the token is refreshed
	}{
		{"recorded", nil, true, &st},
		{"no secret", nil, false, nil},
		{"status lost", func(i *v1alpha1.ServiceAccountImport) { i.Status = v1alpha1.ServiceAccountImportStatus{} }, true, nil},
		{"no expiry", func(i *v1alpha1.ServiceAccountImport) { i.Status.ExpirationTimestamp = nil }, true, nil},
		{"no issue time", func(i *v1alpha1.ServiceAccountImport) { i.Status.LastRefreshTime = nil }, true, nil},
		{"no generation", func(i *v1alpha1.ServiceAccountImport) { i.Status.TokenGeneration = 0 }, true, nil},
		{"written by an earlier importer: Ready for its generation", func(i *v1alpha1.ServiceAccountImport) {
			i.Status.TokenGeneration = 0
			i.Status.Conditions = ready(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, 3)
		}, true, &st},
		{"written by an earlier importer: Ready for an older generation", func(i *v1alpha1.ServiceAccountImport) {
			i.Status.TokenGeneration = 0
			i.Status.Conditions = ready(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, 2)
		}, true, &tokenState{issued: t0, expires: t0.Add(time.Hour), generation: 2}},
		{"written by an earlier importer: failing", func(i *v1alpha1.ServiceAccountImport) {
			i.Status.TokenGeneration = 0
			i.Status.Conditions = ready(metav1.ConditionFalse, v1alpha1.ReasonClusterUnreachable, 3)
		}, true, nil},
		{"the recorded generation wins over the condition's", func(i *v1alpha1.ServiceAccountImport) {
			i.Status.Conditions = ready(metav1.ConditionTrue, v1alpha1.ReasonTokenIssued, 5)
		}, true, &st},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			imp := recorded()
			if tt.modify != nil {
				tt.modify(imp)
			}
			got, ok := readTokenState(imp, tt.hasSecret)
			switch {
			case tt.want == nil && ok:
				t.Errorf("state %+v read from an incomplete record", got)
			case tt.want != nil && !ok:
				t.Errorf("no state, want %+v", *tt.want)
			case tt.want != nil && (!got.issued.Equal(tt.want.issued) || !got.expires.Equal(tt.want.expires) || got.generation != tt.want.generation):
				t.Errorf("state %+v, want %+v", got, *tt.want)
			}
		})
	}
}

// TestScheduleSurvivesStatus: the schedule read back from the status as the API server stores it
// (JSON, seconds) is the one computed when the token was issued, so that a restarted importer
// refreshes at the same instant.
func TestScheduleSurvivesStatus(t *testing.T) {
	for i := range 50 {
		issued := t0.Add(time.Duration(i) * 7 * time.Second)
		st := tokenState{issued: issued, expires: issued.Add(time.Duration(600+i*60) * time.Second), generation: int64(i + 1)}
		imp := &v1alpha1.ServiceAccountImport{ObjectMeta: metav1.ObjectMeta{UID: types.UID(fmt.Sprintf("uid-%d", i)), Generation: int64(i + 1)}}
		st.record(&imp.Status)
		b, err := json.Marshal(imp)
		if err != nil {
			t.Fatal(err)
		}
		stored := &v1alpha1.ServiceAccountImport{}
		if err := json.Unmarshal(b, stored); err != nil {
			t.Fatal(err)
		}
		got, ok := readTokenState(stored, true)
		if !ok {
			t.Fatalf("no state read back from %s", b)
		}
		if before, after := refreshAt(st, string(imp.UID)), refreshAt(got, string(stored.UID)); !before.Equal(after) {
			t.Fatalf("refresh at %s when issued, %s after a restart", before, after)
		}
		if reason := refreshReason(stored, got, true, issued.Add(time.Minute)); reason != "" {
			t.Fatalf("refresh (%s) right after a restart", reason)
		}
	}
}
