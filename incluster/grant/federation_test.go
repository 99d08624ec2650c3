package grant

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// TestAuthenticatorKeyIDs: A's key IDs are in the user validation rule's message and nowhere
// else; the same key IDs, in any order, render the same bytes; other key IDs change the message
// alone; AuthenticatorKeyIDs reads them back.
func TestAuthenticatorKeyIDs(t *testing.T) {
	issuer := Issuer{URL: "https://cluster1.example", DiscoveryURL: "https://10.0.0.1:6443/.well-known/openid-configuration", CertificateAuthority: "PEM"}
	with := func(kids ...string) Issuer {
		i := issuer
		i.KeyIDs = kids
		return i
	}
	render := func(t *testing.T, i Issuer) (apiserverv1.JWTAuthenticator, string) {
		t.Helper()
		a := Authenticator("cluster1", "cluster2", i)
		b, err := yaml.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		return a, string(b)
	}
	_, none := render(t, issuer)
	for _, tt := range []struct {
		name    string
		kids    []string
		message string
		read    []string // AuthenticatorKeyIDs
		same    []string // key IDs that must render the same bytes
	}{
		{"no key IDs", nil, "federated users may not be system users", nil, []string{}},
		{"empty key IDs only", []string{"", ""}, "federated users may not be system users", nil, nil},
		{"one key", []string{"k1"}, "federated users may not be system users (cluster1's keys: k1)", []string{"k1"}, []string{"k1", "k1"}},
		{"sorted, without duplicates", []string{"zz-_9", "Ab-_1", "zz-_9"}, "federated users may not be system users (cluster1's keys: Ab-_1, zz-_9)",
			[]string{"Ab-_1", "zz-_9"}, []string{"Ab-_1", "zz-_9"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			input := slices.Clone(tt.kids)
			a, out := render(t, with(tt.kids...))
			if !slices.Equal(input, tt.kids) {
				t.Errorf("Authenticator changed its input: %v", tt.kids)
			}
			if got := a.UserValidationRules[0].Message; got != tt.message {
				t.Errorf("message %q, want %q", got, tt.message)
			}
			if got := AuthenticatorKeyIDs(a); !slices.Equal(got, tt.read) {
				t.Errorf("AuthenticatorKeyIDs %v, want %v", got, tt.read)
			}
			if tt.same != nil {
				if _, again := render(t, with(tt.same...)); again != out {
					t.Errorf("key IDs %v render\n%s\nnot\n%s", tt.same, again, out)
				}
			}
			// Nothing but the message differs from the entry without key IDs.
			if diff := lineDiff(none, out); len(tt.read) == 0 && len(diff) != 0 || len(tt.read) > 0 && (len(diff) != 1 || !strings.Contains(diff[0], "message: ")) {
				t.Errorf("differences from the entry without key IDs: %q", diff)
			}
		})
	}
	// New key IDs, another entry: B rebuilds its authenticator.
	a, _ := render(t, with("old"))
	b, _ := render(t, with("old", "new"))
	if reflect.DeepEqual(a, b) {
		t.Error("a new key renders the same entry")
	}
	// Entries not rendered with key IDs, or by hand.
	for _, m := range []string{"", "federated users may not be system users", "federated users may not be system users (cluster1's keys: )", "something else (cluster1's keys: k1)"} {
		if got := AuthenticatorKeyIDs(apiserverv1.JWTAuthenticator{UserValidationRules: []apiserverv1.UserValidationRule{{Message: m}}}); got != nil {
			t.Errorf("%q: key IDs %v", m, got)
		}
	}
}

// lineDiff are the lines of b that differ from a's, line by line.
func lineDiff(a, b string) []string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	var diff []string
	for i := range max(len(x), len(y)) {
		if i >= len(x) || i >= len(y) || x[i] != y[i] {
			diff = append(diff, y[min(i, len(y)-1)])
		}
	}
	return diff
}

// TestSetAuthenticator: an issuer's entry is replaced in place, others are kept; a discovery
// URL already another issuer's, or a 65th authenticator, is refused.
func TestSetAuthenticator(t *testing.T) {
	entry := func(name string, kids ...string) apiserverv1.JWTAuthenticator {
		return Authenticator(name, "b", Issuer{URL: "https://" + name, DiscoveryURL: "https://" + name + "/d", KeyIDs: kids})
	}
	for _, tt := range []struct {
		name    string
		initial []apiserverv1.JWTAuthenticator
		set     apiserverv1.JWTAuthenticator
		want    []apiserverv1.JWTAuthenticator
		err     string
	}{
		{"added", []apiserverv1.JWTAuthenticator{entry("a")}, entry("c"), []apiserverv1.JWTAuthenticator{entry("a"), entry("c")}, ""},
		{"new keys replace in place", []apiserverv1.JWTAuthenticator{entry("a", "k1"), entry("c")}, entry("a", "k1", "k2"),
			[]apiserverv1.JWTAuthenticator{entry("a", "k1", "k2"), entry("c")}, ""},
		{"discovery URL of another issuer", []apiserverv1.JWTAuthenticator{entry("a")}, func() apiserverv1.JWTAuthenticator {
			c := entry("c")
			c.Issuer.DiscoveryURL = ptr.To("https://a/d")
			return c
		}(), nil, "is already that of issuer https://a"},
		{"65th", func() []apiserverv1.JWTAuthenticator {
			var all []apiserverv1.JWTAuthenticator
			for i := range MaxJWTAuthenticators {
				all = append(all, entry(fmt.Sprintf("c%d", i)))
			}
			return all
		}(), entry("x"), nil, "already has 64 JWT authenticators"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &apiserverv1.AuthenticationConfiguration{JWT: slices.Clone(tt.initial)}
			err := SetAuthenticator(cfg, tt.set)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want %q", err, tt.err)
				}
				if !reflect.DeepEqual(cfg.JWT, tt.initial) {
					t.Error("a refusal changed the configuration")
				}
				return
			}
			if err != nil || !reflect.DeepEqual(cfg.JWT, tt.want) {
				t.Errorf("got %v, %+v", err, cfg.JWT)
			}
		})
	}
}
