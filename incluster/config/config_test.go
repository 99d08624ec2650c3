package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/kubectl-mcsa/kubectl-mcsa/incluster/api/v1alpha1"
)

// A mount root with two imports, cluster2 and cluster3; a kubeconfig whose contexts are alpha
// (current), cluster2 (sharing an import's name) and gke_p_z_c (not a valid import name); a
// pod's service account.
const (
	importServer2 = "https://cluster2.example:6443"
	importServer3 = "https://cluster3.example"
	alphaServer   = "https://alpha.example"
	ctx2Server    = "https://context-cluster2.example"
	gkeServer     = "https://gke.example"
)

type fixture struct {
	t  *testing.T
	e  testEnv
	ca []byte
}

func (f fixture) importDir(name string, files map[string][]byte) {
	writeAtomic(f.t, filepath.Join(f.e.root, name), files)
}

func (f fixture) oneImport() {
	f.importDir("cluster2", importFiles(f.ca, importServer2, "remote2", "token2"))
}

func (f fixture) twoImports() {
	f.oneImport()
	f.importDir("cluster3", importFiles(f.ca, importServer3+"\n", "remote3\n", "token3\n"))
}

func (f fixture) kubeconfig() {
	writeKubeconfig(f.t, f.e.kubeconfig, "alpha", map[string]string{
		"alpha": alphaServer, "cluster2": ctx2Server, "gke_p_z_c": gkeServer,
	})
}

func (f fixture) inCluster() {
	f.t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	f.t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	writeAtomic(f.t, f.e.saDir, map[string][]byte{
		"token": []byte("pod-token"), "ca.crt": f.ca, "namespace": []byte("pod-ns"),
	})
}

// brokenImport mounts an import named "broken" whose files are valid except for changes
// (nil removes a file).
func (f fixture) brokenImport(changes map[string][]byte) {
	files := importFiles(f.ca, importServer2, "remote", "token")
	for k, v := range changes {
		if v == nil {
			delete(files, k)
		} else {
			files[k] = v
		}
	}
	f.importDir("broken", files)
}

