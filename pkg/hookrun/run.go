// Package hookrun is create-runtime run in full (the decision, the
// registration, the binds) and the runtime wrapper: lxcfs-fused runs
// create-runtime for the hooks that delegate it (Daemon), lxcfs-hook-cli
// for those the daemon did not run, and lxcfs-runc is the wrapper.
// lxcfs-hook itself, which runtimes run at every container start, does not
// link this: it asks the daemon (pkg/delegate) and hands anything else to
// lxcfs-hook-cli.
package hookrun

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/mountns"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/register"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/remount"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
)

// ExitError ends the process with Code after printing Msg (when not
// empty) on stderr. It is a urfave/cli ExitCoder, so lxcfs-hook-cli's
// create-runtime exits the same way lxcfs-hook does.
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// ExitCode is the process's exit status.
func (e *ExitError) ExitCode() int { return e.Code }

// Run is create-runtime: it reads the OCI state on stdin, decides whether
// the container is served, registers it with the daemon and binds the
// views into it, all in this process. undelegated says why the daemon did
// not run it for the hook ("": not asked). Its errors are *ExitError.
func Run(o hookcmd.Options, undelegated string) error {
	start := time.Now()
	log, closeLog, err := newLogger(o.LogFile, o.LogLevel, os.Stderr)
	if err != nil {
		stats.CountHook(o.StateDir, stats.HookError)
		return &ExitError{2, fmt.Sprintf("lxcfs-hook: %v", err)}
	}
	defer closeLog()
	if undelegated != "" {
		log.Debug("the daemon did not run create-runtime: running it here", "err", undelegated)
	}
	outcome, err := apply(o, os.Stdin, log, start, env{
		serving: hook.Serving,
		register: func(log *slog.Logger, root string, pid int) (registration, error) {
			root, entries := registered(o.StateDir, log, root, pid)
			return registration{root: root, entries: entries}, nil
		},
	})
	countOutcome(o.StateDir, outcome, log)
	return err
}

// env is what create-runtime asks of the world beyond the container: in
// the hook, whether the views root answers and the daemon's registration
// over its socket; in the daemon (Daemon), its own.
type env struct {
	// serving says why root serves no views, or nil.
	serving func(root string) error
	// register registers the container of init pid. An error ends the
	// run unlogged and uncounted: create-runtime is to run elsewhere (the
	// daemon hands it back to the hook).
	register func(log *slog.Logger, root string, pid int) (registration, error)
}

// registration is where a registered container's files are.
type registration struct {
	root    string   // the root of the files to bind
	entries []string // the files served there (nil: list them)
	// prepared are their views, when they were made ahead.
	prepared *mountns.Prepared
	// startTicks is the init's start time when the registration read it
	// (0: not read).
	startTicks uint64
}

// countOutcome counts a run's outcome for the daemon's metrics.
func countOutcome(stateDir string, outcome stats.Outcome, log *slog.Logger) {
	if err := stats.CountHook(stateDir, outcome); err != nil {
		log.Debug("outcome not counted", "err", err)
	}
}

