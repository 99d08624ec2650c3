package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestMalformedImport(t *testing.T) {
	tests := []struct {
		name    string
		changes map[string][]byte // nil value: file missing
		errHas  string
	}{
		{"no server", map[string][]byte{"server": nil}, `file "server" is missing: is the import Ready?`},
		{"no namespace", map[string][]byte{"namespace": nil}, `file "namespace" is missing`},
		{"no token", map[string][]byte{"token": nil}, `file "token" is missing`},
		{"no CA", map[string][]byte{"ca.crt": nil}, `file "ca.crt" is missing`},
		{"empty server", map[string][]byte{"server": []byte(" \n")}, `file "server" is empty`},
		{"plain http server", map[string][]byte{"server": []byte("http://b.example")}, "is not an https URL"},
		{"server not a URL", map[string][]byte{"server": []byte("b.example:6443")}, "is not an https URL"},
		{"server without host", map[string][]byte{"server": []byte("https:///api")}, "has no host"},
		{"server with credentials", map[string][]byte{"server": []byte("https://u:p@b.example")}, "scheme, host, port and path only"},
		{"server with query", map[string][]byte{"server": []byte("https://b.example/?x=1")}, "scheme, host, port and path only"},
		{"invalid namespace", map[string][]byte{"namespace": []byte("Not_A_Namespace")}, `"Not_A_Namespace" is not a namespace name`},
		{"empty token", map[string][]byte{"token": []byte("\n")}, "empty token"},
		{"token with a space", map[string][]byte{"token": []byte("abc def")}, "cannot be in a bearer token"},
		{"token with a control character", map[string][]byte{"token": []byte("abc\x00def")}, "cannot be in a bearer token"},
		{"CA not PEM", map[string][]byte{"ca.crt": []byte("not a certificate")}, "not a PEM certificate bundle"},
		{"CA PEM but not a certificate", map[string][]byte{"ca.crt": []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")}, "not a PEM certificate bundle"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			fixture{t: t, e: e, ca: testCA(t)}.brokenImport(tt.changes)
			_, _, err := NamedServiceAccountImportConfigAndNamespace("broken")
			if err == nil {
				t.Fatal("no error")
			}
			for _, s := range []string{tt.errHas, `service account import "broken"`, filepath.Join(e.root, "broken")} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestInCluster(t *testing.T) {
	tests := []struct {
		name         string
		host, port   string
		podNamespace string
		files        map[string]string // "" content: file absent
		wantHost     string
		wantNS       string
		errHas       string
	}{
		{name: "namespace file", host: "10.96.0.1", port: "443",
			files:    map[string]string{"token": "t", "ca.crt": "CA", "namespace": "team-a"},
			wantHost: "https://10.96.0.1:443", wantNS: "team-a"},
		{name: "POD_NAMESPACE wins", host: "10.96.0.1", port: "443", podNamespace: "from-env",
			files:    map[string]string{"token": "t", "ca.crt": "CA", "namespace": "team-a"},
			wantHost: "https://10.96.0.1:443", wantNS: "from-env"},
		{name: "no namespace file: default", host: "10.96.0.1", port: "6443",
			files:    map[string]string{"token": "t", "ca.crt": "CA"},
			wantHost: "https://10.96.0.1:6443", wantNS: "default"},
		{name: "IPv6 service host", host: "fd00::1", port: "443",
			files:    map[string]string{"token": "t", "ca.crt": "CA"},
			wantHost: "https://[fd00::1]:443", wantNS: "default"},
		{name: "no token file", host: "10.96.0.1", port: "443",
			files:  map[string]string{"ca.crt": "CA"},
			errHas: "pod's service account"},
		{name: "empty token", host: "10.96.0.1", port: "443",
			files:  map[string]string{"token": " ", "ca.crt": "CA"},
			errHas: "empty token"},
		{name: "CA not PEM", host: "10.96.0.1", port: "443",
			files:  map[string]string{"token": "t", "ca.crt": "junk"},
			errHas: "not a PEM certificate bundle"},
		{name: "port unset: not in a pod", host: "10.96.0.1",
			files:  map[string]string{"token": "t", "ca.crt": "CA"},
			errHas: "this is not a pod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			ca := testCA(t)
			t.Setenv("KUBERNETES_SERVICE_HOST", tt.host)
			t.Setenv("KUBERNETES_SERVICE_PORT", tt.port)
			t.Setenv("POD_NAMESPACE", tt.podNamespace)
			files := map[string][]byte{}
			for k, v := range tt.files {
				if v == "CA" {
					files[k] = ca
				} else {
					files[k] = []byte(v)
				}
			}
			writeAtomic(t, e.saDir, files)
			cfg, ns, err := ConfigAndNamespace()
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error %v, want one containing %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tt.wantHost || ns != tt.wantNS {
				t.Errorf("got %q %q, want %q %q", cfg.Host, ns, tt.wantHost, tt.wantNS)
			}
			checkFileConfig(t, cfg, filepath.Join(e.saDir, "token"), filepath.Join(e.saDir, "ca.crt"))
		})
	}
}
