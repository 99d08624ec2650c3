// Package version holds the build's version, stamped by the Makefile with -ldflags.
package version

// Version is the release version, e.g. v0.1.0; "dev" for unstamped builds.
var Version = "dev"
