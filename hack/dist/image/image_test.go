package image

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestWrite(t *testing.T) {
	// The builder copies the binary's bytes: any file stands in for a program.
	bin := filepath.Join(t.TempDir(), "pause")
	if err := os.WriteFile(bin, []byte("a stand-in for a static binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		spec       Spec
		wantEntry  []string
		wantUser   string
		wantArch   string
		wantBinary string
	}{
		{
			name:       "defaults",
			spec:       Spec{Ref: "mcsa.test/pause:e2e", Binary: bin},
			wantEntry:  []string{"/pause"},
			wantUser:   NonRoot,
			wantArch:   runtime.GOARCH,
			wantBinary: "pause",
		},
		{
			name:       "path, root, other platform",
			spec:       Spec{Ref: "mcsa.test/other:v1", Binary: bin, Path: "/usr/local/bin/p", User: "0:0", Platform: "linux/arm64"},
			wantEntry:  []string{"/usr/local/bin/p"},
			wantUser:   "0:0",
			wantArch:   "arm64",
			wantBinary: "usr/local/bin/p",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "images.tar")
			if err := Write(out, tt.spec); err != nil {
				t.Fatal(err)
			}
			tag, err := name.NewTag(tt.spec.Ref)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(out, &tag)
			if err != nil {
				t.Fatalf("reading back %s: %v", tt.spec.Ref, err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cf.Config.Entrypoint, tt.wantEntry) || cf.Config.User != tt.wantUser || cf.OS != "linux" || cf.Architecture != tt.wantArch {
				t.Errorf("config: entrypoint %q user %q platform %s/%s; want %q %q linux/%s",
					cf.Config.Entrypoint, cf.Config.User, cf.OS, cf.Architecture, tt.wantEntry, tt.wantUser, tt.wantArch)
			}
			layers, err := img.Layers()
			if err != nil || len(layers) != 1 {
				t.Fatalf("layers: %d, %v; want one", len(layers), err)
			}
			rc, err := layers[0].Uncompressed()
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			files := map[string]*tar.Header{}
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				files[h.Name] = h
			}
			for _, want := range []string{"etc/", "tmp/", "proc/", "sys/", "dev/", "etc/passwd", "etc/group", tt.wantBinary} {
				if files[want] == nil {
					t.Errorf("layer lacks %s", want)
				}
			}
			if h := files[tt.wantBinary]; h != nil && h.Mode&0o111 == 0 {
				t.Errorf("%s is not executable: %o", tt.wantBinary, h.Mode)
			}
			if h := files["tmp/"]; h != nil && h.Mode != 0o1777 {
				t.Errorf("tmp mode %o, want 1777", h.Mode)
			}
		})
	}

	t.Run("reproducible", func(t *testing.T) {
		spec := Spec{Ref: "mcsa.test/pause:e2e", Binary: bin}
		a, err := Image(spec)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Image(spec)
		if err != nil {
			t.Fatal(err)
		}
		da, _ := a.Digest()
		db, _ := b.Digest()
		if da != db {
			t.Errorf("two builds of the same binary differ: %s and %s", da, db)
		}
	})
}

func TestSpecErrors(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
	}{
		{"no binary", Spec{Ref: "mcsa.test/x:1"}},
		{"bad reference", Spec{Ref: "UPPER/case:1", Binary: "/bin/true"}},
		{"not linux", Spec{Ref: "mcsa.test/x:1", Binary: "/bin/true", Platform: "windows/amd64"}},
		{"relative path", Spec{Ref: "mcsa.test/x:1", Binary: "/bin/true", Path: "bin/x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := Write(filepath.Join(t.TempDir(), "x.tar"), tt.spec); err == nil {
				t.Error("Write succeeded; want an error")
			}
		})
	}
}
