// Command lxcfs-hook is an OCI createRuntime hook that bind-mounts the
// container-aware /proc and /sys files served by lxcfs-fused (or LXCFS) over
// a container's own, for any OCI runtime (runc, crun) and any engine that
// runs hooks (podman and CRI-O through hooks.d, Docker and containerd
// through lxcfs-runc).
//
// Runtimes run it at every container start, and a Go program's start costs
// it for every package it links, called or not. So this binary does one
// thing: it has lxcfs-fused run create-runtime for it (pkg/delegate) and
// writes the answer. Everything else is lxcfs-hook-cli beside it, which
// this binary becomes (exec, under the name lxcfs-hook): create-runtime
// when the daemon does not run it (no lxcfs-fused, LXCFS, a burst of starts
// beyond the daemon's spare IDs, another pid namespace), and every other
// command line (inject, configure, remount, --help, --version). Measured
// on a 2-CPU VM, linking all of that made the hook's life inside `runc run`
// 0.4-1.9 ms longer (docs/benchmarks.md).
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/delegate"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
)

// delegateWithin bounds the wait for the daemon's answer: past it,
// lxcfs-hook-cli runs create-runtime, which skips views already mounted
// live.
const delegateWithin = 30 * time.Second

func main() {
	// An install from before lxcfs-runc was a binary of its own links it
	// to this one: lxcfs-hook-cli is the wrapper too.
	if _, wrapper := hookcmd.RuntimeForName(os.Args[0]); !wrapper {
		if o, ok := hookcmd.Parse(os.Args[1:]); ok {
			os.Exit(createRuntime(o))
		}
	}
	os.Exit(execCLI(os.Args[0], os.Args[1:], nil, "", "every command but create-runtime"))
}

// createRuntime has the daemon run create-runtime and returns the hook's
// exit status, or hands the run to lxcfs-hook-cli.
func createRuntime(o hookcmd.Options) int {
	// One byte over a request's bound: a state that long is not
	// delegated, and lxcfs-hook-cli refuses it as it would any.
	state, err := io.ReadAll(io.LimitReader(os.Stdin, delegate.MaxRequest+1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "lxcfs-hook: read the container state from stdin:", err)
		stats.CountHook(o.StateDir, stats.HookError)
		return 2
	}
	a, err := ask(o, state)
	if err != nil {
		return execCLI("lxcfs-hook", os.Args[1:], state, err.Error(),
			fmt.Sprintf("the daemon did not run create-runtime (%v), and lxcfs-hook-cli, which runs it then, could not be run", err))
	}
	os.Stderr.WriteString(a.Log)
	if o.LogFile != "-" && o.LogFile != "" && a.Log != "" {
		f, err := hookcmd.OpenLogFile(o.LogFile)
		if err != nil {
			// The journal and syslog, where the lines go then, are
			// lxcfs-hook-cli's.
			if a.Msg != "" {
				fmt.Fprintln(os.Stderr, a.Msg)
			}
			args := []string{hookcmd.WriteLogCommand, "--log-file", o.LogFile, "--exit-code", strconv.Itoa(a.Code)}
			return execCLI("lxcfs-hook", args, []byte(a.Log), "",
				fmt.Sprintf("open log file %s: %v; the lines are on stderr only", o.LogFile, err))
		}
		hookcmd.WriteRecords(f, a.Log)
		f.Close()
	}
	if a.Msg != "" {
		fmt.Fprintln(os.Stderr, a.Msg)
	}
	return a.Code
}

// ask sends the state to the daemon and returns its answer: an error when
// it did not run create-runtime.
func ask(o hookcmd.Options, state []byte) (delegate.Answer, error) {
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return delegate.Answer{}, err
	}
	stateDir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return delegate.Answer{}, err
	}
	req := delegate.Request{Root: root, StateDir: stateDir, LogLevel: o.LogLevel, FailClosed: o.FailClosed, Always: o.Always}
	return delegate.Ask(filepath.Join(stateDir, delegate.SocketName), req, state, delegateWithin)
}

// execCLI replaces this process with lxcfs-hook-cli beside it, started as
// argv0 with args, stdin (when not nil) as its standard input and
// undelegated (when set) as why the daemon did not run create-runtime. It
// returns only on failure, having said what failed: what, for the user.
func execCLI(argv0 string, args []string, stdin []byte, undelegated, what string) int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lxcfs-hook: %s: find this binary's path, to run %s beside it: %v\n", what, hookcmd.CLIName, err)
		return 127
	}
	cli := filepath.Join(filepath.Dir(exe), hookcmd.CLIName)
	if stdin != nil {
		// The state (or the lines) this process read, for the next
		// program to read again from the start.
		f, err := linux.Memfd("lxcfs-hook-stdin", int64(len(stdin)))
		if err == nil {
			if _, err = f.WriteAt(stdin, 0); err == nil {
				err = unix.Dup3(int(f.Fd()), 0, 0)
			}
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "lxcfs-hook: %s: hand the input on to %s: %v\n", what, hookcmd.CLIName, err)
			return 127
		}
	}
	env := os.Environ()
	if undelegated != "" {
		env = append(env, hookcmd.EnvUndelegated+"="+undelegated)
	}
	err = syscall.Exec(cli, append([]string{argv0}, args...), env)
	fmt.Fprintf(os.Stderr, "lxcfs-hook: %s: %s is not there (make install puts it beside lxcfs-hook): %v\n", what, cli, err)
	return 127
}
