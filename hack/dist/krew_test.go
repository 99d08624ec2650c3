package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/kubectl-mcsa/kubectl-mcsa/hack/dist/image"
)

// releasePlatforms are the platforms a release covers (the tool's default).
var releasePlatforms = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64"}

const releaseURL = "https://github.com/kubectl-mcsa/kubectl-mcsa/releases/download"

// subcommands are some of the plugin's commands that completion must offer.
var subcommands = []string{"allow", "bootstrap", "import", "install", "version"}

// krewPlugin is the part of krew's manifest (sigs.k8s.io/krew/pkg/index.Plugin) checked here;
// krew's own types and validation run in the tool (krew.go) and in validate-krew-manifest.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			Sha256 string `json:"sha256"`
			Files  []struct {
				From string `json:"from"`
				To   string `json:"to"`
			} `json:"files"`
			Bin string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

func exe(goos, name string) string {
	if goos == "windows" {
		return name + ".exe"
	}
	return name
}

func archiveName(version, goos, arch string) string {
	ext := ".tar.gz"
	if goos == "windows" {
		ext = ".zip"
	}
	return fmt.Sprintf("kubectl-mcsa_%s_%s_%s%s", version, goos, arch, ext)
}

// TestKrew builds the release archive for this machine with this tool (stand-in archives for
// the other platforms), serves them on loopback, generates the krew manifest pointing there,
// validates it with krew's validate-krew-manifest (which installs every platform's archive
// with `kubectl krew`), installs it with `kubectl krew install` into a temporary KREW_ROOT and
// runs `kubectl mcsa` and its completion through kubectl. It also checks the committed
// krew-index/plugins/mcsa.yaml, whose checksums only a release build reproduces.
func TestKrew(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin and krew; runs without -short")
	}
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not on PATH: this test installs the plugin with `kubectl krew` and runs `kubectl mcsa`; install kubectl (1.26 or later) to run it")
	}
	host := runtime.GOOS + "/" + runtime.GOARCH
	if !slices.Contains(releasePlatforms, host) {
		t.Skipf("no release archive for this machine (%s): releases cover %v", host, releasePlatforms)
	}
	root := moduleRoot(t)
	const version = "v0.0.0-krewtest"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	began := time.Now()

	// This release tool, and krew as kubectl-krew so that `kubectl krew` finds it.
	tools := t.TempDir()
	run(ctx, t, nil, "go", "build", "-o", tools+string(filepath.Separator), ".", "tool")
	if err := os.Rename(filepath.Join(tools, exe(runtime.GOOS, "krew")), filepath.Join(tools, exe(runtime.GOOS, "kubectl-krew"))); err != nil {
		t.Fatal(err)
	}
	dist := filepath.Join(tools, exe(runtime.GOOS, "dist"))
	home := t.TempDir()
	// kubectl and krew see the tools and write only into temporary directories.
	path := tools + string(os.PathListSeparator) + os.Getenv("PATH")
	env := []string{"PATH=" + path, "HOME=" + home, "KUBECONFIG=" + filepath.Join(home, "kubeconfig")}

	archives := t.TempDir()
	run(ctx, t, nil, dist, "build", "-src", root, "-version", version, "-platforms", host, "-out", archives)
	// The other platforms' archives hold stand-ins, packed by the same tool, so that
	// validate-krew-manifest installs a manifest of every platform and archive format.
	for _, p := range releasePlatforms {
		if p == host {
			continue
		}
		goos, _, _ := strings.Cut(p, "/")
		bin := t.TempDir()
		for _, name := range []string{"kubectl-mcsa", "kubectl_complete-mcsa"} {
			if err := os.WriteFile(filepath.Join(bin, exe(goos, name)), []byte("stand-in for "+p+"\n"), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		run(ctx, t, nil, dist, "archive", "-version", version, "-platform", p, "-bin", bin, "-license", filepath.Join(root, "LICENSE"), "-out", archives)
	}
	t.Logf("archives built in %s", time.Since(began).Round(time.Millisecond))

	srv := httptest.NewServer(http.StripPrefix("/"+version+"/", http.FileServer(http.Dir(archives))))
	defer srv.Close()
	manifest := filepath.Join(t.TempDir(), "plugins", "mcsa.yaml")
	run(ctx, t, nil, dist, "krew", "-version", version, "-base-url", srv.URL, "-dist", archives, "-out", manifest)
	fresh := readManifest(t, manifest)

	t.Run("manifest", func(t *testing.T) {
		checkManifest(t, fresh, version, srv.URL)
		sums, err := os.ReadFile(filepath.Join(archives, "kubectl-mcsa_"+version+"_checksums.txt"))
		if err != nil {
			t.Fatal(err)
		}
		goos, arch, _ := strings.Cut(host, "/")
		name := archiveName(version, goos, arch)
		if line := sha256Of(t, filepath.Join(archives, name)) + "  " + name; !strings.Contains(string(sums), line+"\n") {
			t.Errorf("checksums file lacks %q:\n%s", line, sums)
		}
		for _, p := range fresh.Spec.Platforms {
			name := filepath.Base(p.URI)
			if got := sha256Of(t, filepath.Join(archives, name)); p.Sha256 != got {
				t.Errorf("%s: manifest sha256 %s, archive's %s", name, p.Sha256, got)
			}
		}
	})

	t.Run("validate-krew-manifest", func(t *testing.T) {
		// Without -skip-install it runs `kubectl krew install` for every platform, each
		// downloading its archive from the loopback server and checking its sha256.
		run(ctx, t, env, filepath.Join(tools, exe(runtime.GOOS, "validate-krew-manifest")), "-manifest", manifest)
	})

	t.Run("kubectl krew install", func(t *testing.T) {
		krewRoot := t.TempDir()
		// Krew's bin directory goes on PATH, as krew's setup asks.
		env := append(slices.Clone(env), "KREW_ROOT="+krewRoot, "PATH="+filepath.Join(krewRoot, "bin")+string(os.PathListSeparator)+path)
		goos, arch, _ := strings.Cut(host, "/")
		run(ctx, t, env, kubectl, "krew", "install", "--manifest="+manifest, "--archive="+filepath.Join(archives, archiveName(version, goos, arch)))

		got := run(ctx, t, env, kubectl, "mcsa", "version")
		if want := fmt.Sprintf("kubectl-mcsa %s (", version); !strings.HasPrefix(got, want) || !strings.Contains(got, host) {
			t.Errorf("kubectl mcsa version: %q, want %q… %s", got, want, host)
		}
		if got := strings.TrimSpace(run(ctx, t, env, kubectl, "mcsa", "version", "--short")); got != version {
			t.Errorf("kubectl mcsa version --short: %q, want %q", got, version)
		}
		// The plugin of a version installs the controller image of that version.
		rendered := run(ctx, t, env, kubectl, "mcsa", "render")
		if want := "image: " + image.ControllerRef(version) + "\n"; !strings.Contains(rendered, want) {
			t.Errorf("kubectl mcsa render does not deploy %s", image.ControllerRef(version))
		}

		store := filepath.Join(krewRoot, "store", "mcsa", version)
		for _, f := range []string{exe(goos, "kubectl-mcsa"), exe(goos, "kubectl_complete-mcsa"), "LICENSE"} {
			if _, err := os.Stat(filepath.Join(store, f)); err != nil {
				t.Errorf("krew did not install %s: %v", f, err)
			}
		}

		// The completion shim, as kubectl runs it: the words typed so far as arguments.
		shim := filepath.Join(store, exe(goos, "kubectl_complete-mcsa"))
		checkCompletion(t, "kubectl_complete-mcsa \"\"", run(ctx, t, env, shim, ""), subcommands...)
		checkCompletion(t, "kubectl_complete-mcsa boot", run(ctx, t, env, shim, "boot"), "bootstrap")

		// Krew links only the plugin: put the shim beside the link as the caveats say, and
		// kubectl completes `kubectl mcsa` through it.
		b, err := os.ReadFile(shim)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(krewRoot, "bin", exe(goos, "kubectl_complete-mcsa")), b, 0o755); err != nil {
			t.Fatal(err)
		}
		checkCompletion(t, `kubectl __complete mcsa ""`, run(ctx, t, env, kubectl, "__complete", "mcsa", ""), subcommands...)
	})

	t.Run("committed manifest", func(t *testing.T) {
		committed := filepath.Join(root, "krew-index", "plugins", "mcsa.yaml")
		run(ctx, t, env, filepath.Join(tools, exe(runtime.GOOS, "validate-krew-manifest")), "-manifest", committed, "-skip-install")
		m := readManifest(t, committed)
		checkManifest(t, m, m.Spec.Version, releaseURL)
		// Only version, checksums and URLs may differ from a fresh one: the texts are current.
		if m.Spec.ShortDescription != fresh.Spec.ShortDescription || m.Spec.Description != fresh.Spec.Description ||
			m.Spec.Caveats != fresh.Spec.Caveats || m.Spec.Homepage != fresh.Spec.Homepage {
			t.Errorf("%s is stale: regenerate it with `make krew-manifest VERSION=<release>`", committed)
		}
	})
	t.Logf("krew test took %s", time.Since(began).Round(time.Millisecond))
}

