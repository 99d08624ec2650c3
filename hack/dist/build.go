package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// versionVar is the variable `kubectl mcsa version` prints.
const versionVar = "github.com/kubectl-mcsa/kubectl-mcsa/incluster/version.Version"

// commands are the main packages every archive holds, relative to the module root.
var commands = []string{"./plugin/cmd/" + pluginBinary, "./plugin/cmd/" + completionBinary}

// build cross-compiles the plugin and its completion shim for each platform, packs the archives
// into outDir and writes the checksums file.
func build(ctx context.Context, src, version string, plats []platform, outDir string, mtime time.Time) error {
	src, err := filepath.Abs(src)
	if err != nil {
		return err
	}
	license := filepath.Join(src, licenseFile)
	if _, err := os.Stat(license); err != nil {
		return fmt.Errorf("the archives need the license: %w", err)
	}
	tmp, err := os.MkdirTemp("", "mcsa-dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, p := range plats {
		start := time.Now()
		binDir := filepath.Join(tmp, p.OS+"_"+p.Arch)
		if err := goBuild(ctx, src, version, p, binDir); err != nil {
			return err
		}
		out, err := packArchive(version, p, binDir, license, outDir, mtime)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s (%s)\n", out, time.Since(start).Round(100*time.Millisecond))
	}
	sums, err := writeChecksums(outDir, version)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, sums)
	return nil
}

// goBuild compiles both commands for p in one `go build`, so that they share its work: static
// (no cgo), without local paths (-trimpath), stripped, with the version stamped.
func goBuild(ctx context.Context, src, version string, p platform, binDir string) error {
	args := append([]string{"build", "-trimpath", "-ldflags", "-s -w -X " + versionVar + "=" + version, "-o", binDir + string(filepath.Separator)}, commands...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Arch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s: %w\n%s", p, err, out)
	}
	return nil
}
