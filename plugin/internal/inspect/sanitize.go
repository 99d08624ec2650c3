package inspect

import (
	"strings"
	"unicode/utf8"
)

// What inspect prints comes from whoever made the token (any token the user points it at), the
// CA bundle and the remote API server. A value carrying terminal control characters could
// rewrite the user's screen: hide a line, fake a ✓, retitle the window, or worse on some
// terminals. So every such value is cleaned when the report is built, before it is printed or
// encoded (encoding/json escapes C0 controls, but not DEL nor C1 controls).

const (
	esc = 0x1b
	bel = 0x07
	// C1 controls that open a sequence, as ESC followed by '[', 'P', 'X', ']', '^' and '_' do.
	c1CSI = 0x9b
	c1ST  = 0x9c
)

// stripControls removes terminal control characters from s: ANSI escape sequences whole (CSI
// `ESC [ … final`, the strings OSC, DCS, SOS, PM and APC up to their terminator, and other ESC
// sequences), C0 controls but tab and newline, DEL, and C1 controls, in their 7-bit and 8-bit
// forms. Invalid UTF-8 becomes U+FFFD, so that no stray byte reaches the terminal either.
func stripControls(s string) string {
	var b strings.Builder
	rest := s
	for len(rest) > 0 {
		r, size := utf8.DecodeRuneInString(rest)
		rest = rest[size:]
		switch {
		case r == esc:
			rest = skipEscape(rest)
		case r == c1CSI:
			rest = skipCSI(rest)
		case r == 0x90 || r == 0x98 || r == 0x9d || r == 0x9e || r == 0x9f: // DCS, SOS, OSC, PM, APC
			rest = skipString(rest)
		case r == '\t' || r == '\n':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r <= 0x9f):
			// Any other C0 or C1 control, DEL: dropped.
		default:
			b.WriteRune(r) // invalid UTF-8 was decoded as utf8.RuneError, U+FFFD
		}
	}
	return b.String()
}

// oneLine is stripControls for a value printed on one line, or in one cell of a table: tabs and
// newlines become spaces, as a newline in a claim could forge a line of the report.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\t' || r == '\n' {
			return ' '
		}
		return r
	}, stripControls(s))
}

// skipEscape skips what follows an ESC in s.
func skipEscape(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '[':
		return skipCSI(s[1:])
	case ']', 'P', 'X', '^', '_':
		return skipString(s[1:])
	}
	// nF sequences: intermediate bytes (0x20–0x2F), then a final byte (0x30–0x7E). Fp, Fe and
	// Fs sequences are that final byte alone.
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x2f {
		i++
	}
	if i < len(s) && s[i] >= 0x30 && s[i] <= 0x7e {
		i++
	}
	return s[i:]
}

// skipCSI skips a control sequence's parameter and intermediate bytes (0x20–0x3F) and its
// final byte (0x40–0x7E). A malformed sequence ends at the first other byte, which is kept.
func skipCSI(s string) string {
	i := 0
	for i < len(s) && s[i] >= 0x20 && s[i] <= 0x3f {
		i++
	}
	if i < len(s) && s[i] >= 0x40 && s[i] <= 0x7e {
		i++
	}
	return s[i:]
}

// skipString skips a control string (OSC, DCS, SOS, PM, APC) up to and including its
// terminator: ST (ESC \ or its 8-bit form) or BEL, which xterm accepts for OSC. An
// unterminated string runs to the end of s, as a terminal would swallow it.
func skipString(s string) string {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == bel || r == c1ST:
			return s[i+size:]
		case r == esc && i+1 < len(s) && s[i+1] == '\\':
			return s[i+2:]
		}
		i += size
	}
	return ""
}
