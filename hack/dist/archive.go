package main

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// allPlatforms are the platforms a release covers.
var allPlatforms = []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64", "windows/arm64"}

// The files of every archive, at its root (names without .exe).
const (
	pluginBinary     = "kubectl-mcsa"
	completionBinary = "kubectl_complete-mcsa"
	licenseFile      = "LICENSE"
)

type platform struct{ OS, Arch string }

func (p platform) String() string { return p.OS + "/" + p.Arch }

// exe is the file name of the program name on p.
func (p platform) exe(name string) string {
	if p.OS == "windows" {
		return name + ".exe"
	}
	return name
}

func parsePlatforms(s string) ([]platform, error) {
	var ps []platform
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		goos, arch, ok := strings.Cut(f, "/")
		if !ok || goos == "" || arch == "" || strings.Contains(arch, "/") {
			return nil, fmt.Errorf("platform %q: want os/arch, e.g. linux/amd64", f)
		}
		p := platform{goos, arch}
		if slices.Contains(ps, p) {
			return nil, fmt.Errorf("platform %s is listed twice", p)
		}
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("no platform in %q", s)
	}
	return ps, nil
}

// archiveName is the release file of version for p: tar.gz, or zip on windows where tar is not
// at home.
func archiveName(version string, p platform) string {
	ext := ".tar.gz"
	if p.OS == "windows" {
		ext = ".zip"
	}
	return fmt.Sprintf("%s_%s_%s_%s%s", pluginBinary, version, p.OS, p.Arch, ext)
}

// checksumsName is the sha256sum-format file listing version's archives.
func checksumsName(version string) string {
	return fmt.Sprintf("%s_%s_checksums.txt", pluginBinary, version)
}

// packArchive writes p's archive of version into outDir from binDir's binaries and the license,
// and returns its path.
func packArchive(version string, p platform, binDir, license, outDir string, mtime time.Time) (string, error) {
	files := map[string]string{
		p.exe(pluginBinary):     filepath.Join(binDir, p.exe(pluginBinary)),
		p.exe(completionBinary): filepath.Join(binDir, p.exe(completionBinary)),
		licenseFile:             license,
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	out := filepath.Join(outDir, archiveName(version, p))
	if err := writeArchive(out, files, mtime); err != nil {
		return "", fmt.Errorf("%s: %w", filepath.Base(out), err)
	}
	return out, nil
}

// entry is one file of an archive.
type entry struct {
	name string
	mode os.FileMode // 0o755 or 0o644: only the executable bit of the source is kept
	data []byte
}

// writeArchive packs files (name in the archive → path on disk) into out, a .zip or .tar.gz by
// its name. The result depends only on the files' contents and executable bits, and mtime:
// entries are sorted, owners and times fixed — the same sources give the same archive.
func writeArchive(out string, files map[string]string, mtime time.Time) (err error) {
	var entries []entry
	for name, src := range files {
		st, err := os.Stat(src)
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", src)
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if st.Mode()&0o111 != 0 {
			mode = 0o755
		}
		entries = append(entries, entry{name: name, mode: mode, data: data})
	}
	slices.SortFunc(entries, func(a, b entry) int { return strings.Compare(a.name, b.name) })

	// Write beside the target and rename, so that an interrupted run leaves no half archive.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".archive-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// The archive failed already, which err says. Closing a file that was maybe closed
			// above can only add "already closed"; a temporary file that stays is worth saying.
			_ = tmp.Close()
			if rerr := os.Remove(tmp.Name()); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
	}()
	w := bufio.NewWriter(tmp)
	switch {
	case strings.HasSuffix(out, ".zip"):
		err = writeZip(w, entries, mtime)
	case strings.HasSuffix(out, ".tar.gz"):
		err = writeTarGz(w, entries, mtime)
	default:
		err = fmt.Errorf("archive %s: want a .zip or .tar.gz name", out)
	}
	if err != nil {
		return err
	}
	if err = w.Flush(); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func writeTarGz(w io.Writer, entries []entry, mtime time.Time) error {
	// No name nor time in the gzip header: they would make builds differ. (Best compression
	// would save under 1% at 2.5 times the time.)
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     e.name,
			Mode:     int64(e.mode),
			Size:     int64(len(e.data)),
			ModTime:  mtime,
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func writeZip(w io.Writer, entries []entry, mtime time.Time) error {
	zw := zip.NewWriter(w)
	for _, e := range entries {
		hdr := &zip.FileHeader{Name: e.name, Method: zip.Deflate, Modified: mtime}
		// Unix permissions in the external attributes: unzip keeps the executable bit.
		hdr.SetMode(e.mode)
		f, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		if _, err := f.Write(e.data); err != nil {
			return err
		}
	}
	return zw.Close()
}

// sha256File is the hex SHA-256 of the file at p.
func sha256File(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeChecksums writes dir's checksums file of version, in `sha256sum -c` format, listing
// every archive of version in dir.
func writeChecksums(dir, version string) (string, error) {
	var names []string
	for _, ext := range []string{".tar.gz", ".zip"} {
		// A version holds no glob metacharacters: checkVersion admits only semantic versions.
		matches, err := filepath.Glob(filepath.Join(dir, pluginBinary+"_"+version+"_*"+ext))
		if err != nil {
			return "", err
		}
		for _, m := range matches {
			names = append(names, filepath.Base(m))
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "", fmt.Errorf("no archive of %s in %s", version, dir)
	}
	var b strings.Builder
	for _, n := range names {
		sum, err := sha256File(filepath.Join(dir, n))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, n)
	}
	out := filepath.Join(dir, checksumsName(version))
	return out, os.WriteFile(out, []byte(b.String()), 0o644)
}
