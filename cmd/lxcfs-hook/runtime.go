package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/remount"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
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
("lxcfs-hook configure docker" or "configure containerd"). The same binary
acts as the wrapper when started as lxcfs-runc (or lxcfs-crun, which wraps
crun), the name "make install" links to it, since engines take a runtime as a
bare path without arguments.

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
STATE-DIR/sysinfo.sock: for served containers with "sysinfo": true (or
--sysinfo) unless io.lxcfs.sysinfo=false, and for those with
io.lxcfs.sysinfo=true or LXCFS_SYSINFO=true. The container's own profile is
kept; the rule is added only while lxcfs-fused listens.

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
			&cli.BoolFlag{Name: "sysinfo", Usage: "send served containers' sysinfo(2) to lxcfs-fused (STATE-DIR/sysinfo.sock) unless io.lxcfs.sysinfo=false; without it only containers with io.lxcfs.sysinfo=true (or LXCFS_SYSINFO=true)"},
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
				Sysinfo:    c.Bool("sysinfo"),
			}
			if c.NArg() == 0 {
				return cli.Exit("lxcfs-hook runtime: no runtime arguments; usage: lxcfs-hook runtime [flags] -- create --bundle DIR ID", 2)
			}
			os.Exit(runWrapper("", flags, c.String("config"), c.Args().Slice()))
			return nil
		},
	}
}

// runWrapper prepares the bundle when args create a container and then
// replaces this process with the real runtime. It returns only on failure,
// with the exit code.
func runWrapper(nameRuntime string, flags wrapper.Config, configFile string, args []string) int {
	if configFile == "" {
		configFile = wrapper.ConfigFile(os.Getenv)
	}
	var file wrapper.Config
	if configFile != "" {
		var err error
		if file, err = wrapper.LoadConfigFile(configFile); err != nil {
			// Guessing another runtime than the admin configured could
			// run containers under the wrong one: refuse, loudly.
			fmt.Fprintf(os.Stderr, "lxcfs-runc: %v\n", err)
			return 1
		}
	}
	c, err := wrapper.Resolve(flags, wrapper.FromEnv(os.Getenv), file, wrapper.Config{Runtime: nameRuntime, LXCFSRoot: hook.DefaultRoot})
	if err != nil {
		fmt.Fprintf(os.Stderr, "lxcfs-runc: configuration (flags, $%s, $%s, %s): %v\n", wrapper.EnvRuntime, wrapper.EnvMode, configFile, err)
		return 1
	}
	runtimePath, err := findRuntime(c.Runtime)
	if err != nil {
		fmt.Fprintf(os.Stderr, "lxcfs-runc: %v\n", err)
		return 1
	}
	if wrapper.AsksVersion(args) {
		return printVersions(runtimePath, c.Runtime, args)
	}
	if inv := wrapper.Parse(args); inv.Creates() {
		if err := prepareBundle(c, inv); err != nil {
			// prepareBundle logged it; only a fail-closed setup stops here.
			return 1
		}
	}
	argv := append([]string{c.Runtime}, args...)
	err = syscall.Exec(runtimePath, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "lxcfs-runc: exec %s: %v\n", runtimePath, err)
	return 1
}

// printVersions runs the real runtime's version query, its output untouched
// (engines parse it: Docker's "docker info" shows runc's version and
// commit), then says which build of the wrapper runs in front of it. The
// added line holds no "version" word, since Docker's parser takes the last
// line holding one as the runtime's.
func printVersions(runtimePath, name string, args []string) int {
	cmd := exec.Command(runtimePath, args...)
	cmd.Args[0] = name
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if cmd.ProcessState != nil {
			return cmd.ProcessState.ExitCode()
		}
		fmt.Fprintf(os.Stderr, "lxcfs-runc: run %s: %v\n", runtimePath, err)
		return 1
	}
	fmt.Printf("lxcfs-runc: lxcfs-oci %s in front of %s\n", version.String(), runtimePath)
	return 0
}

