// Command lxcfs-hook-cli is the full command line of lxcfs-hook, an OCI
// createRuntime hook that bind-mounts the container-aware /proc and /sys
// files served by lxcfs-fused (or LXCFS) over a container's own, for any
// OCI runtime (runc, crun) and any engine that runs hooks (podman and
// CRI-O through hooks.d). lxcfs-hook, which runtimes run at every container
// start, only asks lxcfs-fused to run create-runtime and hands everything
// else to this binary beside it: create-runtime when the daemon does not
// run it, and every other command line (inject, configure, remount,
// --help, ...), so the hook does not load urfave/cli, the engines'
// configuration editors, create-runtime itself and what they link.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookrun"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

// DefaultLogFile is the hook's log file.
const DefaultLogFile = hookcmd.DefaultLogFile

func main() {
	// The wrapper is lxcfs-runc, a binary of its own; this one is it too
	// when started under its name (lxcfs-hook hands it an lxcfs-runc link
	// from an older install).
	if rt, ok := hookcmd.RuntimeForName(os.Args[0]); ok {
		os.Exit(hookrun.RunWrapper(rt, wrapper.Config{}, "", os.Args[1:]))
	}
	if err := newApp().Run(os.Args); err != nil {
		// cli.Exit errors are printed by the app; anything else is printed here.
		var ec cli.ExitCoder
		if !errors.As(err, &ec) {
			fmt.Fprintln(os.Stderr, "lxcfs-hook:", err)
			os.Exit(1)
		}
	}
}

// hookFlags are accepted before the command (`lxcfs-hook --always
// create-runtime`) and after it, because hooks.d files and hand-written
// configs put them on either side.
func hookFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:  "lxcfs-root",
			Value: hook.DefaultRoot,
			Usage: "directory where lxcfs-fused (or LXCFS) serves proc/ and sys/; its files are bound over the container's",
		},
		&cli.BoolFlag{
			Name:  "fail-closed",
			Usage: "fail the hook, so the container does not start, when the views cannot be served (default: warn and start the container with the host's files); the annotation io.lxcfs.required=true does the same per container",
		},
		&cli.BoolFlag{
			Name:  "always",
			Usage: "serve every container that runs the hook unless its annotations say io.lxcfs.enabled=false (for hooks written into config.json by hand or by the inject command); without it a container must carry io.lxcfs.enabled=true or io.kubernetes.lxcfs.enabled=true",
		},
		&cli.StringFlag{
			Name:  "log-file",
			Value: DefaultLogFile,
			Usage: "file every outcome is appended to (with the container id), besides stderr; when it cannot be opened, the systemd journal or syslog is used; \"-\" logs to stderr only",
		},
		&cli.StringFlag{
			Name:  "log-level",
			Value: "info",
			Usage: "least severe level logged: debug, info, warn or error",
		},
		stateDirFlag(),
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "lxcfs-hook",
		Usage:   "OCI hook that bind-mounts container-aware /proc and /sys views into containers",
		Version: version.String(),
		Description: `As a createRuntime hook, lxcfs-hook reads the OCI state on stdin and the
bundle's config.json, decides whether the container is served, checks that
the views are being served at --lxcfs-root (a live FUSE mount, from
lxcfs-fused or LXCFS), registers the container with lxcfs-fused (a pidfd of
its init over STATE-DIR/register.sock), joins the container's mount namespace
and binds every file under ROOT/.containers/ID/proc, the container's own
files (ROOT/proc when the daemon does not register: LXCFS, an older
lxcfs-fused), and the directory .../sys/devices/system/cpu (only its online
file where the daemon serves no possible file there) read-only over the same
path in the container. Targets missing in the container, and a CPU
directory the runtime masked with a tmpfs, are skipped.

When lxcfs-fused serves --lxcfs-root with the same --state-dir, the hook
asks it to do all of that instead (the daemon keeps container IDs with their
files ready ahead of the start), writes the log lines it answers with (they
carry run_by=lxcfs-fused) and exits with its status; it does the work itself
when the daemon cannot or does not answer.

Opt-in: a container is served when it has the annotation io.lxcfs.enabled=true
(or PouchContainer's io.kubernetes.lxcfs.enabled=true), or, with --always,
unless it has io.lxcfs.enabled=false.

For podman and CRI-O install hooks.d/lxcfs.json ("lxcfs-hook configure
podman"); for runc or crun by hand, run "lxcfs-hook inject --bundle DIR"; for
Docker and containerd, register the runtime wrapper lxcfs-runc ("lxcfs-hook
configure docker", "configure containerd"; see "lxcfs-hook runtime --help").`,
		Flags:                hookFlags(),
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			{
				Name:    "create-runtime",
				Aliases: []string{"createRuntime", "prestart"},
				Usage:   "run as the OCI createRuntime (or prestart) hook: OCI state on stdin",
				Description: `Mounts the views into the container whose state is on stdin. Exits 0 when
the container is not opted in, and, unless --fail-closed or the annotation
io.lxcfs.required=true, when the views are not being served (the container
then sees the host's files; a warning is logged). Exits non-zero when the
hook refuses to act because it would touch the host (state.pid not in a
container of its own, a symlinked rootfs or target).`,
				Flags: hookFlags(),
				Action: func(c *cli.Context) error {
					return hookrun.Run(hookOptionsFrom(c), os.Getenv(hookcmd.EnvUndelegated))
				},
			},
			{
				Name:  "inject",
				Usage: "add lxcfs-hook as a createRuntime hook to a bundle's config.json (for runc or crun by hand)",
				Description: `Adds {"path": HOOK, "args": ["lxcfs-hook", "--lxcfs-root", ROOT, "--always",
"create-runtime"], "timeout": 5} to hooks.createRuntime of BUNDLE/config.json.
Idempotent: running it twice changes nothing; an entry with the same path is
updated. Every other key of the file is kept, in order; the file is replaced
atomically. Unless the bundle has io.lxcfs.sysinfo=false (or --sysinfo=false
is given and the bundle lacks io.lxcfs.sysinfo=true), it also adds
{"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"} to linux.seccomp.syscalls
and linux.seccomp.listenerPath = STATE-DIR/sysinfo.sock, keeping the
container's own profile (a minimal allow-all one when it has none), when
lxcfs-fused listens there: runc fails a container whose listener it cannot
reach.`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Required: true, Usage: "OCI bundle directory holding config.json"},
					&cli.StringFlag{Name: "hook-path", Usage: "absolute path the runtime runs the hook from (default: this binary's absolute path)"},
					&cli.StringFlag{Name: "lxcfs-root", Value: hook.DefaultRoot, Usage: "views directory written into the hook's arguments"},
					&cli.BoolFlag{Name: "always", Value: true, Usage: "write --always into the hook's arguments, so the container is served without an annotation (--always=false: only with io.lxcfs.enabled=true)"},
					&cli.BoolFlag{Name: "fail-closed", Usage: "write --fail-closed into the hook's arguments"},
					&cli.StringFlag{Name: "log-file", Usage: "write --log-file FILE into the hook's arguments (default: the hook's own default, " + DefaultLogFile + ")"},
					&cli.StringFlag{Name: "state-dir", Usage: "write --state-dir DIR into the hook's arguments (default: the hook's own default, /run/lxcfs-oci)"},
					&cli.BoolFlag{Name: "sysinfo", Value: true, Usage: "also send the container's sysinfo(2) to lxcfs-fused's listener, STATE-DIR/sysinfo.sock (a seccomp rule added to its profile), when it listens, unless the bundle has io.lxcfs.sysinfo=false; --sysinfo=false: only with io.lxcfs.sysinfo=true"},
				},
				Action: inject,
			},
			remountCommand(),
			runtimeCommand(),
			configureCommand(),
			manCommand(),
			writeLogCommand(),
		},
	}
}

