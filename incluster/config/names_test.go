package config

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mountRootWithClutter mounts imports "a", "b" and, through a symlink, "linked", among
// entries that are not imports.
func mountRootWithClutter(t *testing.T, e testEnv, ca []byte) {
	t.Helper()
	for _, name := range []string{"b", "a"} {
		writeAtomic(t, filepath.Join(e.root, name), importFiles(ca, "https://"+name+".example", "ns-"+name, "token-"+name))
	}
	elsewhere := filepath.Join(filepath.Dir(e.root), "elsewhere")
	writeAtomic(t, elsewhere, importFiles(ca, "https://linked.example", "ns-linked", "token-linked"))
	for _, err := range []error{
		os.Symlink(elsewhere, filepath.Join(e.root, "linked")),
		os.Symlink(filepath.Join(e.root, "nowhere"), filepath.Join(e.root, "dangling")),
		os.WriteFile(filepath.Join(e.root, "file"), nil, 0o644),
		os.Mkdir(filepath.Join(e.root, ".hidden"), 0o755),
		os.Mkdir(filepath.Join(e.root, "..2026_01_01_00_00_00.1"), 0o755),
		os.Symlink("..2026_01_01_00_00_00.1", filepath.Join(e.root, "..data")),
		os.Mkdir(filepath.Join(e.root, "Not_An_Import"), 0o755),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestImportNames(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(*testing.T, testEnv, []byte)
		names      []string
		single     string
		singleErr  string
		mounted    []string
		notMounted []string
		listErr    string
	}{
		{name: "no mount root", setup: func(*testing.T, testEnv, []byte) {},
			names: []string{}, singleErr: "no service account import is mounted", notMounted: []string{"a", ""}},
		{name: "empty mount root", setup: func(t *testing.T, e testEnv, _ []byte) {
			if err := os.MkdirAll(e.root, 0o755); err != nil {
				t.Fatal(err)
			}
		},
			names: []string{}, singleErr: "no service account import is mounted"},
		{name: "one import", setup: func(t *testing.T, e testEnv, ca []byte) {
			writeAtomic(t, filepath.Join(e.root, "only"), importFiles(ca, "https://o.example", "ns", "tok"))
		}, names: []string{"only"}, single: "only", mounted: []string{"only"}, notMounted: []string{"..data", "only/token"}},
		{name: "imports among clutter", setup: mountRootWithClutter,
			names: []string{"a", "b", "linked"}, singleErr: "(a, b, linked)",
			mounted:    []string{"a", "b", "linked"},
			notMounted: []string{"", ".", "..", "../imports/a", "a/", "file", "dangling", ".hidden", "..data", "Not_An_Import", "missing"}},
		{name: "mount root is a file", setup: func(t *testing.T, e testEnv, _ []byte) { writeFile(t, e.root, "") },
			listErr: "listing service account imports"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			tt.setup(t, e, testCA(t))
			names, err := AllServiceAccountImportNames()
			if tt.listErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.listErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.listErr)
				}
				return
			}
			if err != nil || !slices.Equal(names, tt.names) || names == nil {
				t.Errorf("AllServiceAccountImportNames() = %#v, %v; want %#v", names, err, tt.names)
			}
			single, err := SingleServiceAccountImportName()
			if tt.singleErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.singleErr) {
					t.Errorf("SingleServiceAccountImportName() error %v, want one containing %q", err, tt.singleErr)
				}
			} else if err != nil || single != tt.single {
				t.Errorf("SingleServiceAccountImportName() = %q, %v; want %q", single, err, tt.single)
			}
			for _, name := range tt.mounted {
				if ok, err := ServiceAccountImportMounted(name); !ok || err != nil {
					t.Errorf("ServiceAccountImportMounted(%q) = %v, %v; want true", name, ok, err)
				}
			}
			for _, name := range tt.notMounted {
				if ok, err := ServiceAccountImportMounted(name); ok || err != nil {
					t.Errorf("ServiceAccountImportMounted(%q) = %v, %v; want false", name, ok, err)
				}
			}
		})
	}
}