// checkManifest checks what krew's validation leaves to the index's reviewers, and the layout
// of every platform: selector, archive URL under base, the binaries and LICENSE, bin.
func checkManifest(t *testing.T, m *krewPlugin, version, base string) {
	t.Helper()
	if m.Metadata.Name != "mcsa" || m.Spec.Version != version {
		t.Errorf("plugin %s %s, want mcsa %s", m.Metadata.Name, m.Spec.Version, version)
	}
	if n := len(m.Spec.ShortDescription); n == 0 || n > 50 {
		t.Errorf("shortDescription %q has %d characters; krew's index wants 1 to 50", m.Spec.ShortDescription, n)
	}
	if m.Spec.Description == "" || m.Spec.Homepage == "" {
		t.Error("description or homepage missing")
	}
	if !strings.Contains(m.Spec.Caveats, "cluster-admin") {
		t.Errorf("caveats do not say that bootstrapping needs cluster-admin: %q", m.Spec.Caveats)
	}
	var platforms []string
	for _, p := range m.Spec.Platforms {
		goos, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		platforms = append(platforms, goos+"/"+arch)
		if want := base + "/" + version + "/" + archiveName(version, goos, arch); p.URI != want {
			t.Errorf("%s/%s: uri %s, want %s", goos, arch, p.URI, want)
		}
		if p.Bin != exe(goos, "kubectl-mcsa") {
			t.Errorf("%s/%s: bin %q", goos, arch, p.Bin)
		}
		var from []string
		for _, f := range p.Files {
			from = append(from, f.From)
		}
		slices.Sort(from)
		if want := []string{"LICENSE", exe(goos, "kubectl-mcsa"), exe(goos, "kubectl_complete-mcsa")}; !slices.Equal(from, want) {
			t.Errorf("%s/%s: files %q, want %q", goos, arch, from, want)
		}
	}
	slices.Sort(platforms)
	want := slices.Clone(releasePlatforms)
	slices.Sort(want)
	if !slices.Equal(platforms, want) {
		t.Errorf("platforms %q, want %q", platforms, want)
	}
}

// checkCompletion checks that cobra's __complete output offers each of want.
func checkCompletion(t *testing.T, what, out string, want ...string) {
	t.Helper()
	var offered []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" || strings.HasPrefix(line, ":") {
			continue // the directive
		}
		word, _, _ := strings.Cut(line, "\t")
		offered = append(offered, word)
	}
	for _, w := range want {
		if !slices.Contains(offered, w) {
			t.Errorf("%s offers %q, not %q", what, offered, w)
		}
	}
}

func readManifest(t *testing.T, p string) *krewPlugin {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m krewPlugin
	if err := yaml.UnmarshalStrict(b, &m); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
	return &m
}

func sha256Of(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
