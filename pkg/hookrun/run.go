// Package hookrun is what lxcfs-hook does at container start, shared by the
// two binaries behind the lxcfs-hook command: lxcfs-hook, which runtimes
// run at every container start and which therefore links only this (the
// createRuntime hook and the lxcfs-runc runtime wrapper), and
// lxcfs-hook-cli, the full command line (inject, configure, remount, help)
// that lxcfs-hook hands every other command line to.
package hookrun

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
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

// Main runs the hook and returns the exit status, having printed what the
// runtime shows the user on failure.
func Main(o Options) int {
	err := Run(o)
	if err == nil {
		return 0
	}
	var e *ExitError
	if errors.As(err, &e) {
		if e.Msg != "" {
			fmt.Fprintln(os.Stderr, e.Msg)
		}
		return e.Code
	}
	fmt.Fprintln(os.Stderr, "lxcfs-hook:", err)
	return 1
}

// Run is create-runtime: it reads the OCI state on stdin, decides whether
// the container is served, registers it with the daemon and binds the
// views into it. Its errors are *ExitError.
func Run(o Options) error {
	start := time.Now()
	root, failClosed, always, stateDir := o.Root, o.FailClosed, o.Always, o.StateDir
	// Every run counts its outcome for the daemon's metrics; set before
	// each return below.
	outcome := stats.HookError
	log, closeLog, err := newLogger(o.LogFile, o.LogLevel, os.Stderr)
	if err != nil {
		stats.CountHook(stateDir, outcome)
		return &ExitError{2, fmt.Sprintf("lxcfs-hook: %v", err)}
	}
	defer closeLog()
	defer func() {
		if err := stats.CountHook(stateDir, outcome); err != nil {
			log.Debug("outcome not counted", "err", err)
		}
	}()

	fail := func(msg string, args ...any) error {
		log.Error(msg, args...)
		return &ExitError{Code: 1}
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
	root, entries := registered(stateDir, log, root, state.Pid)
	if entries == nil {
		entries, err = hook.List(root)
	}
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
	res, err := mountns.Attach(state.Pid, rootfs, mounts, 0)
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
	recordServed(stateDir, log, state.ID, state.Pid, root, res.Mounted)
	outcome = stats.Served
	log.Info("views mounted", "reason", d.Reason, "rootfs", rootfs, "mounted", targets(res.Mounted), "skipped", len(res.Skipped), "took", time.Since(start).Round(time.Microsecond))
	return nil
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

// recordServed remembers a container whose views were mounted, for remount.
// A failure only costs the automatic re-attach, so it is a warning.
func recordServed(stateDir string, log *slog.Logger, id string, pid int, root string, mounted []hook.Mount) {
	if len(mounted) == 0 {
		return
	}
	paths := make([]string, len(mounted))
	for i, m := range mounted {
		paths[i] = m.Target
	}
	start, err := remount.StartTicks(pid)
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
