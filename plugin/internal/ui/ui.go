// Package ui writes the plugin's human-facing progress, warnings and check marks to stderr, so
// that stdout stays pipeable. Colors are used only on a terminal, never when NO_COLOR is set to
// anything but the empty string (https://no-color.org) nor when TERM is dumb.
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

// New writes to w, in color when w is a terminal and the environment allows it.
func New(w io.Writer) *UI {
	return &UI{w: w, color: useColor(os.Getenv, isTerminal(w))}
}

// useColor is the decision, apart from the process's environment and streams so that tests
// can make it with any.
func useColor(getenv func(string) string, terminal bool) bool {
	return terminal && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

const (
	green  = "\x1b[32m"
	red    = "\x1b[31m"
	yellow = "\x1b[33m"
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

// Warn reports something the user should know.
func (u *UI) Warn(format string, args ...any) {
	u.line(u.paint(yellow, "Warning:")+" ", format, args...)
}

// Info prints a plain line.
func (u *UI) Info(format string, args ...any) { u.line("", format, args...) }

// Mark is ✓ or ✗, colored when allowed.
func (u *UI) Mark(ok bool) string {
	if ok {
		return u.paint(green, "✓")
	}
	return u.paint(red, "✗")
}
