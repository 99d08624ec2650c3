// Package image builds the images of the harness's pods (test/node, test/walkthrough): it
// compiles the Go programs they run, statically, and packs them with the image builder of the
// release tool, hack/dist (`dist images`), run as a subprocess as `go build` is, so that the
// product module does without an image library. The images land in one tarball in the `docker
// save` layout, which containerd imports (node.Options.Images). They run as distroless'
// nonroot user, with the binary as the entrypoint; the same binary gives the same image digest.
package image

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// Spec describes one image.
type Spec struct {
	// Ref names the image, e.g. "mcsa.test/nginx:e2e". Pods refer to it by this name.
	Ref string
	// Binary is the path of a static Linux binary for this machine, which lands at /<its name>.
	// When empty, Package is built.
	Binary string
	// Package is the main package built when Binary is empty: an import path
	// ("github.com/kubectl-mcsa/kubectl-mcsa/test/images/pause") or a path relative to the root
	// of the product module ("./test/images/pause").
	Package string
}

// Build compiles the packages the specs name into a temporary directory and writes the images
// into one tarball at out.
func Build(ctx context.Context, out string, specs ...Spec) error {
	if len(specs) == 0 {
		return errors.New("image: nothing to build")
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mcsa-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// Absolute paths: the tool runs in its own module's directory.
	if out, err = filepath.Abs(out); err != nil {
		return err
	}
	args := []string{"run", ".", "images", "-out", out}
	for i, s := range specs {
		bin := s.Binary
		if bin == "" {
			if s.Package == "" {
				return fmt.Errorf("image %s: neither Binary nor Package is set", s.Ref)
			}
			// One directory each: two packages may have the same base name.
			bin = filepath.Join(tmp, fmt.Sprint(i), path.Base(s.Package))
			// Static, for Linux: the image holds nothing else. Stripped and without local paths,
			// so that the image is the same wherever the checkout is.
			err := goCommand(ctx, root, []string{"CGO_ENABLED=0", "GOOS=linux"}, "build", "-trimpath", "-ldflags=-s -w", "-o", bin, s.Package)
			if err != nil {
				return fmt.Errorf("image %s: %w", s.Ref, err)
			}
		}
		if bin, err = filepath.Abs(bin); err != nil {
			return err
		}
		args = append(args, "-image", s.Ref+"="+bin)
	}
	if err := goCommand(ctx, toolDir(root), nil, args...); err != nil {
		return fmt.Errorf("image: %w", err)
	}
	return nil
}

// Prepare compiles the image tool, downloading its modules. A node sandbox has no network, and
// nodes build their pause image inside: call it before entering one.
func Prepare(ctx context.Context) error {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if err := goCommand(ctx, toolDir(root), nil, "build", "-o", os.DevNull, "."); err != nil {
		return fmt.Errorf("image: compiling the image tool: %w", err)
	}
	return nil
}

// toolDir is the module of the release tool, which builds images.
func toolDir(root string) string { return filepath.Join(root, "hack", "dist") }

// goCommand runs the go command in dir with env added to this process's environment.
func goCommand(ctx context.Context, dir string, env []string, args ...string) error {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// moduleRoot is the root of the working directory's module, the product module's when run by
// its tests or the playground.
func moduleRoot(ctx context.Context) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("image: go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(gomod))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("image: run from inside the kubectl-mcsa checkout")
	}
	return filepath.Dir(mod), nil
}