func TestAllConfigs(t *testing.T) {
	tests := []struct {
		name       string
		setup      []func(fixture)
		imports    map[string]string // name → host
		all        map[string]string // name → host
		contexts   []string
		allErr     string
		importsErr string
	}{
		{name: "nothing", imports: map[string]string{}, all: map[string]string{}, contexts: []string{}},
		{name: "pod's service account is not named", setup: []func(fixture){fixture.inCluster},
			imports: map[string]string{}, all: map[string]string{}, contexts: []string{}},
		{name: "imports only", setup: []func(fixture){fixture.twoImports},
			imports:  map[string]string{"cluster2": importServer2, "cluster3": importServer3},
			all:      map[string]string{"cluster2": importServer2, "cluster3": importServer3},
			contexts: []string{}},
		{name: "imports and contexts: the import wins a shared name", setup: []func(fixture){fixture.twoImports, fixture.kubeconfig},
			imports:  map[string]string{"cluster2": importServer2, "cluster3": importServer3},
			all:      map[string]string{"cluster2": importServer2, "cluster3": importServer3, "alpha": alphaServer, "gke_p_z_c": gkeServer},
			contexts: []string{"alpha", "cluster2", "gke_p_z_c"}},
		{name: "one import broken", setup: []func(fixture){fixture.twoImports, func(f fixture) { f.brokenImport(map[string][]byte{"token": []byte("")}) }},
			importsErr: `service account import "broken"`, allErr: `service account import "broken"`, contexts: []string{}},
		{name: "malformed kubeconfig", setup: []func(fixture){fixture.oneImport, func(f fixture) { writeFile(f.t, f.e.kubeconfig, "contexts: 3") }},
			imports: map[string]string{"cluster2": importServer2}, allErr: "loading kubeconfig"},
	}
	hosts := func(m map[string]ConfigAndNamespaceTuple) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v.Config.Host
		}
		return out
	}
	check := func(t *testing.T, fn string, got map[string]ConfigAndNamespaceTuple, err error, want map[string]string, wantErr string) {
		t.Helper()
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Errorf("%s: error %v, want one containing %q", fn, err, wantErr)
			}
			return
		}
		if err != nil {
			t.Errorf("%s: %v", fn, err)
			return
		}
		if h := hosts(got); !maps.Equal(h, want) {
			t.Errorf("%s = %v, want %v", fn, h, want)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			fx := fixture{t: t, e: e, ca: testCA(t)}
			for _, s := range tt.setup {
				s(fx)
			}
			got, err := AllServiceAccountImportConfigsAndNamespaces()
			check(t, "AllServiceAccountImportConfigsAndNamespaces", got, err, tt.imports, tt.importsErr)
			got, err = AllNamedConfigsAndNamespaces()
			check(t, "AllNamedConfigsAndNamespaces", got, err, tt.all, tt.allErr)
			if tt.contexts != nil {
				ctxs, err := AllContextsForKubeconfig("")
				if err != nil || !slices.Equal(ctxs, tt.contexts) {
					t.Errorf("AllContextsForKubeconfig(\"\") = %v, %v; want %v", ctxs, err, tt.contexts)
				}
			}
		})
	}
}

func TestAllContextsForExplicitKubeconfig(t *testing.T) {
	e := newTestEnv(t)
	other := filepath.Join(t.TempDir(), "other")
	writeKubeconfig(t, other, "z", map[string]string{"z": "https://z.example", "y": "https://y.example"})
	if got, err := AllContextsForKubeconfig(other); err != nil || !slices.Equal(got, []string{"y", "z"}) {
		t.Errorf("AllContextsForKubeconfig(other) = %v, %v", got, err)
	}
	if _, err := AllContextsForKubeconfig(e.kubeconfig); err == nil || !strings.Contains(err.Error(), "loading kubeconfig") {
		t.Errorf("AllContextsForKubeconfig(missing file): error %v", err)
	}
}

func TestServiceAccountImportDir(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"", "/var/run/secrets/admiralty.io/serviceaccountimports/imp"},
		{"/tmp/mounts", "/tmp/mounts/imp"},
	} {
		t.Setenv(MountRootEnv, tc.env)
		if got := ServiceAccountImportDir("imp"); got != tc.want {
			t.Errorf("with %s=%q: %q, want %q", MountRootEnv, tc.env, got, tc.want)
		}
	}
}
