// Package version reports Strata's version, set at link time by the Makefile.
package version

// Version is Strata's own version (git describe), "dev" when built by plain go build.
var Version = "dev"