// setFlag finds the context where a flag was given, looking at the command
// first and then its parents, since the flags exist on both levels.
func setFlag(c *cli.Context, name string) *cli.Context {
	for _, x := range c.Lineage() {
		if x.IsSet(name) {
			return x
		}
	}
	return c
}

func inject(c *cli.Context) error {
	bundle := c.String("bundle")
	hookPath := c.String("hook-path")
	if hookPath == "" {
		exe, err := hookrun.HookBinary()
		if err != nil {
			return cli.Exit(fmt.Sprintf("lxcfs-hook inject: find this binary's path: %v; pass --hook-path", err), 1)
		}
		hookPath = exe
	}
	hookPath, err := filepath.Abs(hookPath)
	if err != nil {
		return cli.Exit(fmt.Sprintf("lxcfs-hook inject: %v", err), 1)
	}
	args := wrapper.HookArgs(wrapper.HookOptions{LXCFSRoot: c.String("lxcfs-root"), Always: c.Bool("always"), FailClosed: c.Bool("fail-closed"), LogFile: c.String("log-file"), StateDir: c.String("state-dir")})
	configPath := filepath.Join(bundle, "config.json")
	changed, err := hook.Inject(configPath, hookPath, args)
	if err != nil {
		return cli.Exit(fmt.Sprintf("lxcfs-hook inject: %v", err), 1)
	}
	if changed {
		fmt.Fprintf(c.App.Writer, "added createRuntime hook %s to %s\n", hookPath, configPath)
	} else {
		fmt.Fprintf(c.App.Writer, "%s already has the hook; nothing changed\n", configPath)
	}
	spec, err := hook.LoadConfig(bundle)
	if err != nil {
		return cli.Exit(fmt.Sprintf("lxcfs-hook inject: %v", err), 1)
	}
	if hook.WantSysinfo(spec.Annotations, c.Bool("sysinfo")) {
		sock := hookrun.SysinfoSocket(c.String("state-dir"))
		// The runtime fails a container whose listener it cannot reach.
		if err := hook.SysinfoListening(sock); err != nil {
			fmt.Fprintf(c.App.Writer, "sysinfo: not added, lxcfs-fused is not listening at %s (%v): the container gets the host's sysinfo\n", sock, err)
			return nil
		}
		changed, reason, err := hook.InjectSysinfo(configPath, sock)
		if err != nil {
			return cli.Exit(fmt.Sprintf("lxcfs-hook inject: %v", err), 1)
		}
		fmt.Fprintf(c.App.Writer, "sysinfo: %s (listener %s, changed: %v)\n", reason, sock, changed)
	}
	return nil
}

// writeLogCommand writes the log lines on stdin where --log-file says, for
// lxcfs-hook, which wrote them on stderr already but could not open the
// file and links neither the journal nor syslog; it then exits with
// --exit-code, the hook's.
func writeLogCommand() *cli.Command {
	return &cli.Command{
		Name:   hookcmd.WriteLogCommand,
		Usage:  "write the log lines on stdin to --log-file, else the journal, else syslog (lxcfs-hook runs it)",
		Hidden: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "log-file", Value: DefaultLogFile},
			&cli.IntFlag{Name: "exit-code"},
		},
		Action: func(c *cli.Context) error {
			lines, err := io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
			if err != nil {
				return cli.Exit(fmt.Sprintf("lxcfs-hook: read the log lines: %v", err), 1)
			}
			hookrun.WriteLines(c.String("log-file"), string(lines), io.Discard)
			if code := c.Int("exit-code"); code != 0 {
				return cli.Exit("", code)
			}
			return nil
		},
	}
}
