package servingcert

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// dataLink is the symbolic link naming the directory that holds the current files.
const dataLink = "..data"

// writeFiles replaces the files of dir all at once, the way the kubelet updates a mounted
// Secret: each file is a symbolic link through dataLink to a fresh directory, and swapping
// dataLink is a single rename. The certificate watcher thus never reads a certificate with the
// previous key. It reports whether anything changed.
func writeFiles(dir string, files map[string][]byte) (bool, error) {
	if unchanged(dir, files) {
		return false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	fresh, err := os.MkdirTemp(dir, "..gen-")
	if err != nil {
		return false, err
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(fresh, name), content, 0o600); err != nil {
			os.RemoveAll(fresh)
			return false, err
		}
	}
	tmpLink := filepath.Join(dir, dataLink+".tmp")
	os.Remove(tmpLink)
	if err := os.Symlink(filepath.Base(fresh), tmpLink); err != nil {
		os.RemoveAll(fresh)
		return false, err
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataLink)); err != nil {
		os.RemoveAll(fresh)
		return false, err
	}
	for name := range files {
		link := filepath.Join(dir, name)
		target := filepath.Join(dataLink, name)
		if t, err := os.Readlink(link); err == nil && t == target {
			continue
		}
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return false, fmt.Errorf("linking %s: %w", link, err)
		}
	}
	// Removing the previous files is what tells the watcher (it watches through the links);
	// this also clears what an interrupted write left behind.
	gens, _ := filepath.Glob(filepath.Join(dir, "..gen-*"))
	for _, g := range gens {
		if g != fresh {
			os.RemoveAll(g)
		}
	}
	return true, nil
}

func unchanged(dir string, files map[string][]byte) bool {
	for name, content := range files {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(b, content) {
			return false
		}
	}
	return true
}
