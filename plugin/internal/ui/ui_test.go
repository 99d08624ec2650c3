package ui

import (
	"bytes"
	"os"
	"testing"
)

func TestPlainOutput(t *testing.T) {
	tests := []struct {
		name  string
		write func(*UI)
		want  string
	}{
		{"done", func(u *UI) { u.Done("installed in %s", "cluster1") }, "✓ installed in cluster1\n"},
		{"warn", func(u *UI) { u.Warn("careful") }, "Warning: careful\n"},
		{"step", func(u *UI) { u.Step("waiting…") }, "• waiting…\n"},
		{"info", func(u *UI) { u.Info("Next: %s", "import") }, "Next: import\n"},
		{"marks", func(u *UI) { u.Info("%s %s", u.Mark(true), u.Mark(false)) }, "✓ ✗\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			tt.write(&UI{w: &b})
			if b.String() != tt.want {
				t.Fatalf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func TestColoredOutput(t *testing.T) {
	var b bytes.Buffer
	u := &UI{w: &b, color: true}
	u.Done("x")
	u.Warn("y")
	if want := green + "✓" + reset + " x\n" + yellow + "Warning:" + reset + " y\n"; b.String() != want {
		t.Fatalf("got %q, want %q", b.String(), want)
	}
	if got := u.Mark(false); got != red+"✗"+reset {
		t.Fatalf("colored mark = %q", got)
	}
}

// TestUseColor decides with a fake terminal and environment: a test's own streams are never
// terminals, so writing through New could not tell a right decision from a wrong one.
func TestUseColor(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		terminal bool
		want     bool
	}{
		{"terminal", nil, true, true},
		{"not a terminal", nil, false, false},
		{"NO_COLOR on a terminal", map[string]string{"NO_COLOR": "1"}, true, false},
		{"NO_COLOR set to anything", map[string]string{"NO_COLOR": "false"}, true, false},
		{"NO_COLOR empty counts as unset", map[string]string{"NO_COLOR": ""}, true, true},
		{"dumb terminal", map[string]string{"TERM": "dumb"}, true, false},
		{"other TERM", map[string]string{"TERM": "xterm-256color"}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.env[k] }
			if got := useColor(getenv, tt.terminal); got != tt.want {
				t.Fatalf("useColor(%v, terminal=%v) = %v, want %v", tt.env, tt.terminal, got, tt.want)
			}
		})
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is not a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a regular file is not a terminal")
	}
	// The controlling terminal, when the tests run in one.
	if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
		defer tty.Close()
		if !isTerminal(tty) {
			t.Error("/dev/tty is a terminal")
		}
	}
}
