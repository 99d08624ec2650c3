package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
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

		// A federated import's `as`: a service account of the remote cluster, nothing else.
		{"as empty", map[string][]byte{"as": {}}, `file "as" is empty`},
		{"as white space only", map[string][]byte{"as": []byte(" \n\t")}, `file "as" is empty`},
		{"as system:masters", map[string][]byte{"as": []byte("system:masters")}, notSA},
		{"as a plain user", map[string][]byte{"as": []byte("alice")}, notSA},
		{"as a group of service accounts", map[string][]byte{"as": []byte("system:serviceaccounts:ns")}, notSA},
		{"as upper-case prefix", map[string][]byte{"as": []byte("SYSTEM:SERVICEACCOUNT:ns:sa")}, notSA},
		{"as without name", map[string][]byte{"as": []byte("system:serviceaccount:ns")}, notSA},
		{"as with empty name", map[string][]byte{"as": []byte("system:serviceaccount:ns:")}, notSA},
		{"as with empty namespace", map[string][]byte{"as": []byte("system:serviceaccount::sa")}, notSA},
		{"as with an extra colon", map[string][]byte{"as": []byte("system:serviceaccount:ns:sa:x")}, notSA},
		{"as with a trailing colon", map[string][]byte{"as": []byte("system:serviceaccount:ns:sa:")}, notSA},
		{"as invalid namespace", map[string][]byte{"as": []byte("system:serviceaccount:Bad_NS:sa")}, "namespace: a lowercase RFC 1123 label"},
		{"as namespace with a dot", map[string][]byte{"as": []byte("system:serviceaccount:a.b:sa")}, "namespace: must not contain dots"},
		{"as namespace too long", map[string][]byte{"as": []byte("system:serviceaccount:" + strings.Repeat("n", 64) + ":sa")}, "namespace: must be no more than 63"},
		{"as invalid name", map[string][]byte{"as": []byte("system:serviceaccount:ns:Bad_Name")}, "name: a lowercase RFC 1123 subdomain"},
		{"as name too long", map[string][]byte{"as": []byte("system:serviceaccount:ns:" + strings.Repeat("s", 254))}, "name: must be no more than 253"},
		{"as with inner white space", map[string][]byte{"as": []byte("system:serviceaccount:ns:s a")}, "name: a lowercase RFC 1123 subdomain"},
		{"as with a second line", map[string][]byte{"as": []byte("system:serviceaccount:ns:sa\nother\n")}, "name: a lowercase RFC 1123 subdomain"},
		{"as with a second user", map[string][]byte{"as": []byte("system:serviceaccount:ns:sa\nsystem:masters\n")}, notSA},
		{"as with a header injection", map[string][]byte{"as": []byte("system:serviceaccount:ns:sa\r\nImpersonate-Group: system:masters")}, notSA},
		{"as with a NUL byte", map[string][]byte{"as": []byte("system:serviceaccount:ns:sa\x00")}, "name: a lowercase RFC 1123 subdomain"},
		{"as not UTF-8", map[string][]byte{"as": []byte("system:serviceaccount:ns:s\xffa")}, "name: a lowercase RFC 1123 subdomain"},
		{"as long and invalid: cut short in the error", map[string][]byte{"as": []byte("system:masters" + strings.Repeat("x", 500))}, `xxx"… (514 bytes) is not system:serviceaccount`},
		{"as larger than a secret", map[string][]byte{"as": []byte("system:serviceaccount:ns:" + strings.Repeat("s", maxFileSize))}, "larger than a secret can be"},
		{"as valid, token broken", map[string][]byte{"as": []byte("system:serviceaccount:ns:sa"), "token": nil}, `file "token" is missing`},
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

// notSA is the error about an `as` that is not a service account's user name, with its fix.
const notSA = `is not system:serviceaccount:<namespace>:<name> (it is not a service account's user name): a federated import only acts as a service account of the remote cluster; the importer writes this file in ConfigMap broken-federated of the pod's namespace`

