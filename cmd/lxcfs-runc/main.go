// Command lxcfs-runc is the runtime wrapper for Docker and containerd,
// which run a runtime by path and have no hooks of their own: engines run
// it in place of runc, and for a container being created it adds
// lxcfs-hook (beside it) to the bundle's createRuntime hooks as its
// configuration says, then replaces itself with the real runtime. Linked
// as lxcfs-crun it wraps crun. "lxcfs-hook runtime --help" has the
// configuration; "lxcfs-hook configure docker|containerd" registers it.
package main

import (
	"os"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookrun"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

func main() {
	rt, ok := hookcmd.RuntimeForName(os.Args[0])
	if !ok {
		rt = hookcmd.NameRuntimes["lxcfs-runc"]
	}
	os.Exit(hookrun.RunWrapper(rt, wrapper.Config{}, "", os.Args[1:]))
}