// findRuntime resolves the real runtime and refuses this binary, which
// would exec itself forever (a config naming lxcfs-runc, or a lxcfs-runc
// installed as "runc" ahead of the real one on $PATH).
func findRuntime(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("runtime %q: %w; install it or set \"runtime\" in %s (or $%s) to its path", name, err, wrapper.DefaultConfigFile, wrapper.EnvRuntime)
	}
	self, err := os.Executable()
	if err == nil {
		a, errA := os.Stat(p)
		b, errB := os.Stat(self)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "", fmt.Errorf("runtime %q (%s) is this wrapper itself; set \"runtime\" in %s (or $%s) to the real runc or crun", name, p, wrapper.DefaultConfigFile, wrapper.EnvRuntime)
		}
	}
	return p, nil
}

// prepareBundle adds the hook to the bundle's config.json when the
// container is served. It fails only when the setup is fail-closed; any
// other problem is logged and the container starts without the views.
func prepareBundle(c wrapper.Config, inv wrapper.Invocation) error {
	start := time.Now()
	bundle := inv.Bundle
	if bundle == "" {
		bundle = "." // the runtime's own default
	}
	log, closeLog := wrapperLogger(c.LogFile, os.Stderr)
	defer closeLog()
	log = log.With("command", inv.Command, "bundle", bundle)
	failClosed := c.FailClosed
	fail := func(msg string, err error) error {
		if failClosed {
			log.Error(msg+": refusing to create the container (fail-closed)", "err", err)
			return err
		}
		log.Warn(msg+": the container starts without the views", "err", err)
		return nil
	}
	spec, err := hook.LoadConfig(bundle)
	if err != nil {
		return fail("cannot read the bundle's config", err)
	}
	var env []string
	if spec.Process != nil {
		env = spec.Process.Env
	}
	plan := wrapper.Decide(c, spec.Annotations, env)
	failClosed = failClosed || plan.Required
	if !plan.Inject {
		log.Info("container not served: no hook added", "reason", plan.Reason)
		return nil
	}
	hookPath := c.HookPath
	if hookPath == "" {
		if hookPath, err = os.Executable(); err != nil {
			return fail("cannot find this binary's path for the hook; set hookPath in the config", err)
		}
	}
	changed, err := hook.Inject(filepath.Join(bundle, "config.json"), hookPath, plan.HookArgs)
	if err != nil {
		return fail("cannot add the hook to config.json", err)
	}
	if plan.Sysinfo {
		addSysinfo(log, filepath.Join(bundle, "config.json"), c.StateDir)
	}
	log.Info("hook added", "reason", plan.Reason, "changed", changed, "took", time.Since(start).Round(time.Microsecond))
	return nil
}

// sysinfoSocket is lxcfs-fused's registration socket in its --state-dir.
func sysinfoSocket(stateDir string) string {
	if stateDir == "" {
		stateDir = remount.DefaultStateDir
	}
	return filepath.Join(stateDir, hook.SysinfoSocketName)
}

// addSysinfo sends the container's sysinfo calls to lxcfs-fused, when it
// listens: the runtime fails a container whose listener it cannot reach,
// so without one the container keeps the host's sysinfo, with a warning.
func addSysinfo(log *slog.Logger, configPath, stateDir string) {
	sock := sysinfoSocket(stateDir)
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		log.Warn("sysinfo not answered for this container: lxcfs-fused is not listening (start it with --sysinfo, the default)", "socket", sock)
		return
	}
	changed, reason, err := hook.InjectSysinfo(configPath, sock)
	if err != nil {
		log.Warn("sysinfo not answered for this container: cannot edit its seccomp profile", "err", err)
		return
	}
	log.Info("sysinfo", "changed", changed, "reason", reason, "socket", sock)
}

// wrapperLogger logs to the log file (or the journal or syslog, as the hook
// does) and only errors to stderr: `runc run` shares stderr with the
// container, and engines show a runtime's stderr only when it fails.
func wrapperLogger(file string, stderr io.Writer) (*slog.Logger, func()) {
	if file == "" {
		file = DefaultLogFile
	}
	handlers := []slog.Handler{slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})}
	closer := func() {}
	if file != "-" {
		if sink, c, err := openSink(file); err == nil {
			handlers = append(handlers, slog.NewTextHandler(sink, nil))
			closer = c
		}
	}
	return slog.New(slog.NewMultiHandler(handlers...)).With("hook", "lxcfs-runc", "version", version.String()), closer
}