func TestFederatedImport(t *testing.T) {
	const server, ns, token = "https://b.example:6443", "remote", "pod-token"
	longest := v1alpha1.ServiceAccountUser(strings.Repeat("n", 63), strings.Repeat("s", 253))
	tests := []struct {
		name   string
		as     []byte // nil: no `as` file (a token import)
		mount  func(t *testing.T, dir string)
		want   string // Impersonate.UserName
		errHas string
	}{
		{name: "token import: no as, no impersonation", want: ""},
		{name: "service account", as: []byte("system:serviceaccount:ns:sa"), want: "system:serviceaccount:ns:sa"},
		{name: "trailing newline trimmed", as: []byte("system:serviceaccount:ns:sa\n"), want: "system:serviceaccount:ns:sa"},
		{name: "surrounding white space trimmed", as: []byte(" \tsystem:serviceaccount:ns:sa \r\n"), want: "system:serviceaccount:ns:sa"},
		{name: "dotted name", as: []byte("system:serviceaccount:team-b:pod.lister"), want: "system:serviceaccount:team-b:pod.lister"},
		{name: "longest namespace and name", as: []byte(longest), want: longest},
		{name: "as a link to nothing is broken, not a token import", mount: func(t *testing.T, dir string) {
			if err := os.Symlink(filepath.Join("..data", "as"), filepath.Join(dir, "as")); err != nil {
				t.Fatal(err)
			}
		}, errHas: `file "as" is missing: is the import Ready?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			dir := filepath.Join(e.root, "b")
			files := importFiles(testCA(t), server, ns, token)
			if tt.as != nil {
				files[v1alpha1.KeyAs] = tt.as
			}
			writeAtomic(t, dir, files)
			if tt.mount != nil {
				tt.mount(t, dir)
			}

			// Every way of building an import's configuration reads `as` the same way.
			for call, get := range map[string]func() (*rest.Config, string, error){
				"NamedServiceAccountImportConfigAndNamespace": func() (*rest.Config, string, error) { return NamedServiceAccountImportConfigAndNamespace("b") },
				"ServiceAccountImportConfigAndNamespace":      ServiceAccountImportConfigAndNamespace,
				"NamedConfigAndNamespace":                     func() (*rest.Config, string, error) { return NamedConfigAndNamespace("b") },
				"ConfigAndNamespace":                          ConfigAndNamespace,
				"AllServiceAccountImportConfigsAndNamespaces": func() (*rest.Config, string, error) {
					all, err := AllServiceAccountImportConfigsAndNamespaces()
					return all["b"].Config, all["b"].Namespace, err
				},
				"AllNamedConfigsAndNamespaces": func() (*rest.Config, string, error) {
					all, err := AllNamedConfigsAndNamespaces()
					return all["b"].Config, all["b"].Namespace, err
				},
			} {
				cfg, gotNS, err := get()
				if tt.errHas != "" {
					if err == nil || !strings.Contains(err.Error(), tt.errHas) {
						t.Errorf("%s: error %v, want one containing %q", call, err, tt.errHas)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", call, err)
				}
				if cfg.Host != server || gotNS != ns {
					t.Errorf("%s: host %q namespace %q, want %q %q", call, cfg.Host, gotNS, server, ns)
				}
				checkFileConfig(t, cfg, filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt"))
				want := rest.ImpersonationConfig{UserName: tt.want}
				if !reflect.DeepEqual(cfg.Impersonate, want) {
					t.Errorf("%s: Impersonate %+v, want %+v", call, cfg.Impersonate, want)
				}
				// Copies keep the impersonation, and the token file's round tripper.
				cp := rest.CopyConfig(cfg)
				if !reflect.DeepEqual(cp.Impersonate, want) || cp.WrapTransport == nil || cp.BearerTokenFile != cfg.BearerTokenFile {
					t.Errorf("%s: copy has Impersonate %+v, WrapTransport %v, BearerTokenFile %q", call, cp.Impersonate, cp.WrapTransport != nil, cp.BearerTokenFile)
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
