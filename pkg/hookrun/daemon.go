package hookrun

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/delegate"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/mountns"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
)

// Daemon runs create-runtime inside lxcfs-fused for the hooks that
// delegate it (pkg/delegate): the same run as the hook's (apply), with the
// daemon's own registration and files, its log lines sent back for the
// hook to write where its flags say.
type Daemon struct {
	Mountpoint string // the views root served (absolute)
	StateDir   string // absolute
	// Register registers the container of init pid, behind pidfd, and
	// returns its ID and the init's start time (caller.Resolver's
	// RegisterProcess).
	Register func(pid, pidfd int) (uint32, uint64, error)
	// Prepared takes the views of container id's tree prepared ahead
	// (a spare's, see caller.Resolver.Reserve), or returns nil.
	Prepared func(id uint32) *mountns.Prepared
	// Ready is how many spares wait for a registration.
	Ready func() int
	// Files are the files served under each container's directory, as
	// hook.Entries gives them.
	Files []string
	Log   *slog.Logger
}

// Handle answers a delegation request from the hook whose pid is peer: the
// answer, and what is left to do once it is sent (the outcome's count),
// which the container's start need not wait for. The record for remount is
// written before the answer, as by the hook: a daemon restarted right
// after the start re-attaches the container from it.
func (d *Daemon) Handle(head, body []byte, peer int) ([]byte, func()) {
	a, after := d.handle(head, body, peer)
	return delegate.AppendAnswer(nil, a), after
}

func (d *Daemon) handle(head, body []byte, peer int) (delegate.Answer, func()) {
	start := time.Now()
	req, state, err := delegate.Decode(head, body)
	if err != nil {
		return delegate.Answer{Fallback: err.Error()}, nil
	}
	// Another views root (the hook binds LXCFS, or a second daemon's) or
	// state directory (another daemon's counts and records) is not this
	// daemon's to serve.
	if req.Root != d.Mountpoint || req.StateDir != d.StateDir {
		return delegate.Answer{Fallback: fmt.Sprintf("the hook's views root %s and state directory %s are not this daemon's (%s, %s)", req.Root, req.StateDir, d.Mountpoint, d.StateDir)}, nil
	}
	// The state names the container's init by pid as the runtime sees it,
	// which is the hook's pid namespace: the same process for the daemon
	// only in the same one.
	if err := samePidNS(peer); err != nil {
		return delegate.Answer{Fallback: err.Error()}, nil
	}
	// Views not prepared ahead would be looked up on the daemon's own
	// mount by the daemon itself: the hook does that.
	if d.Ready() == 0 {
		return delegate.Answer{Fallback: "no spare container ID ready (a burst of starts)"}, nil
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(req.LogLevel)); err != nil {
		return delegate.Answer{Fallback: fmt.Sprintf("--log-level %q: want debug, info, warn or error", req.LogLevel)}, nil
	}
	var lines bytes.Buffer
	attrs := []any{"hook", "lxcfs-hook", "version", version.String(), "run_by", "lxcfs-fused"}
	log := slog.New(slog.NewTextHandler(&lines, &slog.HandlerOptions{Level: lvl})).With(attrs...)
	o := hookcmd.Options{Root: d.Mountpoint, FailClosed: req.FailClosed, Always: req.Always, StateDir: d.StateDir}
	outcome, err := apply(o, bytes.NewReader(state), log, start, env{
		serving: func(string) error { return nil },
		register: func(log *slog.Logger, root string, pid int) (registration, error) {
			pidfd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				return registration{}, fmt.Errorf("pidfd_open %d: %w", pid, err)
			}
			defer unix.Close(pidfd)
			id, start, err := d.Register(pid, pidfd)
			if err != nil {
				return registration{}, fmt.Errorf("registration refused: %w", err)
			}
			p := d.Prepared(id)
			if p == nil {
				// Registered before (a second run), or the spares
				// ran out meanwhile.
				return registration{}, fmt.Errorf("container %d's views are not prepared", id)
			}
			return registration{
				root:       filepath.Join(root, ".containers", strconv.FormatUint(uint64(id), 10)),
				entries:    d.Files,
				prepared:   p,
				startTicks: start,
			}, nil
		},
	})
	var e *ExitError
	if err != nil && !errors.As(err, &e) {
		return delegate.Answer{Fallback: err.Error()}, nil
	}
	a := delegate.Answer{Log: lines.String()}
	if e != nil {
		a.Code, a.Msg = e.Code, e.Msg
	}
	took := time.Since(start)
	return a, func() {
		log := d.Log.With(attrs...)
		if err := stats.CountHook(d.StateDir, outcome); err != nil {
			log.Debug("outcome not counted", "err", err)
		}
		log.Debug("create-runtime run for a hook", "outcome", outcome, "code", a.Code, "took", took.Round(time.Microsecond))
	}
}

// ownPidNS is this process's pid namespace, which never changes.
var ownPidNS = sync.OnceValues(func() (string, error) { return os.Readlink("/proc/self/ns/pid") })

// samePidNS checks that process peer (the hook) is in this process's pid
// namespace.
func samePidNS(peer int) error {
	mine, err := ownPidNS()
	if err != nil {
		return fmt.Errorf("the daemon's own pid namespace: %w", err)
	}
	theirs, err := os.Readlink("/proc/" + strconv.Itoa(peer) + "/ns/pid")
	if err != nil {
		return fmt.Errorf("the hook's pid namespace: %w", err)
	}
	if theirs != mine {
		return fmt.Errorf("the hook is in pid namespace %s, the daemon in %s: the state's pids are not the daemon's", theirs, mine)
	}
	return nil
}
