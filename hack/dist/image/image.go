// Package image builds container images offline, without a Docker engine: one layer holding a
// static binary and the bare directories a container runtime expects (/etc, /tmp, /proc, /sys,
// /dev, with /etc/passwd and /etc/group naming a non-root user), and an image config with the
// entrypoint and user. Write packs images into one tarball in the `docker save` layout, which
// `ctr images import` (containerd) and `docker load` both accept: the test harness's images
// (`dist images`). BuildController writes the controller's multi-arch release image as an OCI
// archive (`dist image`, `make image`).
//
// Builds are reproducible: file times are zero and the layer is sorted, so the same binary gives
// the same image digest.
package image

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// NonRoot is the user images run as unless a Spec says otherwise (distroless' "nonroot").
const NonRoot = "65532:65532"

// Spec describes one image.
type Spec struct {
	// Ref names the image, e.g. "mcsa.test/mcsa-controller:e2e". Pods refer to it by this name.
	Ref string
	// Binary is the path of the static binary to put in the image.
	Binary string
	// Path is where the binary lands in the image, and the entrypoint; default "/" + its base
	// name.
	Path string
	// User defaults to NonRoot; "0:0" runs as root.
	User string
	// Platform is "os/arch[/variant]"; default linux and the machine's architecture.
	Platform string
}

func (s Spec) platform() (*v1.Platform, error) {
	p := s.Platform
	if p == "" {
		p = "linux/" + runtime.GOARCH
	}
	plat, err := v1.ParsePlatform(p)
	if err != nil {
		return nil, fmt.Errorf("image %s: platform %q: %w", s.Ref, p, err)
	}
	if plat.OS != "linux" {
		return nil, fmt.Errorf("image %s: platform %q: only linux images are built", s.Ref, p)
	}
	return plat, nil
}

// Write assembles the images and writes them all into one tarball at out.
func Write(out string, specs ...Spec) error {
	if len(specs) == 0 {
		return errors.New("image: nothing to build")
	}
	refs := make(map[name.Reference]v1.Image, len(specs))
	for _, s := range specs {
		ref, err := name.ParseReference(s.Ref, name.WeakValidation)
		if err != nil {
			return fmt.Errorf("image %q: %w", s.Ref, err)
		}
		img, err := Image(s)
		if err != nil {
			return err
		}
		refs[ref] = img
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := tarball.MultiRefWriteToFile(out, refs); err != nil {
		return fmt.Errorf("image: writing %s: %w", out, err)
	}
	return nil
}

// Image assembles the image of s.
func Image(s Spec) (v1.Image, error) {
	if s.Binary == "" {
		return nil, fmt.Errorf("image %s: no binary", s.Ref)
	}
	plat, err := s.platform()
	if err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", s.Ref, err)
	}
	p := s.Path
	if p == "" {
		p = "/" + filepath.Base(s.Binary)
	}
	if !path.IsAbs(p) {
		return nil, fmt.Errorf("image %s: path %q is not absolute", s.Ref, p)
	}
	layerTar, err := rootfs(p, bin)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", s.Ref, err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	user := s.User
	if user == "" {
		user = NonRoot
	}
	cf.Config = v1.Config{
		Entrypoint: []string{p},
		Env:        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		User:       user,
		WorkingDir: "/",
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs is the layer: the binary at p, the directories a runtime mounts over, and user
// databases so that tools resolving the non-root user by id find a name.
func rootfs(p string, bin []byte) ([]byte, error) {
	type entry struct {
		hdr  tar.Header
		data []byte
	}
	entries := map[string]entry{}
	dir := func(name string, mode int64) {
		entries[name+"/"] = entry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode}}
	}
	file := func(name string, mode int64, data []byte) {
		entries[name] = entry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data: data}
	}
	for _, d := range []string{"etc", "proc", "sys", "dev", "home", "home/nonroot", "root"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n"))
	rel := strings.TrimPrefix(path.Clean(p), "/")
	for d := path.Dir(rel); d != "."; d = path.Dir(d) {
		dir(d, 0o755)
	}
	file(rel, 0o755, bin)

	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		e.hdr.ModTime = time.Unix(0, 0)
		e.hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&e.hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
