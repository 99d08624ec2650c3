package config

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// FuzzNamedImport feeds the mounted-directory loader arbitrary file contents and names. A
// mount root holds one import, "fuzzed" (federated, with an `as` file, when federated is set),
// and a valid federated import sits beside the root, where no name may reach. Whatever the
// input, the loader must not panic, must only load "fuzzed", and what it returns must be what
// the files say, validated.
func FuzzNamedImport(f *testing.F) {
	ca := testCA(f)
	f.Add("fuzzed", "https://b.example:6443", "default", "eyJhbGciOi.x.y", ca, false, "")
	f.Add("", "https://b.example/prefix\n", "ns\n", "tok\n", ca, false, "")
	f.Add("../outside", "https://b.example", "ns", "tok", ca, false, "")
	f.Add("fuzzed/..", "http://b.example", "ns", "tok", ca, false, "")
	f.Add("..data", "https://u:p@b.example", "Bad_NS", "a b", []byte("junk"), false, "")
	f.Add("fuzzed", "https://[::1]:443", "a", "t\x00k", ca[:len(ca)/2], false, "")
	f.Add("fuzzed", "", "", "", []byte{}, false, "")
	f.Add("fuzzed", "https://%zz", "-ns", " \t", ca, false, "")
	f.Add("fuzzed", "https://b.example#frag", strings.Repeat("a", 64), "tok", ca, false, "")
	// Federated imports: `as`, the remote service account to impersonate.
	f.Add("fuzzed", "https://b.example", "ns", "tok", ca, true, "system:serviceaccount:ns:sa")
	f.Add("", "https://b.example", "ns", "tok", ca, true, " system:serviceaccount:team-b:pod.lister\n")
	f.Add("fuzzed", "https://b.example", "ns", "tok", ca, true, "")
	f.Add("fuzzed", "https://b.example", "ns", "tok", ca, true, "system:masters")
	f.Add("fuzzed", "https://b.example", "ns", "tok", ca, true, "system:serviceaccount:ns:sa:x")
	f.Add("fuzzed", "https://b.example", "ns", "tok", ca, true, "system:serviceaccount::sa")
	f.Add("fuzzed", "https://b.example", "ns", "tok", ca, true, "system:serviceaccount:ns:sa\r\nImpersonate-Group: system:masters")
	f.Add("fuzzed", "https://b.example", "ns", "tok", ca, true, "system:serviceaccount:Ns:s\x00a")
	f.Add("fuzzed", "https://b.example", "ns", "tok", ca, true, "system:serviceaccount:"+strings.Repeat("n", 64)+":"+strings.Repeat("s", 254))

	f.Fuzz(func(t *testing.T, name, server, namespace, token string, caPEM []byte, federated bool, as string) {
		base := t.TempDir()
		root := filepath.Join(base, "imports")
		writeAtomic(t, filepath.Join(base, "outside"), federatedFiles(ca, "https://outside.example", "outside", "outside", "system:serviceaccount:outside:outside"))
		files := importFiles(caPEM, server, namespace, token)
		if federated {
			files[v1alpha1.KeyAs] = []byte(as)
		}
		writeAtomic(t, filepath.Join(root, "fuzzed"), files)

		cfg, ns, err := namedImport(root, name)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			return
		}
		if name != "" && name != "fuzzed" {
			t.Fatalf("name %q loaded an import", name)
		}
		dir := filepath.Join(root, "fuzzed")
		if cfg.Host != strings.TrimSpace(server) {
			t.Errorf("host %q, file says %q", cfg.Host, server)
		}
		if u, err := url.Parse(cfg.Host); err != nil || u.Scheme != "https" || u.Hostname() == "" {
			t.Errorf("host %q is not an https URL", cfg.Host)
		}
		if ns != strings.TrimSpace(namespace) || len(validation.IsDNS1123Label(ns)) > 0 {
			t.Errorf("namespace %q, file says %q", ns, namespace)
		}
		if cfg.BearerTokenFile != filepath.Join(dir, "token") || cfg.CAFile != filepath.Join(dir, "ca.crt") {
			t.Errorf("files %q %q, want the mounted ones", cfg.BearerTokenFile, cfg.CAFile)
		}
		// A federated import impersonates the service account its `as` names, trimmed and
		// validated; a token import no one.
		wantAs := ""
		if federated {
			wantAs = strings.TrimSpace(as)
			asNS, asName, ok := v1alpha1.ParseServiceAccountUser(wantAs)
			if !ok || len(validation.IsDNS1123Label(asNS)) > 0 || len(validation.IsDNS1123Subdomain(asName)) > 0 {
				t.Errorf("loaded with `as` %q, not a valid service account", as)
			}
		}
		if want := (rest.ImpersonationConfig{UserName: wantAs}); !reflect.DeepEqual(cfg.Impersonate, want) {
			t.Errorf("Impersonate %+v, want %+v", cfg.Impersonate, want)
		}
		// Through client-go's chain (without TLS), the token sent is the file's, trimmed, the
		// user impersonated is `as`'s, and both are valid header values.
		var sent http.Header
		rt, err := rest.HTTPWrappersForConfig(cfg, roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			sent = r.Header.Clone()
			return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodGet, "https://b.example/api", nil)
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if want := []string{"Bearer " + strings.TrimSpace(token)}; !slices.Equal(sent.Values("Authorization"), want) {
			t.Errorf("sent Authorization %q, want %q", sent.Values("Authorization"), want)
		}
		var wantImpersonate []string
		if federated {
			wantImpersonate = []string{wantAs}
		}
		if got := sent.Values("Impersonate-User"); !slices.Equal(got, wantImpersonate) {
			t.Errorf("sent Impersonate-User %q, want %q", got, wantImpersonate)
		}
		for k, vs := range sent {
			if strings.HasPrefix(k, "Impersonate-") && k != "Impersonate-User" {
				t.Errorf("sent %s: %q", k, vs)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Errorf("header %s: %q would be refused or split", k, v)
				}
			}
		}
		if _, err := os.Stat(cfg.CAFile); err != nil {
			t.Error(err)
		}
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