// apply is create-runtime after its logger: the state read from stdin, the
// views bound as decided. It returns the outcome to count, and an
// *ExitError for a run that fails.
func apply(o hookcmd.Options, stdin io.Reader, log *slog.Logger, start time.Time, e env) (stats.Outcome, error) {
	root := o.Root
	fail := func(msg string, args ...any) error {
		log.Error(msg, args...)
		return &ExitError{Code: 1}
	}

	state, err := hook.ParseState(stdin)
	if err != nil {
		return stats.HookError, fail("cannot read the container state", "err", err)
	}
	log = log.With("container", state.ID, "pid", state.Pid)
	spec, err := hook.LoadConfig(state.Bundle)
	if err != nil {
		return stats.HookError, fail("cannot load the container config", "err", err)
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
	if o.Always {
		mode = hook.ModeAlways
	}
	d := hook.Decide(annotations, mode, o.FailClosed)
	if !d.Serve {
		log.Info("container not served", "reason", d.Reason)
		return stats.Skipped, nil
	}
	if err := e.serving(root); err != nil {
		if d.Required {
			return stats.FailedClosed, fail("views not served and required (--fail-closed or io.lxcfs.required=true): refusing to start the container", "root", root, "err", err)
		}
		log.Warn("views not served: the container starts with the host's /proc and /sys files", "root", root, "err", err)
		return stats.NotServing, nil
	}
	reg, err := e.register(log, root, state.Pid)
	if err != nil {
		return 0, err
	}
	root, entries, prepared := reg.root, reg.entries, reg.prepared
	if prepared != nil {
		defer prepared.Close() // unless attached
	}
	if entries == nil {
		entries, err = hook.List(root)
	}
	if err != nil {
		if d.Required {
			return stats.FailedClosed, fail("cannot list the served views", "root", root, "err", err)
		}
		log.Warn("cannot list the served views: the container starts with the host's files", "root", root, "err", err)
		return stats.NotServing, nil
	}
	mounts := hook.Plan(root, entries...)
	rootfs := hook.RootfsPath(state.Bundle, spec)
	if rootfs == "" {
		return stats.HookError, fail("config.json has no root.path", "bundle", state.Bundle)
	}
	var res mountns.Result
	if prepared != nil {
		res, err = prepared.Attach(state.Pid, rootfs, 0)
	} else {
		res, err = mountns.Attach(state.Pid, rootfs, mounts, 0)
	}
	for _, m := range res.Mounted {
		log.Debug("mounted", "target", m.Target, "source", m.Source)
	}
	for _, s := range res.Skipped {
		log.Info("skipped", "target", s.Target, "reason", s.Reason)
	}
	if err != nil {
		if errors.Is(err, mountns.ErrRefused) {
			return stats.Refused, fail("refusing to mount", "rootfs", rootfs, "mounted", len(res.Mounted), "err", err)
		}
		if d.Required {
			return stats.FailedClosed, fail("mounting the views failed", "rootfs", rootfs, "mounted", len(res.Mounted), "err", err)
		}
		log.Warn("mounting the views failed: the container starts with some host files", "rootfs", rootfs, "mounted", len(res.Mounted), "err", err)
		return stats.MountFailed, nil
	}
	recordServed(o.StateDir, log, state.ID, state.Pid, reg.startTicks, root, res.Mounted)
	log.Info("views mounted", "reason", d.Reason, "rootfs", rootfs, "mounted", targets(res.Mounted), "skipped", len(res.Skipped), "took", time.Since(start).Round(time.Microsecond))
	return stats.Served, nil
}

// registered registers the container with the daemon and returns the root
// of its own files (ROOT/.containers/ID), answered for it whoever reads
// them, with the files the daemon serves there when it says (nil: list
// them); or root, the files every container shares, answered per reader's
// pid namespace, when the daemon does not register (an older release,
// LXCFS).
func registered(stateDir string, log *slog.Logger, root string, pid int) (string, []string) {
	sock := filepath.Join(stateDir, register.SocketName)
	id, files, err := register.Register(sock, pid, time.Second)
	if err != nil {
		log.Info("the daemon did not register the container: binding the shared files (containers sharing a pid namespace may see each other's figures)", "err", err)
		return root, nil
	}
	own := filepath.Join(root, ".containers", strconv.FormatUint(uint64(id), 10))
	// Not a round trip more than the binds make: they look these names
	// up anyway, and find them in the kernel's cache after this.
	if _, err := os.Stat(filepath.Join(own, "proc")); err != nil {
		log.Warn("the daemon registered the container but serves no files for it: binding the shared files", "dir", own, "err", err)
		return root, nil
	}
	return own, files
}

// recordServed remembers a container whose views were mounted, for remount:
// init pid, started at start (0: read it). A failure only costs the
// automatic re-attach, so it is a warning.
func recordServed(stateDir string, log *slog.Logger, id string, pid int, start uint64, root string, mounted []hook.Mount) {
	if len(mounted) == 0 {
		return
	}
	paths := make([]string, len(mounted))
	for i, m := range mounted {
		paths[i] = m.Target
	}
	var err error
	if start == 0 {
		start, err = remount.StartTicks(pid)
	}
	if err == nil {
		root, err = filepath.Abs(root)
	}
	if err == nil {
		err = remount.Save(stateDir, remount.Record{
			ID: id, Pid: pid, StartTicks: start, Root: root, Targets: paths,
		})
	}
	if err != nil {
		log.Warn("cannot record the container; its views will not be re-attached automatically if the daemon's connection is lost", "err", err)
	}
}

func targets(ms []hook.Mount) string {
	t := make([]string, len(ms))
	for i, m := range ms {
		t[i] = m.Target
	}
	return strings.Join(t, ",")
}
