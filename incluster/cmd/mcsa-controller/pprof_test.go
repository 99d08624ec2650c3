package main

import "testing"

func TestLoopbackOnly(t *testing.T) {
	tests := []struct {
		addr string
		ok   bool
	}{
		{"", true},
		{"127.0.0.1:6060", true},
		{"[::1]:6060", true},
		{"localhost:6060", true},
		{":6060", false},
		{"0.0.0.0:6060", false},
		{"10.0.0.5:6060", false},
		{"example.com:6060", false},
		{"127.0.0.1", false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			if err := loopbackOnly(tt.addr); (err == nil) != tt.ok {
				t.Errorf("loopbackOnly(%q) = %v, want ok %v", tt.addr, err, tt.ok)
			}
		})
	}
}
