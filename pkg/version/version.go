// Package version says which build of lxcfs-oci is running, so an operator
// can tell after an upgrade which binary serves and which one a hook ran.
package version

import (
	"runtime/debug"
	"sync"
)

// Version is set at build time by the Makefile:
//
//	-ldflags "-X github.com/lxcfs-oci/lxcfs-oci/pkg/version.Version=$(git describe --always --dirty)"
//
// Left empty (a plain `go build` or `go install`), String falls back to
// what the Go toolchain recorded in the binary.
var Version string

var fromBuild = sync.OnceValue(func() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	return fromBuildInfo(info)
})

// String is the version of this binary: the one set at build time, else the
// commit (and "-dirty" when the tree had changes) the toolchain stamped,
// else the module version (`go install ...@v1.2.3`), else "unknown".
func String() string {
	if Version != "" {
		return Version
	}
	return fromBuild()
}

// fromBuildInfo reads the version from what the toolchain embedded.
func fromBuildInfo(info *debug.BuildInfo) string {
	var rev string
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev != "" {
		// git describe --always abbreviates to at least 7 characters; 12
		// stays unique in any repository this size.
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if dirty {
			rev += "-dirty"
		}
		return rev
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return "unknown"
}
