package ui

import (
	"bytes"
	"strings"
	"testing"
)

func TestPlainOutput(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		write func(*UI)
		want  string
	}{
		{"done", nil, func(u *UI) { u.Done("installed in %s", "cluster1") }, "✓ installed in cluster1\n"},
		{"fail", nil, func(u *UI) { u.Fail("no CA") }, "✗ no CA\n"},
		{"warn", nil, func(u *UI) { u.Warn("careful") }, "Warning: careful\n"},
		{"step", nil, func(u *UI) { u.Step("waiting…") }, "• waiting…\n"},
		{"NO_COLOR", map[string]string{"NO_COLOR": "1"}, func(u *UI) { u.Done("x") }, "✓ x\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var b bytes.Buffer
			tt.write(New(&b))
			if b.String() != tt.want || strings.Contains(b.String(), "\x1b[") {
				t.Fatalf("got %q, want %q", b.String(), tt.want)
			}
		})
	}
}

func TestColorOnlyWhenAllowed(t *testing.T) {
	u := &UI{color: true}
	if got := u.Mark(true); got != green+"✓"+reset {
		t.Fatalf("colored mark = %q", got)
	}
	if colorFor(&bytes.Buffer{}) {
		t.Fatal("color on something that is not a terminal")
	}
}
