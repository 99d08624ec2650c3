// Command dist builds kubectl-mcsa's release artifacts offline, with nothing but Go:
//
//	dist build   cross-compiles the plugin and its completion shim per platform, packs each
//	             platform's archive and writes the checksums file (`make dist`)
//	dist archive packs one platform's archive from binaries built elsewhere
//	dist krew    writes the krew manifest from the archives (`make krew-manifest`)
//
// Run it from this module: `go -C hack/dist run . build -src ../.. -version v0.1.0 -out ../../dist`.
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
)

const usage = `usage: dist build|archive|krew [flags]; dist COMMAND -h lists a command's flags`

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
	ver := fs.String("version", "", "release version, a semantic version with a leading v (krew requires one), e.g. v0.1.0")
	parse := func() error {
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments %q", fs.Args())
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
	}
	return errors.New(usage)
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
