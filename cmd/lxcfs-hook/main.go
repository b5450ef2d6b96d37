// Command lxcfs-hook is an OCI createRuntime hook that bind-mounts the
// container-aware /proc and /sys files served by lxcfs-fused (or LXCFS) over
// a container's own, for any OCI runtime (runc, crun) and any engine that
// runs hooks (podman and CRI-O through hooks.d).
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/mountns"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/register"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

// DefaultLogFile is appended to on every run: runtimes throw hook output
// away when the hook succeeds, so stderr alone would lose every warning.
const DefaultLogFile = "/var/log/lxcfs-hook.log"

func main() {
	// Engines run a runtime by bare path, so the wrapper is this binary
	// under another name (make install links lxcfs-runc to it).
	if rt, ok := wrapper.RuntimeForName(os.Args[0]); ok {
		os.Exit(runWrapper(rt, wrapper.Config{}, "", os.Args[1:]))
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
				Flags:  hookFlags(),
				Action: createRuntime,
			},
			{
				Name:  "inject",
				Usage: "add lxcfs-hook as a createRuntime hook to a bundle's config.json (for runc or crun by hand)",
				Description: `Adds {"path": HOOK, "args": ["lxcfs-hook", "--lxcfs-root", ROOT, "--always",
"create-runtime"], "timeout": 5} to hooks.createRuntime of BUNDLE/config.json.
Idempotent: running it twice changes nothing; an entry with the same path is
updated. Every other key of the file is kept, in order; the file is replaced
atomically. With --sysinfo (or the annotation io.lxcfs.sysinfo=true) it also
adds {"names": ["sysinfo"], "action": "SCMP_ACT_NOTIFY"} to
linux.seccomp.syscalls and linux.seccomp.listenerPath = STATE-DIR/sysinfo.sock,
keeping the container's own profile (a minimal allow-all one when it has
none); runc then fails the container if lxcfs-fused does not listen there.`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "bundle", Aliases: []string{"b"}, Required: true, Usage: "OCI bundle directory holding config.json"},
					&cli.StringFlag{Name: "hook-path", Usage: "absolute path the runtime runs the hook from (default: this binary's absolute path)"},
					&cli.StringFlag{Name: "lxcfs-root", Value: hook.DefaultRoot, Usage: "views directory written into the hook's arguments"},
					&cli.BoolFlag{Name: "always", Value: true, Usage: "write --always into the hook's arguments, so the container is served without an annotation (--always=false: only with io.lxcfs.enabled=true)"},
					&cli.BoolFlag{Name: "fail-closed", Usage: "write --fail-closed into the hook's arguments"},
					&cli.StringFlag{Name: "log-file", Usage: "write --log-file FILE into the hook's arguments (default: the hook's own default, " + DefaultLogFile + ")"},
					&cli.StringFlag{Name: "state-dir", Usage: "write --state-dir DIR into the hook's arguments (default: the hook's own default, /run/lxcfs-oci)"},
					&cli.BoolFlag{Name: "sysinfo", Usage: "also send the container's sysinfo(2) to lxcfs-fused's listener, STATE-DIR/sysinfo.sock (a seccomp rule added to its profile), unless the bundle has io.lxcfs.sysinfo=false; without it only with io.lxcfs.sysinfo=true"},
				},
				Action: inject,
			},
			remountCommand(),
			runtimeCommand(),
			configureCommand(),
			manCommand(),
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

