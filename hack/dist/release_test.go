// Package main_test tests the release artifacts as this tool writes them: the archives and the
// krew manifest (`make dist`, `make krew-manifest`), installed with the real krew and run
// through the real kubectl, and the controller image (`make image`) against the manifests that
// deploy it. Everything is built here, for the host's platform where running it matters; no
// network but loopback.
package main_test

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// moduleRoot is the root of the kubectl-mcsa module (tests run in their package's directory,
// hack/dist).
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return root
}

// run runs name with args in the test's directory, with env added to the test's environment,
// and returns its standard output; it fails the test on error.
func run(ctx context.Context, t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(ctx, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

func runErr(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), errors.New(err.Error() + "\n" + stdout.String() + stderr.String())
	}
	return stdout.String(), nil
}

// untar extracts the regular files and directories of the tarball archive into dir.
func untar(t *testing.T, archive, dir string) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	eachTarEntry(t, f, func(h *tar.Header, tr *tar.Reader) {
		var err error
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if !strings.HasPrefix(p, filepath.Clean(dir)+string(filepath.Separator)) {
			t.Fatalf("%s: entry %q leaves the archive", archive, h.Name)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				var data []byte
				if data, err = io.ReadAll(tr); err == nil {
					err = os.WriteFile(p, data, 0o644)
				}
			}
		default:
			t.Fatalf("%s: unexpected entry %q of type %c", archive, h.Name, h.Typeflag)
		}
		if err != nil {
			t.Fatal(err)
		}
	})
}

// eachTarEntry calls fn with each entry of the tar stream r, failing the test on a broken stream.
func eachTarEntry(t *testing.T, r io.Reader, fn func(*tar.Header, *tar.Reader)) {
	t.Helper()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(h, tr)
	}
}
