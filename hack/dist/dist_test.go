package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-mcsa/kubectl-mcsa/hack/dist/image"
)

func TestCheckVersion(t *testing.T) {
	tests := []struct {
		version string
		ok      bool
	}{
		{"v0.1.0", true},
		{"v1.2.3-rc.1", true},
		{"v0.1.0-3-gabc1234-dirty", true},
		{"0.1.0", false},
		{"dev", false},
		{"dad3b40-dirty", false},
		{"", false},
	}
	for _, tt := range tests {
		if err := checkVersion(tt.version); (err == nil) != tt.ok {
			t.Errorf("checkVersion(%q) = %v, want ok=%v", tt.version, err, tt.ok)
		}
	}
}

func TestParsePlatforms(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"linux/amd64", "[linux/amd64]", true},
		{" linux/amd64, windows/arm64 ,", "[linux/amd64 windows/arm64]", true},
		{"linux", "", false},
		{"linux/arm/v7", "", false},
		{"linux/amd64,linux/amd64", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		ps, err := parsePlatforms(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("parsePlatforms(%q): %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok {
			var names []string
			for _, p := range ps {
				names = append(names, p.String())
			}
			if got := "[" + strings.Join(names, " ") + "]"; got != tt.want {
				t.Errorf("parsePlatforms(%q) = %s, want %s", tt.in, got, tt.want)
			}
		}
	}
}

func TestImageFlag(t *testing.T) {
	tests := []struct {
		in   string
		want image.Spec
		ok   bool
	}{
		{"mcsa.test/pause:e2e=/tmp/pause", image.Spec{Ref: "mcsa.test/pause:e2e", Binary: "/tmp/pause"}, true},
		{"r:1=/b/x,path=/usr/bin/x,user=0:0", image.Spec{Ref: "r:1", Binary: "/b/x", Path: "/usr/bin/x", User: "0:0"}, true},
		{"r:1", image.Spec{}, false},
		{"=/b/x", image.Spec{}, false},
		{"r:1=", image.Spec{}, false},
		{"r:1=/b/x,entrypoint=/x", image.Spec{}, false},
	}
	for _, tt := range tests {
		var specs imageSpecs
		err := specs.Set(tt.in)
		if (err == nil) != tt.ok {
			t.Errorf("-image %q: %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && (len(specs) != 1 || specs[0] != tt.want) {
			t.Errorf("-image %q: %+v, want %+v", tt.in, specs, tt.want)
		}
	}
}

// TestArchives packs stand-in binaries for a unix and a windows platform and reads them back:
// names, modes, times, and the same bytes on a second run.
func TestArchives(t *testing.T) {
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		plat platform
		ext  string
	}{
		{platform{"linux", "arm64"}, ".tar.gz"},
		{platform{"windows", "amd64"}, ".zip"},
	}
	for _, tt := range tests {
		t.Run(tt.plat.String(), func(t *testing.T) {
			bin := t.TempDir()
			for _, n := range []string{pluginBinary, completionBinary} {
				if err := os.WriteFile(filepath.Join(bin, tt.plat.exe(n)), []byte(n), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			license := filepath.Join(t.TempDir(), "LICENSE")
			if err := os.WriteFile(license, []byte("license"), 0o600); err != nil {
				t.Fatal(err)
			}
			var outs [][]byte
			for range 2 {
				out, err := packArchive("v1.0.0", tt.plat, bin, license, t.TempDir(), mtime)
				if err != nil {
					t.Fatal(err)
				}
				if want := "kubectl-mcsa_v1.0.0_" + tt.plat.OS + "_" + tt.plat.Arch + tt.ext; filepath.Base(out) != want {
					t.Errorf("archive %s, want %s", filepath.Base(out), want)
				}
				b, err := os.ReadFile(out)
				if err != nil {
					t.Fatal(err)
				}
				outs = append(outs, b)
			}
			if !bytes.Equal(outs[0], outs[1]) {
				t.Error("two runs wrote different archives")
			}
			want := map[string]os.FileMode{
				licenseFile:                   0o644,
				tt.plat.exe(pluginBinary):     0o755,
				tt.plat.exe(completionBinary): 0o755,
			}
			got := readArchive(t, outs[0], tt.ext, mtime)
			if len(got) != len(want) {
				t.Errorf("entries %v, want %v", got, want)
			}
			for name, mode := range want {
				if got[name] != mode {
					t.Errorf("%s: mode %o, want %o", name, got[name], mode)
				}
			}
		})
	}
}

// readArchive lists the entries of an archive with their permissions, checking their times.
func readArchive(t *testing.T, b []byte, ext string, mtime time.Time) map[string]os.FileMode {
	t.Helper()
	entries := map[string]os.FileMode{}
	if ext == ".zip" {
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			if !f.Modified.Equal(mtime) {
				t.Errorf("%s: time %s, want %s", f.Name, f.Modified, mtime)
			}
			entries[f.Name] = f.Mode().Perm()
		}
		return entries
	}
	gz, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(mtime) || h.Uid != 0 || h.Uname != "" {
			t.Errorf("%s: time %s owner %d %q, want %s, root without name", h.Name, h.ModTime, h.Uid, h.Uname, mtime)
		}
		entries[h.Name] = os.FileMode(h.Mode).Perm()
	}
}

// TestStaticallyLinked: the release binaries run anywhere a kernel does, distroless and scratch
// images included (a dynamically linked exec plugin fails to start there: kueue#8751): goBuild's
// output has no program interpreter and needs no shared library.
func TestStaticallyLinked(t *testing.T) {
	bin := t.TempDir()
	p := platform{runtime.GOOS, runtime.GOARCH}
	if p.OS != "linux" {
		t.Skip("the release binaries checked here are Linux ELF files; this host builds " + p.OS + " ones")
	}
	root, err := filepath.Abs(filepath.Join("..", "..")) // the kubectl-mcsa module
	if err != nil {
		t.Fatal(err)
	}
	if err := goBuild(t.Context(), root, "v0.0.0-static", p, bin); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{pluginBinary, completionBinary} {
		f, err := elf.Open(filepath.Join(bin, name))
		if err != nil {
			t.Fatal(err)
		}
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				t.Errorf("%s has a program interpreter: dynamically linked", name)
			}
		}
		if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
			t.Errorf("%s needs shared libraries %v (%v)", name, libs, err)
		}
		_ = f.Close() // read only
	}
}
