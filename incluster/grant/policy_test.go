package grant

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		p       Policy
		wantErr string
	}{
		{name: "default", p: DefaultPolicy()},
		{name: "credential", p: CredentialPolicy()},
		{name: "shortest", p: Policy{MaxLifetime: 10 * time.Minute}},
		{name: "longest, with audiences", p: Policy{MaxLifetime: 24 * time.Hour, Audiences: []string{"vault", "https://sts.example"}}},
		{name: "too short", p: Policy{MaxLifetime: 9 * time.Minute}, wantErr: "from 10m0s to 24h0m0s"},
		{name: "too long", p: Policy{MaxLifetime: 25 * time.Hour}, wantErr: "from 10m0s to 24h0m0s"},
		{name: "fractional seconds", p: Policy{MaxLifetime: time.Hour + time.Millisecond}, wantErr: "whole seconds"},
		{name: "empty audience", p: Policy{MaxLifetime: time.Hour, Audiences: []string{""}}, wantErr: "non-empty"},
		{name: "audience with a space", p: Policy{MaxLifetime: time.Hour, Audiences: []string{"a b"}}, wantErr: "without spaces"},
		{name: "audience with a comma", p: Policy{MaxLifetime: time.Hour, Audiences: []string{"a,b"}}, wantErr: "without spaces or commas"},
		{name: "too many audiences", p: Policy{MaxLifetime: time.Hour, Audiences: strings.Split(strings.Repeat("a,", 16)+"a", ",")}, wantErr: "at most 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestPolicyRoundTrip: what allow writes, the importer reads back, for any pair, a truncated
// anchor name included.
func TestPolicyRoundTrip(t *testing.T) {
	long := strings.Repeat("s", 253)
	for _, tc := range []struct {
		cluster, sa string
		p           Policy
	}{
		{"cluster1", "reader", DefaultPolicy()},
		{"cluster1", "reader", Policy{MaxLifetime: 15 * time.Minute, Audiences: []string{"vault", "b", "vault"}}},
		{strings.Repeat("c", 63), long, CredentialPolicy()},
	} {
		data := map[string]string{PolicyKey(tc.cluster, tc.sa): PolicyValue(tc.cluster, tc.sa, tc.p)}
		got, err := LookupPolicy(data, tc.cluster, tc.sa)
		if err != nil {
			t.Fatalf("%s/%s: %v", tc.cluster, tc.sa, err)
		}
		want := slices.Compact(slices.Sorted(slices.Values(tc.p.Audiences)))
		if got.MaxLifetime != tc.p.MaxLifetime || !slices.Equal(got.Audiences, want) {
			t.Errorf("%s/%s: read %+v, want %+v", tc.cluster, tc.sa, got, tc.p)
		}
		if len(PolicyKey(tc.cluster, tc.sa)) > 253 {
			t.Errorf("key %q is not a valid ConfigMap key", PolicyKey(tc.cluster, tc.sa))
		}
	}
}

// TestLookupPolicyRefuses: an entry that is missing, names another pair (a copied line), or is
// malformed is no policy: the importer then mints nothing.
func TestLookupPolicyRefuses(t *testing.T) {
	key := PolicyKey("cluster1", "reader")
	tests := []struct {
		name    string
		data    map[string]string
		wantErr string
	}{
		{name: "missing", data: map[string]string{}, wantErr: "no token policy"},
		{name: "nil", wantErr: "no token policy"},
		{name: "another cluster's", data: map[string]string{key: "cluster9 reader 3600"}, wantErr: `is not "cluster1 reader MAXSECONDS [AUDIENCE...]"`},
		{name: "another service account's", data: map[string]string{key: "cluster1 writer 3600"}, wantErr: "is not"},
		{name: "no lifetime", data: map[string]string{key: "cluster1 reader"}, wantErr: "is not"},
		{name: "lifetime not a number", data: map[string]string{key: "cluster1 reader 1h"}, wantErr: "outside 1 to 86400 seconds"},
		{name: "lifetime too long", data: map[string]string{key: "cluster1 reader 1000000000"}, wantErr: "outside 1 to 86400 seconds"},
		{name: "negative lifetime", data: map[string]string{key: "cluster1 reader -5"}, wantErr: "outside"},
		{name: "double space", data: map[string]string{key: "cluster1  reader 3600"}, wantErr: "is not"},
		{name: "huge", data: map[string]string{key: "cluster1 reader 3600 " + strings.Repeat("a", 5000)}, wantErr: "longer than 4096 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LookupPolicy(tt.data, "cluster1", "reader")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LookupPolicy() = %v, want %q", err, tt.wantErr)
			}
			var pe *PolicyError
			if !errors.Is(err, ErrNoPolicy) && !errors.As(err, &pe) {
				t.Errorf("%v is neither ErrNoPolicy nor a PolicyError", err)
			}
		})
	}
}

func TestPoliciesPatch(t *testing.T) {
	got := string(PoliciesPatch(map[string]string{"a": "cluster1 a 600"}, []string{"b"}))
	if want := `{"data":{"a":"cluster1 a 600","b":null}}`; got != want {
		t.Errorf("patch %s, want %s", got, want)
	}
}

// TestTokenPolicyCarriesAudiences: B's own audiences, which admission sees in place of an empty
// list, are literal in the policy, quoted.
func TestTokenPolicyCarriesAudiences(t *testing.T) {
	p := TokenPolicy([]string{"https://kubernetes.default.svc", `we"ird`})
	for _, v := range p.Spec.Variables {
		if v.Name == "apiAudiences" {
			if want := `["https://kubernetes.default.svc", "we\"ird"]`; v.Expression != want {
				t.Errorf("apiAudiences = %s, want %s", v.Expression, want)
			}
			return
		}
	}
	t.Error("no apiAudiences variable")
}

// FuzzLookupPolicy: any entry (ConfigMap data is B's admin's, but bounded and checked) is read
// without panic, and what is accepted is a policy B could have written.
func FuzzLookupPolicy(f *testing.F) {
	f.Add("cluster1 reader 3600")
	f.Add("cluster1 reader 600 vault https://sts")
	f.Add("cluster1 reader 99999999999999999999")
	f.Add("cluster1 reader")
	f.Fuzz(func(t *testing.T, v string) {
		p, err := LookupPolicy(map[string]string{PolicyKey("cluster1", "reader"): v}, "cluster1", "reader")
		if err != nil {
			return
		}
		if p.MaxLifetime <= 0 || p.MaxLifetime > 24*time.Hour || len(v) > maxPolicyEntryLength {
			t.Errorf("accepted %q as %+v", v, p)
		}
	})
}
