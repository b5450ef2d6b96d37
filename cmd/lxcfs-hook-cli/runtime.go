package main

import (
	"os"

	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookrun"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

const runtimeDescription = `Runs the real OCI runtime (runc by default) with the arguments untouched,
after adding lxcfs-hook as a createRuntime hook to the bundle's config.json
on "create" and "run". Every other command (start, exec, kill, delete, state,
features, checkpoint, ...) is passed straight through: the process replaces
itself with the runtime (exec, no fork), so signals, exit codes, stdio and
file descriptors are the runtime's own.

This is how engines that read no hooks.d (Docker, containerd, Kubernetes on
containerd) get the views: register the wrapper as a runtime
("lxcfs-hook configure docker" or "configure containerd"). The wrapper is
lxcfs-runc, which "make install" puts beside lxcfs-hook (linked as
lxcfs-crun it wraps crun), since engines take a runtime as a bare path
without arguments.

Which containers get the hook: in mode "all" (default) every container
created through the wrapper, unless it opts out with the annotation
io.lxcfs.enabled=false or the environment variable LXCFS_ENABLED=false; in
mode "opt-in" only those with io.lxcfs.enabled=true (or
io.kubernetes.lxcfs.enabled=true) or LXCFS_ENABLED=true. The environment
variables exist because Docker before 24 cannot set annotations. A container
that is not served gets no hook at all. LXCFS_REQUIRED=true, like the
annotation io.lxcfs.required=true, stops the container from starting when
the views are not served.

sysinfo(2) (busybox free and uptime, sysconf(_SC_PHYS_PAGES)) is answered
by lxcfs-fused when the wrapper adds a seccomp rule sending it to
STATE-DIR/sysinfo.sock: for every served container unless
io.lxcfs.sysinfo=false or LXCFS_SYSINFO=false; with "sysinfo": false (or
--sysinfo=false) only for those with io.lxcfs.sysinfo=true or
LXCFS_SYSINFO=true. The container's own profile is kept; the rule is added
only while lxcfs-fused listens.

Configuration, most important first: these flags; the environment
(LXCFS_RUNTIME, LXCFS_MODE); the JSON file named by LXCFS_RUNTIME_CONFIG
("none" for no file), else ` + wrapper.DefaultConfigFile + `, for example
  {"runtime": "/usr/bin/crun", "mode": "opt-in", "lxcfsRoot": "/var/lib/lxcfs",
   "failClosed": false, "hookPath": "/usr/local/bin/lxcfs-hook",
   "logFile": "/var/log/lxcfs-hook.log", "stateDir": "/run/lxcfs-oci",
   "sysinfo": true}
(unknown keys are an error). The wrapper writes nothing to stdout; what it
did on create goes to the log file, and errors to stderr too. When the hook
cannot be added the container starts without it (and a warning is logged),
unless fail-closed.`

func runtimeCommand() *cli.Command {
	return &cli.Command{
		Name:        "runtime",
		Usage:       "act as a runc-compatible runtime that adds the hook on create: lxcfs-hook runtime [flags] -- RUNTIME-ARGS...",
		ArgsUsage:   "-- RUNTIME-ARGS...",
		Description: runtimeDescription,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "runtime", Usage: "the real runtime, a name on $PATH or a path (default: runc)"},
			&cli.StringFlag{Name: "mode", Usage: `"all" (every container unless it opts out) or "opt-in" (default: all)`},
			&cli.StringFlag{Name: "config", Usage: "config file (default: $" + wrapper.EnvConfig + ", else " + wrapper.DefaultConfigFile + ")"},
			&cli.StringFlag{Name: "lxcfs-root", Usage: "views directory passed to the hook (default: " + hook.DefaultRoot + ")"},
			&cli.BoolFlag{Name: "fail-closed", Usage: "pass --fail-closed to the hook, and fail create when the hook cannot be added"},
			&cli.StringFlag{Name: "hook-path", Usage: "hook binary written into config.json (default: this binary)"},
			&cli.StringFlag{Name: "log-file", Usage: "log file of the wrapper and the hook (default: " + DefaultLogFile + ")"},
			&cli.StringFlag{Name: "state-dir", Usage: "passed to the hook as --state-dir (default: the hook's)"},
			&cli.BoolFlag{Name: "sysinfo", Value: true, Usage: "send served containers' sysinfo(2) to lxcfs-fused (STATE-DIR/sysinfo.sock), when it listens, unless io.lxcfs.sysinfo=false (or LXCFS_SYSINFO=false); --sysinfo=false: only containers with io.lxcfs.sysinfo=true (or LXCFS_SYSINFO=true)"},
		},
		Action: func(c *cli.Context) error {
			flags := wrapper.Config{
				Runtime:    c.String("runtime"),
				Mode:       c.String("mode"),
				LXCFSRoot:  c.String("lxcfs-root"),
				FailClosed: c.Bool("fail-closed"),
				HookPath:   c.String("hook-path"),
				LogFile:    c.String("log-file"),
				StateDir:   c.String("state-dir"),
			}
			if c.IsSet("sysinfo") {
				on := c.Bool("sysinfo")
				flags.Sysinfo = &on
			}
			if c.NArg() == 0 {
				return cli.Exit("lxcfs-hook runtime: no runtime arguments; usage: lxcfs-hook runtime [flags] -- create --bundle DIR ID", 2)
			}
			os.Exit(hookrun.RunWrapper("", flags, c.String("config"), c.Args().Slice()))
			return nil
		},
	}
}
