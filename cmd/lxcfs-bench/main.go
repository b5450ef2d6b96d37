// Command lxcfs-bench measures lxcfs-fused side by side with LXCFS: read
// throughput and latency per file, the daemons' CPU time per read, how both
// behave with hundreds of containers, and what lxcfs-hook adds to a container
// start. Both daemons run in the same invocation and are measured
// alternately, so the ratios hold even where absolute figures drift.
//
//	lxcfs-bench [flags]                       the whole suite (make bench)
//	lxcfs-bench reader                        a container-side reader (internal)
//	lxcfs-bench static-server --mountpoint D  the static-file floor (internal)
//
// It must run as root: it mounts FUSE, creates cgroups and pid namespaces.
package main

import (
	"fmt"
	"os"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
)

func main() {
	var err error
	switch {
	case len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version"):
		fmt.Println("lxcfs-bench version", version.String())
	case len(os.Args) > 1 && os.Args[1] == "reader":
		err = readerMain(os.Args[2:])
	case len(os.Args) > 1 && os.Args[1] == "static-server":
		err = staticServerMain(os.Args[2:])
	default:
		err = driverMain(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lxcfs-bench:", err)
		os.Exit(1)
	}
}
