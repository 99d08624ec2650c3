package grant

import (
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

func TestAllowed(t *testing.T) {
	tests := []struct {
		name        string
		annotations map[string]string
		cluster, ns string
		want        bool
		wantErr     bool
	}{
		{name: "no annotation: unrestricted", annotations: nil, cluster: "a", ns: "x", want: true},
		{name: "listed namespace", annotations: ann("a/x,a/y,c/*"), cluster: "a", ns: "y", want: true},
		{name: "unlisted namespace", annotations: ann("a/x,a/y,c/*"), cluster: "a", ns: "z", want: false},
		{name: "any namespace of c", annotations: ann("a/x,a/y,c/*"), cluster: "c", ns: "z", want: true},
		{name: "a cluster it does not name is left to RBAC", annotations: ann("a/x,a/y,c/*"), cluster: "d", ns: "x", want: true},
		{name: "narrowing one cluster does not lock out another", annotations: ann("a/x"), cluster: "ax", ns: "x", want: true},
		{name: "the named cluster is narrowed", annotations: ann("a/x"), cluster: "a", ns: "ax", want: false},
		{name: "spaces and empty entries", annotations: ann(" a/x , ,a/y,"), cluster: "a", ns: "y", want: true},
		{name: "empty value restricts nobody", annotations: ann(""), cluster: "a", ns: "x", want: true},
		{name: "missing namespace", annotations: ann("a"), cluster: "a", ns: "x", wantErr: true},
		{name: "invalid cluster", annotations: ann("A_1/x"), cluster: "a", ns: "x", wantErr: true},
		{name: "wildcard cluster is not a thing", annotations: ann("*/x"), cluster: "a", ns: "x", wantErr: true},
		{name: "invalid namespace", annotations: ann("a/x/y"), cluster: "a", ns: "x", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Allowed(tt.annotations, tt.cluster, tt.ns)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Allowed = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAllowedImportersString(t *testing.T) {
	tests := []struct {
		name string
		in   string
		add  []string
		want string
	}{
		{name: "canonical order, duplicates dropped", in: "c/*,a/y,a/x,a/y", want: "a/x,a/y,c/*"},
		{name: "with more namespaces", in: "a/x", add: []string{"z", "x"}, want: "a/x,a/z"},
		{name: "from nothing", in: "", add: []string{"x"}, want: "a/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list, err := ParseAllowedImporters(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := list.With("a", tt.add...).String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func ann(v string) map[string]string {
	return map[string]string{v1alpha1.AllowedImportersAnnotation: v}
}

// FuzzParseAllowedImporters: the annotation is written by whoever may edit a service account of
// B and read by the importer on every import, so no value may crash the parser, and a value it
// accepts must mean the same once rewritten in canonical form (the plugin rewrites it on allow
// and disallow): parsing String() gives the same list, and String() is then stable.
func FuzzParseAllowedImporters(f *testing.F) {
	for _, seed := range []string{
		"", ",", " , ", "a/x", "a/x,a/y,c/*", " a/x , ,a/y,", "c/*,a/y,a/x,a/y",
		"a", "a/", "/x", "*/x", "a/x/y", "A_1/x", "a/X", "a/*x", "a/**",
		"a/x,\u00a0b/y\u2003", "a/x\x00", "a/\x1b[31mx", strings.Repeat("a/x,", 100),
		strings.Repeat("a", 64) + "/x", "a/" + strings.Repeat("x", 63),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := ParseAllowedImporters(s)
		if err != nil {
			if list != nil {
				t.Fatalf("ParseAllowedImporters(%q) returned %v with error %v", s, list, err)
			}
			return
		}
		canonical := list.String()
		again, err := ParseAllowedImporters(canonical)
		if err != nil {
			t.Fatalf("ParseAllowedImporters(%q) accepted, but its String() %q is refused: %v", s, canonical, err)
		}
		if !slices.Equal(again, list) {
			t.Fatalf("round trip of %q: %v, then %v", s, list, again)
		}
		if again.String() != canonical {
			t.Fatalf("String() is not stable: %q, then %q", canonical, again.String())
		}
		if strings.ContainsFunc(canonical, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			t.Fatalf("canonical form %q of %q has spaces or control characters", canonical, s)
		}
	})
}
