// Command lxcfs-hook is an OCI createRuntime hook that bind-mounts the
// container-aware /proc and /sys files served by lxcfs-fused (or LXCFS) over
// a container's own, for any OCI runtime (runc, crun) and any engine that
// runs hooks (podman and CRI-O through hooks.d); under the name lxcfs-runc
// (or lxcfs-crun) it is the runtime wrapper for Docker and containerd.
//
// Both run at every container start, so this binary links only them
// (pkg/hookrun): every other command line (inject, configure, remount,
// runtime, --help, --version) is handed to lxcfs-hook-cli beside it, which
// holds the urfave/cli command tree and the engines' configuration editors.
// Measured on a 2-CPU VM, a binary linking all of it took 0.4 ms more CPU
// and 0.7-1 ms more wall time to start and exit inside `runc run` than one
// linking only the hook (docs/benchmarks.md).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookrun"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

func main() {
	// Engines run a runtime by bare path, so the wrapper is this binary
	// under another name (make install links lxcfs-runc to it).
	if rt, ok := wrapper.RuntimeForName(os.Args[0]); ok {
		os.Exit(hookrun.RunWrapper(rt, wrapper.Config{}, "", os.Args[1:]))
	}
	if o, ok := hookrun.ParseArgs(os.Args[1:]); ok {
		os.Exit(hookrun.Main(o))
	}
	os.Exit(execCLI(os.Args[1:]))
}

// execCLI replaces this process with lxcfs-hook-cli beside it, under the
// name lxcfs-hook. It returns only on failure.
func execCLI(args []string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lxcfs-hook: find this binary's path, to run %s beside it: %v\n", hookrun.CLIName, err)
		return 1
	}
	cli := filepath.Join(filepath.Dir(exe), hookrun.CLIName)
	err = syscall.Exec(cli, append([]string{"lxcfs-hook"}, args...), os.Environ())
	fmt.Fprintf(os.Stderr, "lxcfs-hook: every command but create-runtime is in %s, which make install puts beside lxcfs-hook: %v\n", cli, err)
	return 127
}
