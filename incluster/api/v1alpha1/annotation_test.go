package v1alpha1

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestParseImportNames(t *testing.T) {
	long := strings.Repeat("a", 249) + ".b.c" // 253 characters, dotted
	for _, tc := range []struct {
		name, value string
		want        []string
		wantErr     string
	}{
		{name: "empty", value: "", want: nil},
		{name: "only separators and spaces", value: " , ,, ", want: nil},
		{name: "one", value: "cluster2-default-pod-lister", want: []string{"cluster2-default-pod-lister"}},
		{name: "three, order kept", value: "c,a,b", want: []string{"c", "a", "b"}},
		{name: "spaces, duplicates and empty entries", value: " a , b,,a ,  b,c, ", want: []string{"a", "b", "c"}},
		{name: "longest legal name", value: long, want: []string{long}},
		{name: "another namespace", value: "a, other/x", wantErr: `"other/x"`},
		{name: "upper case", value: "Import", wantErr: `"Import"`},
		{name: "too long", value: strings.Repeat("a", 254), wantErr: "must be no more than 253"},
		{name: "as many as allowed", value: names(MaxImportsPerPod), want: strings.Split(names(MaxImportsPerPod), ",")},
		{name: "one too many", value: names(MaxImportsPerPod + 1), wantErr: "more than the 32 a pod may use"},
		{name: "duplicates do not count", value: names(MaxImportsPerPod) + ",i0,i1", want: strings.Split(names(MaxImportsPerPod), ",")},
		{name: "a thousand names", value: names(1000), wantErr: "more than the 32 a pod may use"},
		{name: "longer than any legal list", value: strings.Repeat(" ", MaxImportAnnotationLength) + "a", wantErr: "more than the 8160 allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseImportNames(tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "imports") {
					t.Fatalf("error = %v, want one naming %s and the rule", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") || len(got) != len(tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// names is "i0,i1,…" with n names.
func names(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("i%d", i)
	}
	return strings.Join(s, ",")
}

// FuzzParseImportNames: whatever a pod's author writes, the parser returns in bounds, only
// valid names, or an error.
func FuzzParseImportNames(f *testing.F) {
	for _, seed := range []string{"", "a", "a,b", " a , b,,a ", "other/x", names(33), strings.Repeat("a,", 5000)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		got, err := ParseImportNames(value)
		if err != nil {
			return
		}
		if len(got) > MaxImportsPerPod {
			t.Fatalf("%d names", len(got))
		}
		seen := map[string]bool{}
		for _, n := range got {
			if errs := validation.IsDNS1123Subdomain(n); len(errs) > 0 || seen[n] {
				t.Fatalf("name %q: %v (duplicate: %v)", n, errs, seen[n])
			}
			seen[n] = true
		}
	})
}
