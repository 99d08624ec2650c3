package cmd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// TestExamplesParse runs every `kubectl mcsa …` line of every command's Example through the
// parser, as the shell would hand it over: the command must exist, every flag must exist with a
// valid value, and the arguments must satisfy the command's Args. Nothing runs. Documented
// examples that no longer parse are the first thing a newcomer copies.
func TestExamplesParse(t *testing.T) {
	root := NewRootCmd(genericiooptions.NewTestIOStreamsDiscard())
	var cmds []*cobra.Command
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		cmds = append(cmds, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	checked := 0
	for _, c := range cmds {
		for line := range strings.Lines(c.Example) {
			line = strings.TrimSpace(line)
			if !strings.HasPrefix(line, "kubectl mcsa ") {
				continue // comments, blank lines, other programs
			}
			t.Run(line, func(t *testing.T) { parses(t, line) })
			checked++
		}
	}
	if checked < 30 {
		t.Errorf("only %d examples found: the walk or the filter is broken", checked)
	}
}

// parses checks that a `kubectl mcsa …` line names a command, with flags it has and valid
// values, and arguments its Args accept, on a fresh command tree. Nothing runs.
func parses(t *testing.T, line string) {
	t.Helper()
	args := shellWords(t, line)
	root := NewRootCmd(genericiooptions.NewTestIOStreamsDiscard())
	found, rest, err := root.Find(args[2:])
	if err != nil {
		t.Fatalf("no such command: %v", err)
	}
	if err := found.ParseFlags(rest); err != nil {
		t.Fatalf("flags: %v", err)
	}
	if found.Args != nil {
		if err := found.Args(found, found.Flags().Args()); err != nil {
			t.Fatalf("arguments: %v", err)
		}
	}
}

// shellWords splits a shell command line the way the examples use the shell: words, single and
// double quotes, a `$(…)` substitution kept in its word, and it stops at a comment, a pipe or a
// redirection outside them (what follows is for the shell, not for kubectl mcsa).
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	depth := 0 // inside $( … ), one word whatever it holds
	prev := ' '
	for _, r := range line {
		switch {
		case depth > 0:
			cur.WriteRune(r)
			switch r {
			case '(':
				depth++
			case ')':
				depth--
			}
		case r == '(' && prev == '$':
			cur.WriteRune(r)
			depth = 1
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case !inWord && (r == '#' || r == '|' || r == '>' || r == '<' || r == ';' || r == '&'):
			return words
		default:
			cur.WriteRune(r)
			inWord = true
		}
		prev = r
	}
	if quote != 0 || depth != 0 {
		t.Fatalf("unbalanced quote or $( in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestDocsCommandsParse does the same for every `kubectl mcsa …` line of the README and docs/
// (in code blocks or not, `$` prompts dropped), so that the documented commands keep parsing.
func TestDocsCommandsParse(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "..", "..", "README.md"))
	checked := 0
	for _, f := range files {
		if filepath.Base(f) == "cli.md" {
			continue // generated from the commands' help, checked above
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			line = strings.TrimPrefix(strings.TrimSpace(line), "$ ")
			if !strings.HasPrefix(line, "kubectl mcsa ") || strings.HasSuffix(line, "\\") || strings.Contains(line, "`") {
				continue // prose mentions and continued lines are not commands to copy
			}
			t.Run(filepath.Base(f)+": "+line, func(t *testing.T) { parses(t, line) })
			checked++
		}
	}
	if checked < 20 {
		t.Errorf("only %d documented commands found", checked)
	}
}