func createRuntime(c *cli.Context) error {
	start := time.Now()
	root := setFlag(c, "lxcfs-root").String("lxcfs-root")
	failClosed := setFlag(c, "fail-closed").Bool("fail-closed")
	always := setFlag(c, "always").Bool("always")
	stateDir := setFlag(c, "state-dir").String("state-dir")
	// Every run counts its outcome for the daemon's metrics; set before
	// each return below.
	outcome := stats.HookError
	log, closeLog, err := newLogger(setFlag(c, "log-file").String("log-file"), setFlag(c, "log-level").String("log-level"), os.Stderr)
	if err != nil {
		stats.CountHook(stateDir, outcome)
		return cli.Exit(fmt.Sprintf("lxcfs-hook: %v", err), 2)
	}
	defer closeLog()
	defer func() {
		if err := stats.CountHook(stateDir, outcome); err != nil {
			log.Debug("outcome not counted", "err", err)
		}
	}()

	fail := func(msg string, args ...any) error {
		log.Error(msg, args...)
		return cli.Exit("", 1)
	}

	state, err := hook.ParseState(os.Stdin)
	if err != nil {
		return fail("cannot read the container state", "err", err)
	}
	log = log.With("container", state.ID, "pid", state.Pid)
	spec, err := hook.LoadConfig(state.Bundle)
	if err != nil {
		return fail("cannot load the container config", "err", err)
	}
	annotations := map[string]string{}
	for k, v := range spec.Annotations {
		annotations[k] = v
	}
	// The state's annotations are what the runtime settled on; they win.
	for k, v := range state.Annotations {
		annotations[k] = v
	}
	mode := hook.ModeOptIn
	if always {
		mode = hook.ModeAlways
	}
	d := hook.Decide(annotations, mode, failClosed)
	if !d.Serve {
		outcome = stats.Skipped
		log.Info("container not served", "reason", d.Reason)
		return nil
	}
	if err := hook.Serving(root); err != nil {
		outcome = stats.NotServing
		if d.Required {
			outcome = stats.FailedClosed
			return fail("views not served and required (--fail-closed or io.lxcfs.required=true): refusing to start the container", "root", root, "err", err)
		}
		log.Warn("views not served: the container starts with the host's /proc and /sys files", "root", root, "err", err)
		return nil
	}
	root = registered(c, log, root, state.Pid)
	entries, err := hook.List(root)
	if err != nil {
		outcome = stats.NotServing
		if d.Required {
			outcome = stats.FailedClosed
			return fail("cannot list the served views", "root", root, "err", err)
		}
		log.Warn("cannot list the served views: the container starts with the host's files", "root", root, "err", err)
		return nil
	}
	mounts := hook.Plan(root, entries...)
	rootfs := hook.RootfsPath(state.Bundle, spec)
	if rootfs == "" {
		return fail("config.json has no root.path", "bundle", state.Bundle)
	}
	res, err := mountns.BindReadOnly(state.Pid, rootfs, mounts)
	for _, m := range res.Mounted {
		log.Debug("mounted", "target", m.Target, "source", m.Source)
	}
	for _, s := range res.Skipped {
		log.Info("skipped", "target", s.Target, "reason", s.Reason)
	}
	if err != nil {
		outcome = stats.MountFailed
		if errors.Is(err, mountns.ErrRefused) {
			outcome = stats.Refused
			return fail("refusing to mount", "rootfs", rootfs, "mounted", len(res.Mounted), "err", err)
		}
		if d.Required {
			outcome = stats.FailedClosed
			return fail("mounting the views failed", "rootfs", rootfs, "mounted", len(res.Mounted), "err", err)
		}
		log.Warn("mounting the views failed: the container starts with some host files", "rootfs", rootfs, "mounted", len(res.Mounted), "err", err)
		return nil
	}
	recordServed(c, log, state.ID, state.Pid, root, res.Mounted)
	outcome = stats.Served
	log.Info("views mounted", "reason", d.Reason, "rootfs", rootfs, "mounted", targets(res.Mounted), "skipped", len(res.Skipped), "took", time.Since(start).Round(time.Microsecond))
	return nil
}

// registered registers the container with the daemon and returns the root of
// its own files (ROOT/.containers/ID), answered for it whoever reads them;
// or root, the files every container shares, answered per reader's pid
// namespace, when the daemon does not register (an older release, LXCFS).
func registered(c *cli.Context, log *slog.Logger, root string, pid int) string {
	sock := filepath.Join(setFlag(c, "state-dir").String("state-dir"), register.SocketName)
	id, err := register.Register(sock, pid, time.Second)
	if err != nil {
		log.Info("the daemon did not register the container: binding the shared files (containers sharing a pid namespace may see each other's figures)", "err", err)
		return root
	}
	own := filepath.Join(root, ".containers", strconv.FormatUint(uint64(id), 10))
	if _, err := os.Stat(filepath.Join(own, "proc")); err != nil {
		log.Warn("the daemon registered the container but serves no files for it: binding the shared files", "dir", own, "err", err)
		return root
	}
	return own
}

func targets(ms []hook.Mount) string {
	t := make([]string, len(ms))
	for i, m := range ms {
		t[i] = m.Target
	}
	return strings.Join(t, ",")
}

func inject(c *cli.Context) error {
	bundle := c.String("bundle")
	hookPath := c.String("hook-path")
	if hookPath == "" {
		exe, err := os.Executable()
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
		sock := sysinfoSocket(c.String("state-dir"))
		changed, reason, err := hook.InjectSysinfo(configPath, sock)
		if err != nil {
			return cli.Exit(fmt.Sprintf("lxcfs-hook inject: %v", err), 1)
		}
		fmt.Fprintf(c.App.Writer, "sysinfo: %s (listener %s, changed: %v)\n", reason, sock, changed)
	}
	return nil
}
