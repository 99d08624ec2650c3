package config

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

// FuzzNamedImport feeds the mounted-directory loader arbitrary file contents and names. A
// mount root holds one import, "fuzzed", and a valid import sits beside the root, where no name
// may reach. Whatever the input, the loader must not panic, must only load "fuzzed", and what
// it returns must be what the files say, validated.
func FuzzNamedImport(f *testing.F) {
	ca := testCA(f)
	f.Add("fuzzed", "https://b.example:6443", "default", "eyJhbGciOi.x.y", ca)
	f.Add("", "https://b.example/prefix\n", "ns\n", "tok\n", ca)
	f.Add("../outside", "https://b.example", "ns", "tok", ca)
	f.Add("fuzzed/..", "http://b.example", "ns", "tok", ca)
	f.Add("..data", "https://u:p@b.example", "Bad_NS", "a b", []byte("junk"))
	f.Add("fuzzed", "https://[::1]:443", "a", "t\x00k", ca[:len(ca)/2])
	f.Add("fuzzed", "", "", "", []byte{})
	f.Add("fuzzed", "https://%zz", "-ns", " \t", ca)
	f.Add("fuzzed", "https://b.example#frag", strings.Repeat("a", 64), "tok", ca)

	f.Fuzz(func(t *testing.T, name, server, namespace, token string, caPEM []byte) {
		base := t.TempDir()
		root := filepath.Join(base, "imports")
		writeAtomic(t, filepath.Join(base, "outside"), importFiles(ca, "https://outside.example", "outside", "outside"))
		writeAtomic(t, filepath.Join(root, "fuzzed"), importFiles(caPEM, server, namespace, token))

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
		// The token sent is the file's, trimmed, and a valid header value.
		var sent string
		rt := cfg.WrapTransport(roundTripperFunc(func(r *http.Request) (*http.Response, error) {
			sent = r.Header.Get("Authorization")
			return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}, nil
		}))
		req, _ := http.NewRequest(http.MethodGet, "https://b.example/api", nil)
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if want := "Bearer " + strings.TrimSpace(token); sent != want {
			t.Errorf("sent %q, want %q", sent, want)
		}
		if strings.ContainsAny(sent, "\r\n\x00") {
			t.Errorf("header %q would be refused or split", sent)
		}
		if _, err := os.Stat(cfg.CAFile); err != nil {
			t.Error(err)
		}
	})
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
