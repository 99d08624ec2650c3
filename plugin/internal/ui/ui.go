// Package ui writes the plugin's human-facing progress, warnings and check marks to stderr, so
// that stdout stays pipeable. Colors are used only on a terminal and never when NO_COLOR is set to anything but the empty string
// (https://no-color.org).
package ui

import (
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/term"
)

// UI writes to one stream.
type UI struct {
	mu    sync.Mutex
	w     io.Writer
	color bool
}

// New writes to w, in color when w is a terminal and NO_COLOR is unset.
func New(w io.Writer) *UI {
	return &UI{w: w, color: colorFor(w)}
}

func colorFor(w io.Writer) bool {
	if os.Getenv("NO_COLOR") != "" {
		return false
	}
	if os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

const (
	green  = "\x1b[32m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
	bold   = "\x1b[1m"
	reset  = "\x1b[0m"
)

func (u *UI) paint(color, s string) string {
	if !u.color {
		return s
	}
	return color + s + reset
}

func (u *UI) line(prefix, format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(u.w, prefix+format+"\n", args...)
}

// Step announces a step in progress.
func (u *UI) Step(format string, args ...any) { u.line("• ", format, args...) }

// Done reports a step that succeeded.
func (u *UI) Done(format string, args ...any) { u.line(u.paint(green, "✓")+" ", format, args...) }

// Fail reports a step or check that failed.
func (u *UI) Fail(format string, args ...any) { u.line(u.paint(red, "✗")+" ", format, args...) }

// Warn reports something the user should know.
func (u *UI) Warn(format string, args ...any) {
	u.line(u.paint(yellow, "Warning:")+" ", format, args...)
}

// Info prints a plain line.
func (u *UI) Info(format string, args ...any) { u.line("", format, args...) }

// Heading prints a heading line.
func (u *UI) Heading(format string, args ...any) {
	u.line("", u.paint(bold, fmt.Sprintf(format, args...)))
}

// Mark is ✓ or ✗, colored when allowed.
func (u *UI) Mark(ok bool) string {
	if ok {
		return u.paint(green, "✓")
	}
	return u.paint(red, "✗")
}
