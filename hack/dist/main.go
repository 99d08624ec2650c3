// Command dist builds kubectl-mcsa's release artifacts offline, with nothing but Go:
//
//	dist build   cross-compiles the plugin and its completion shim per platform, packs each
//	             platform's archive and writes the checksums file (`make dist`)
//	dist archive packs one platform's archive from binaries built elsewhere
//	dist krew    writes the krew manifest from the archives (`make krew-manifest`)
//	dist image   cross-compiles mcsa-controller and writes its multi-arch image as an OCI
//	             archive (`make image`)
//	dist images  packs static binaries built elsewhere into images, in one tarball that
//	             containerd imports: the test harness's images (test/image)
//
// Run it from this module: `go -C hack/dist run . build -src ../.. -version v0.1.0 -out ../../dist`
// (relative paths are relative to hack/dist).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/kubectl-mcsa/kubectl-mcsa/hack/dist/image"
)

const usage = `usage: dist build|archive|krew|image|images [flags]; dist COMMAND -h lists a command's flags`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("dist "+args[0], flag.ContinueOnError)
	// The release artifacts are named after the version; the harness's images are not released.
	var ver *string
	if args[0] != "images" {
		ver = fs.String("version", "", "release version, a semantic version with a leading v (krew requires one), e.g. v0.1.0")
	}
	parse := func() error {
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments %q", fs.Args())
		}
		if ver == nil {
			return nil
		}
		return checkVersion(*ver)
	}
	platformsFlag := func() *string {
		return fs.String("platforms", strings.Join(allPlatforms, ","), "comma-separated os/arch pairs")
	}
	switch args[0] {
	case "build":
		src := fs.String("src", ".", "root of the kubectl-mcsa module")
		plats := platformsFlag()
		out := fs.String("out", "dist", "directory of the archives and the checksums file")
		if err := parse(); err != nil {
			return err
		}
		ps, err := parsePlatforms(*plats)
		if err != nil {
			return err
		}
		mtime, err := sourceDate()
		if err != nil {
			return err
		}
		return build(ctx, *src, *ver, ps, *out, mtime)
	case "archive":
		plat := fs.String("platform", "", "the archive's os/arch")
		bin := fs.String("bin", "", "directory holding the platform's kubectl-mcsa and kubectl_complete-mcsa")
		license := fs.String("license", licenseFile, "the license file to include")
		out := fs.String("out", "dist", "directory of the archive")
		if err := parse(); err != nil {
			return err
		}
		ps, err := parsePlatforms(*plat)
		if err != nil || len(ps) != 1 {
			return fmt.Errorf("-platform %q: want one os/arch pair", *plat)
		}
		mtime, err := sourceDate()
		if err != nil {
			return err
		}
		_, err = packArchive(*ver, ps[0], *bin, *license, *out, mtime)
		return err
	case "krew":
		plats := platformsFlag()
		dir := fs.String("dist", "dist", "directory holding the archives")
		base := fs.String("base-url", releaseURL, "URL the archives are downloaded from; the version and the archive's name are appended")
		out := fs.String("out", "krew-index/plugins/"+pluginName+".yaml", "the manifest file; krew wants it named after the plugin")
		if err := parse(); err != nil {
			return err
		}
		ps, err := parsePlatforms(*plats)
		if err != nil {
			return err
		}
		return writeManifest(*ver, *base, *dir, ps, *out)
	case "image":
		src := fs.String("src", ".", "root of the kubectl-mcsa module")
		plats := fs.String("platforms", strings.Join(image.ControllerPlatforms, ","), "comma-separated linux platforms, os/arch[/variant]")
		out := fs.String("out", "", "the OCI archive to write, e.g. dist/mcsa-controller_v0.1.0.oci.tar")
		if err := parse(); err != nil {
			return err
		}
		if *out == "" {
			return errors.New("-out is required")
		}
		start := time.Now()
		if err := image.BuildController(ctx, *src, *ver, strings.Split(*plats, ","), *out); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: %s for %s (%s)\n", *out, image.ControllerRef(*ver), *plats, time.Since(start).Round(100*time.Millisecond))
		return nil
	case "images":
		var specs imageSpecs
		fs.Var(&specs, "image", "an image, REF=BINARY[,path=PATH][,user=UID:GID] (repeatable): BINARY, a static linux binary for this machine's architecture, is the entrypoint at PATH (default /BINARY's name), run as user UID:GID (default "+image.NonRoot+")")
		out := fs.String("out", "", "the tarball to write, in the docker save layout that ctr images import takes")
		if err := parse(); err != nil {
			return err
		}
		if *out == "" || len(specs) == 0 {
			return errors.New("-out and at least one -image are required")
		}
		return image.Write(*out, specs...)
	}
	return errors.New(usage)
}

// imageSpecs collects the -image flags of `dist images`.
type imageSpecs []image.Spec

func (s *imageSpecs) String() string { return fmt.Sprint(*s) }

// Set parses REF=BINARY[,path=PATH][,user=UID:GID].
func (s *imageSpecs) Set(v string) error {
	ref, rest, ok := strings.Cut(v, "=")
	fields := strings.Split(rest, ",")
	if !ok || ref == "" || fields[0] == "" {
		return fmt.Errorf("%q: want REF=BINARY[,path=PATH][,user=UID:GID]", v)
	}
	spec := image.Spec{Ref: ref, Binary: fields[0]}
	for _, f := range fields[1:] {
		switch k, val, _ := strings.Cut(f, "="); k {
		case "path":
			spec.Path = val
		case "user":
			spec.User = val
		default:
			return fmt.Errorf("%q: unknown option %q; want path= or user=", v, f)
		}
	}
	*s = append(*s, spec)
	return nil
}

// checkVersion accepts what krew accepts: a semantic version with a leading "v".
func checkVersion(v string) error {
	if v == "" {
		return errors.New("-version is required, e.g. -version v0.1.0")
	}
	if _, err := version.ParseSemantic(v); err != nil || !strings.HasPrefix(v, "v") {
		return fmt.Errorf("version %q is not a semantic version with a leading v (like v0.1.0 or v0.1.0-rc.1), which krew requires: e.g. make dist VERSION=v0.1.0", v)
	}
	return nil
}

// sourceDate is the time stamped on every archive entry: SOURCE_DATE_EPOCH when set (the
// Makefile sets the commit's time), so that the same commit gives the same archives.
func sourceDate() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return defaultDate, nil
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970: %w", s, err)
	}
	t := time.Unix(sec, 0).UTC()
	if t.Before(defaultDate) {
		// Zip cannot store earlier times.
		t = defaultDate
	}
	return t, nil
}

// defaultDate is the earliest time a zip entry can carry.
var defaultDate = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