func TestConfigAndNamespace(t *testing.T) {
	type call func(e testEnv) (*rest.Config, string, error)
	generic := func(testEnv) (*rest.Config, string, error) { return ConfigAndNamespace() }
	named := func(name string) call {
		return func(testEnv) (*rest.Config, string, error) { return NamedConfigAndNamespace(name) }
	}
	single := func(testEnv) (*rest.Config, string, error) { return ServiceAccountImportConfigAndNamespace() }
	namedImport := func(name string) call {
		return func(testEnv) (*rest.Config, string, error) { return NamedServiceAccountImportConfigAndNamespace(name) }
	}
	forContext := func(name string) call {
		return func(testEnv) (*rest.Config, string, error) { return ConfigAndNamespaceForContext(name) }
	}
	forKubeconfig := func(path func(testEnv) string, name string) call {
		return func(e testEnv) (*rest.Config, string, error) {
			return ConfigAndNamespaceForKubeconfigAndContext(path(e), name)
		}
	}
	theKubeconfig := func(e testEnv) string { return e.kubeconfig }
	missingKubeconfig := func(e testEnv) string { return filepath.Join(e.root, "no-such-kubeconfig") }

	tests := []struct {
		name   string
		setup  []func(fixture)
		call   call
		host   string
		ns     string
		token  string // BearerTokenFile relative to the mount root (import), or "sa" for the pod's
		errHas []string
	}{
		// Mounted imports come first.
		{name: "one import", setup: []func(fixture){fixture.oneImport, fixture.kubeconfig, fixture.inCluster},
			call: generic, host: importServer2, ns: "remote2", token: "cluster2/token"},
		{name: "several imports and no name: the documented error, no fallback", setup: []func(fixture){fixture.twoImports, fixture.kubeconfig},
			call: generic, errHas: []string{"several service account imports are mounted", "cluster2, cluster3", "pick one by name"}},
		{name: "named import among several", setup: []func(fixture){fixture.twoImports},
			call: named("cluster3"), host: importServer3, ns: "remote3", token: "cluster3/token"},
		{name: "import wins over an eponymous context", setup: []func(fixture){fixture.twoImports, fixture.kubeconfig},
			call: named("cluster2"), host: importServer2, ns: "remote2", token: "cluster2/token"},
		{name: "named context when no such import", setup: []func(fixture){fixture.twoImports, fixture.kubeconfig},
			call: named("alpha"), host: alphaServer, ns: "ns-alpha"},
		{name: "context whose name cannot be an import's", setup: []func(fixture){fixture.oneImport, fixture.kubeconfig},
			call: named("gke_p_z_c"), host: gkeServer, ns: "ns-gke_p_z_c"},
		{name: "name neither an import nor a context", setup: []func(fixture){fixture.twoImports, fixture.kubeconfig},
			call: named("missing"), errHas: []string{`no service account import "missing" is mounted`, `no kubeconfig context "missing"`, "alpha cluster2 gke_p_z_c"}},
		{name: "broken import is an error, not a fallback to its context", setup: []func(fixture){func(f fixture) { f.brokenImport(map[string][]byte{"server": nil}) }, fixture.kubeconfig},
			call: named("broken"), errHas: []string{`service account import "broken"`, `file "server" is missing`}},

		// Then kubeconfig contexts.
		{name: "no import: current context", setup: []func(fixture){fixture.kubeconfig, fixture.inCluster},
			call: generic, host: alphaServer, ns: "ns-alpha"},
		{name: "context by name ignores imports", setup: []func(fixture){fixture.twoImports, fixture.kubeconfig},
			call: forContext("cluster2"), host: ctx2Server, ns: "ns-cluster2"},
		{name: "explicit kubeconfig and context", setup: []func(fixture){fixture.kubeconfig},
			call: forKubeconfig(theKubeconfig, "gke_p_z_c"), host: gkeServer, ns: "ns-gke_p_z_c"},
		{name: "explicit kubeconfig, current context", setup: []func(fixture){fixture.kubeconfig},
			call: forKubeconfig(theKubeconfig, ""), host: alphaServer, ns: "ns-alpha"},
		{name: "explicit kubeconfig that does not exist: no in-cluster fallback", setup: []func(fixture){fixture.inCluster},
			call: forKubeconfig(missingKubeconfig, ""), errHas: []string{"loading kubeconfig", "no-such-kubeconfig"}},
		{name: "malformed kubeconfig", setup: []func(fixture){fixture.inCluster, func(f fixture) { writeFile(f.t, f.e.kubeconfig, "clusters: {{{") }},
			call: generic, errHas: []string{"loading kubeconfig", "error loading config file"}},
		{name: "current context that does not exist", setup: []func(fixture){func(f fixture) {
			writeKubeconfig(f.t, f.e.kubeconfig, "gone", map[string]string{"alpha": alphaServer})
		}}, call: generic, errHas: []string{`current kubeconfig context "gone" does not exist`, "kubectl config use-context"}},

		// Then the pod's own service account.
		{name: "no import, no kubeconfig: pod's service account", setup: []func(fixture){fixture.inCluster},
			call: generic, host: "https://10.96.0.1:443", ns: "pod-ns", token: "sa"},
		{name: "kubeconfig without current context: pod's service account", setup: []func(fixture){fixture.inCluster, func(f fixture) {
			writeKubeconfig(f.t, f.e.kubeconfig, "", map[string]string{"alpha": alphaServer})
		}}, call: forContext(""), host: "https://10.96.0.1:443", ns: "pod-ns", token: "sa"},
		{name: "named context never falls back to the pod's service account", setup: []func(fixture){fixture.inCluster},
			call: forContext("alpha"), errHas: []string{`no kubeconfig context "alpha"`}},
		{name: "nothing at all", call: generic,
			errHas: []string{"no service account import is mounted", "no kubeconfig context is current", "KUBERNETES_SERVICE_HOST", "set KUBECONFIG"}},

		// Import-only functions never fall back.
		{name: "import only: none mounted", setup: []func(fixture){fixture.kubeconfig, fixture.inCluster},
			call: single, errHas: []string{"no service account import is mounted", v1alpha1.ImportNameKey, MountRootEnv}},
		{name: "import only: several mounted", setup: []func(fixture){fixture.twoImports},
			call: single, errHas: []string{"several service account imports are mounted"}},
		{name: "import only: one mounted", setup: []func(fixture){fixture.oneImport},
			call: single, host: importServer2, ns: "remote2", token: "cluster2/token"},
		{name: "import only: by name", setup: []func(fixture){fixture.twoImports},
			call: namedImport("cluster3"), host: importServer3, ns: "remote3", token: "cluster3/token"},
		{name: "import only: name not mounted", setup: []func(fixture){fixture.twoImports, fixture.kubeconfig},
			call: namedImport("alpha"), errHas: []string{`service account import "alpha" is not mounted`, "annotation"}},
		{name: "import only: path traversal is not a name", setup: []func(fixture){fixture.twoImports},
			call: namedImport("../imports/cluster2"), errHas: []string{"is not mounted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			fx := fixture{t: t, e: e, ca: testCA(t)}
			for _, s := range tt.setup {
				s(fx)
			}
			cfg, ns, err := tt.call(e)
			if tt.errHas != nil {
				if err == nil {
					t.Fatalf("got config for %s, want an error", cfg.Host)
				}
				for _, s := range tt.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tt.host || ns != tt.ns {
				t.Errorf("got host %q namespace %q, want %q %q", cfg.Host, ns, tt.host, tt.ns)
			}
			switch {
			case tt.token == "sa":
				checkFileConfig(t, cfg, filepath.Join(e.saDir, "token"), filepath.Join(e.saDir, "ca.crt"))
			case tt.token != "":
				dir := filepath.Dir(filepath.Join(e.root, tt.token))
				checkFileConfig(t, cfg, filepath.Join(dir, "token"), filepath.Join(dir, "ca.crt"))
			default: // a kubeconfig context: client-go's own config
				if cfg.WrapTransport != nil || cfg.BearerToken == "" {
					t.Errorf("context config: WrapTransport set %v, BearerToken %q", cfg.WrapTransport != nil, cfg.BearerToken)
				}
			}
		})
	}
}

// checkFileConfig checks that cfg reads its credentials from the mounted files, not copies.
func checkFileConfig(t *testing.T, cfg *rest.Config, token, ca string) {
	t.Helper()
	if cfg.BearerTokenFile != token || cfg.BearerToken != "" {
		t.Errorf("BearerTokenFile %q BearerToken %q, want the file %q only", cfg.BearerTokenFile, cfg.BearerToken, token)
	}
	if cfg.CAFile != ca || len(cfg.CAData) > 0 {
		t.Errorf("CAFile %q with %d bytes of CAData, want the file %q only", cfg.CAFile, len(cfg.CAData), ca)
	}
	if cfg.WrapTransport == nil {
		t.Error("no WrapTransport: the token would be followed at client-go's pace only")
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
