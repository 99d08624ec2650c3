package cmd

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// TestCLIReference keeps docs/cli.md, the CLI reference generated from the commands, in step
// with them: it fails on drift; `make docs` (this test with -update) rewrites it.
func TestCLIReference(t *testing.T) {
	t.Setenv("HOME", "/home/user")
	root := NewRootCmd(genericiooptions.NewTestIOStreamsDiscard())
	var b bytes.Buffer
	b.WriteString("# CLI reference\n\n<!-- Generated from the commands by `make docs`; do not edit. -->\n\n")
	b.WriteString("Every command also takes kubectl's connection flags (`--kubeconfig`, `--context`, `-n`, …), listed once at the end.\n\n")
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Name() == "help" || (c.Parent() != nil && c.Parent().Name() == "completion") {
			return
		}
		if c != root {
			writeCommand(&b, c)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	b.WriteString("## Connection flags (all commands)\n\n```\n")
	b.WriteString(root.PersistentFlags().FlagUsages())
	b.WriteString("```\n")

	path := filepath.Join("..", "..", "..", "docs", "cli.md")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(want, b.Bytes()) {
		t.Fatalf("docs/cli.md is out of date with the commands: run `make docs` and commit it (%v)", err)
	}
}

func writeCommand(b *bytes.Buffer, c *cobra.Command) {
	fmt.Fprintf(b, "## %s\n\n%s\n\n", c.CommandPath(), c.Short)
	if c.Long != "" {
		fmt.Fprintf(b, "%s\n\n", c.Long)
	}
	fmt.Fprintf(b, "```\n%s\n```\n\n", strings.Replace(c.UseLine(), "kubectl-mcsa", "kubectl mcsa", 1))
	if c.Example != "" {
		fmt.Fprintf(b, "Examples:\n\n```\n%s\n```\n\n", c.Example)
	}
	if flags := c.LocalNonPersistentFlags().FlagUsages(); flags != "" {
		fmt.Fprintf(b, "Flags:\n\n```\n%s```\n\n", flags)
	}
}
