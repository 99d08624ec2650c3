package v1alpha1

import (
	"math/rand/v2"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestSecretName(t *testing.T) {
	long := strings.Repeat("a", 253)
	tests := []struct {
		name, importName, want string
	}{
		{"short keeps readable form", "cluster2-default-pod-lister", "cluster2-default-pod-lister-token"},
		{"dots kept", "a.b.c", "a.b.c-token"},
		{"longest readable", strings.Repeat("a", 246), strings.Repeat("a", 246) + "-token"},
		{"too long is hashed", long, strings.Repeat("a", 236) + "-" + hash(long) + "-token"},
		{"trailing dot after truncation padded", strings.Repeat("a", 235) + ".b" + strings.Repeat("c", 16),
			strings.Repeat("a", 235) + "x-" + hash(strings.Repeat("a", 235)+".b"+strings.Repeat("c", 16)) + "-token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SecretName(tt.importName)
			if got != tt.want {
				t.Errorf("SecretName(%q) = %q, want %q", tt.importName, got, tt.want)
			}
			if errs := validation.IsDNS1123Subdomain(got); len(errs) > 0 {
				t.Errorf("SecretName(%q) = %q is not a valid object name: %v", tt.importName, got, errs)
			}
		})
	}
}

func TestVolumeName(t *testing.T) {
	tests := []struct {
		name, importName, want string
	}{
		{"short keeps readable form", "cluster2-default-pod-lister", "mcsa-cluster2-default-pod-lister"},
		{"longest readable", strings.Repeat("a", 58), "mcsa-" + strings.Repeat("a", 58)},
		{"too long is hashed", strings.Repeat("a", 59), "mcsah-" + strings.Repeat("a", 46) + "-" + hash(strings.Repeat("a", 59))},
		{"dots are hashed", "a.b", "mcsah-a-b-" + hash("a.b")},
		{"dash-dot collision avoided", "a-b", "mcsa-a-b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := VolumeName(tt.importName)
			if got != tt.want {
				t.Errorf("VolumeName(%q) = %q, want %q", tt.importName, got, tt.want)
			}
			if errs := validation.IsDNS1123Label(got); len(errs) > 0 {
				t.Errorf("VolumeName(%q) = %q is not a DNS label: %v", tt.importName, got, errs)
			}
		})
	}
}

// TestNamesValidAndDistinct checks, over many random valid import names of every length, that
// derived names are always valid and never shared by two imports.
func TestNamesValidAndDistinct(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	secrets, volumes := map[string]string{}, map[string]string{}
	for i := 0; i < 20000; i++ {
		n := randomSubdomain(r)
		if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 {
			t.Fatalf("generator made invalid name %q: %v", n, errs)
		}
		s, v := SecretName(n), VolumeName(n)
		if errs := validation.IsDNS1123Subdomain(s); len(errs) > 0 {
			t.Fatalf("SecretName(%q) = %q invalid: %v", n, s, errs)
		}
		if errs := validation.IsDNS1123Label(v); len(errs) > 0 {
			t.Fatalf("VolumeName(%q) = %q invalid: %v", n, v, errs)
		}
		if prev, ok := secrets[s]; ok && prev != n {
			t.Fatalf("SecretName collision: %q and %q → %q", prev, n, s)
		}
		if prev, ok := volumes[v]; ok && prev != n {
			t.Fatalf("VolumeName collision: %q and %q → %q", prev, n, v)
		}
		secrets[s], volumes[v] = n, n
	}
}

// randomSubdomain makes a valid DNS-1123 subdomain of a random length up to 253, over a small
// alphabet so that near-collisions (a.b vs a-b, long shared prefixes) are frequent.
func randomSubdomain(r *rand.Rand) string {
	length := 1 + r.IntN(253)
	if r.IntN(2) == 0 {
		length = 1 + r.IntN(70)
	}
	var b strings.Builder
	for b.Len() < length {
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		label := 1 + r.IntN(min(63, length))
		for j := 0; j < label; j++ {
			c := "ab-"[r.IntN(3)]
			if c == '-' && (j == 0 || j == label-1) {
				c = 'a'
			}
			b.WriteByte(c)
		}
	}
	s := b.String()
	if len(s) > length {
		s = strings.TrimRight(s[:length], ".-")
	}
	if s == "" {
		return "a"
	}
	return s
}

func TestSecretLabelValue(t *testing.T) {
	long := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	tests := []struct {
		name, in string
		want     string // "" when hashed
	}{
		{"short name kept", "cluster2-default-pod-lister", "cluster2-default-pod-lister"},
		{"63 characters kept", strings.Repeat("x", 63), strings.Repeat("x", 63)},
		{"64 characters hashed", strings.Repeat("x", 64), ""},
		{"253 characters with dots hashed", long, ""},
		{"cut before a dot", strings.Repeat("a", 51) + "." + strings.Repeat("b", 20), ""},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SecretLabelValue(tt.in)
			if errs := validation.IsValidLabelValue(got); len(errs) > 0 {
				t.Fatalf("SecretLabelValue = %q: %v", got, errs)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("SecretLabelValue = %q, want %q", got, tt.want)
			}
			if seen[got] {
				t.Errorf("SecretLabelValue %q for two names", got)
			}
			seen[got] = true
		})
	}
}
