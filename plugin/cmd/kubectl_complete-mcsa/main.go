// Command kubectl_complete-mcsa lets kubectl (1.26 and later) complete `kubectl mcsa <TAB>`:
// kubectl runs it with the words to complete, and it asks kubectl-mcsa's own completion.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

func main() {
	exe := "kubectl-mcsa"
	if runtime.GOOS == "windows" {
		exe += ".exe"
	}
	// Prefer the plugin installed beside this shim (krew installs both in one folder).
	path := exe
	if self, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(self), exe); fileExists(p) {
			path = p
		}
	}
	cmd := exec.Command(path, append([]string{"__complete"}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "kubectl_complete-mcsa:", err)
		os.Exit(1)
	}
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}
