package image

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The release image of mcsa-controller, the in-cluster binary: one image per linux platform,
// assembled by Image, joined in a multi-arch index and written as an OCI image layout in one
// tarball (what `docker buildx --output type=oci` writes; `skopeo copy --all
// oci-archive:FILE docker://REF` publishes it).
//
// The image is what manifests/controller/deployment.yaml expects: the binary is the entrypoint
// (the Deployment sets only args), the user is distroless' nonroot (65532), the declared ports
// are the container's, and nothing but the binary and the user database is in it, so the
// read-only root filesystem the Deployment asks for suffices.
const (
	// ControllerRepository is where releases publish the image; the plugin's install defaults
	// to it (plugin/internal/install.DefaultImage) at the plugin's version.
	ControllerRepository = "ghcr.io/kubectl-mcsa/mcsa-controller"
	// ControllerPackage is the in-cluster binary.
	ControllerPackage = "./incluster/cmd/mcsa-controller"
	// ControllerEntrypoint is where the binary lands, and what runs.
	ControllerEntrypoint = "/mcsa-controller"

	versionVar = "github.com/kubectl-mcsa/kubectl-mcsa/incluster/version.Version"
	source     = "https://github.com/kubectl-mcsa/kubectl-mcsa"
)

// ControllerPlatforms are the platforms a release image covers.
var ControllerPlatforms = []string{"linux/amd64", "linux/arm64"}

// ControllerPorts are the container ports of manifests/controller/deployment.yaml: metrics,
// health probes and the automount webhook.
var ControllerPorts = []string{"8443/tcp", "8081/tcp", "9443/tcp"}

// ControllerRef is the image's reference at version, e.g.
// ghcr.io/kubectl-mcsa/mcsa-controller:v0.1.0.
func ControllerRef(version string) string { return ControllerRepository + ":" + version }

// BuildController compiles mcsa-controller for each platform from the module rooted at src,
// with version stamped, and writes the multi-arch image, tagged ControllerRef(version), as an
// OCI archive at out.
func BuildController(ctx context.Context, src, version string, platforms []string, out string) error {
	if len(platforms) == 0 {
		return fmt.Errorf("controller image: no platform")
	}
	tmp, err := os.MkdirTemp("", "mcsa-controller-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		plat, err := v1.ParsePlatform(p)
		if err != nil {
			return fmt.Errorf("controller image: platform %q: %w", p, err)
		}
		bin := filepath.Join(tmp, plat.OS+"_"+plat.Architecture, filepath.Base(ControllerEntrypoint))
		if err := goBuild(ctx, src, version, *plat, bin); err != nil {
			return err
		}
		img, err := controllerImage(version, p, bin)
		if err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: plat},
		})
	}

	dir := filepath.Join(tmp, "layout")
	l, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	// Both names: containerd's import reads the first, skopeo and the OCI tools the second.
	if err := l.AppendIndex(idx, layout.WithAnnotations(map[string]string{
		"io.containerd.image.name":          ControllerRef(version),
		"org.opencontainers.image.ref.name": version,
	})); err != nil {
		return fmt.Errorf("controller image: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return tarDir(dir, out)
}

// controllerImage is Image of the binary, with the ports and OCI labels added.
func controllerImage(version, platform, bin string) (v1.Image, error) {
	img, err := Image(Spec{
		Ref:      ControllerRef(version),
		Binary:   bin,
		Path:     ControllerEntrypoint,
		User:     NonRoot,
		Platform: platform,
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Config.ExposedPorts = map[string]struct{}{}
	for _, p := range ControllerPorts {
		cf.Config.ExposedPorts[p] = struct{}{}
	}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "mcsa-controller",
		"org.opencontainers.image.description": "kubectl-mcsa's importer controller and automount webhook",
		"org.opencontainers.image.source":      source,
		"org.opencontainers.image.version":     version,
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	return mutate.ConfigFile(img, cf)
}

// goBuild compiles the controller for plat into out: static, without local paths, stripped,
// with the version stamped like the plugin's.
func goBuild(ctx context.Context, src, version string, plat v1.Platform, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -X "+versionVar+"="+version, "-o", out, ControllerPackage)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+plat.OS, "GOARCH="+plat.Architecture)
	if plat.Variant != "" && plat.Architecture == "arm" {
		cmd.Env = append(cmd.Env, "GOARM="+strings.TrimPrefix(plat.Variant, "v"))
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s for %s: %w\n%s", ControllerPackage, plat, err, b)
	}
	return nil
}

// tarDir writes the files under dir into the tarball out, sorted, with fixed times and owners,
// so that the same images give the same archive.
func tarDir(dir, out string) (err error) {
	var names []string
	err = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(names)

	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			// The half-written tarball goes; if it cannot, say so beside the error.
			if rerr := os.Remove(out); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	w := bufio.NewWriter(f)
	tw := tar.NewWriter(w)
	for _, n := range names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		st, err := os.Stat(p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: n, Mode: 0o644, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		if st.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, n+"/", 0o755
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			continue
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if err := copyFile(tw, p); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return w.Flush()
}

func copyFile(w io.Writer, p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}
