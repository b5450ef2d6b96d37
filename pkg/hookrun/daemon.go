package hookrun

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/delegate"
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
	// Register registers the container of the init behind pidfd.
	Register func(pidfd int) (uint32, error)
	// Prepared takes the views of container id's tree prepared ahead
	// (a spare's, see caller.Resolver.Reserve), or returns nil.
	Prepared func(id uint32) *mountns.Prepared
	// Ready is how many spares wait for a registration.
	Ready func() int
	// Pid is the pid behind pidfd, in the daemon's pid namespace.
	Pid func(pidfd int) (int, error)
	// Files are the files served under each container's directory, as
	// hook.Entries gives them.
	Files []string
	Log   *slog.Logger
}

// Handle answers a delegation request for the init behind pidfd: the
// answer, and what is left to do once it is sent (the record for remount,
// the outcome's count), which the container's start need not wait for.
func (d *Daemon) Handle(head, body []byte, pidfd int) ([]byte, func()) {
	a, after := d.handle(head, body, pidfd)
	b, err := json.Marshal(a)
	if err != nil { // an Answer always marshals
		b = []byte(`{"fallback":"answer not encoded"}`)
	}
	return b, after
}

func (d *Daemon) handle(head, body []byte, pidfd int) (delegate.Answer, func()) {
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
	// The daemon acts on the process the pidfd names, which the state
	// names by pid: the same process for the daemon as for the runtime
	// only in one pid namespace.
	var s struct {
		Pid int `json:"pid"`
	}
	pid, err := d.Pid(pidfd)
	if err == nil {
		err = json.Unmarshal(state, &s)
	}
	if err != nil || pid != req.Pid || s.Pid != req.Pid {
		return delegate.Answer{Fallback: fmt.Sprintf("the container's init is pid %d in the state, %d for the hook and %d for the daemon (%v): not one pid namespace", s.Pid, req.Pid, pid, err)}, nil
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
	// What runs after the answer logs to the daemon's log.
	var later []func(*slog.Logger)
	o := Options{Root: d.Mountpoint, FailClosed: req.FailClosed, Always: req.Always, StateDir: d.StateDir}
	outcome, err := apply(o, bytes.NewReader(state), log, start, env{
		serving: func(string) error { return nil },
		register: func(log *slog.Logger, root string, pid int) (string, []string, *mountns.Prepared, error) {
			id, err := d.Register(pidfd)
			if err != nil {
				return "", nil, nil, fmt.Errorf("registration refused: %w", err)
			}
			p := d.Prepared(id)
			if p == nil {
				// Registered before (a second run), or the spares
				// ran out meanwhile.
				return "", nil, nil, fmt.Errorf("container %d's views are not prepared", id)
			}
			return filepath.Join(root, ".containers", strconv.FormatUint(uint64(id), 10)), d.Files, p, nil
		},
		later: func(fn func(*slog.Logger)) { later = append(later, fn) },
	})
	var e *ExitError
	if err != nil && !errors.As(err, &e) {
		return delegate.Answer{Fallback: err.Error()}, nil
	}
	a := delegate.Answer{Log: lines.String()}
	switch {
	case err == nil:
	default:
		a.Code, a.Msg = e.Code, e.Msg
	}
	took := time.Since(start)
	return a, func() {
		log := d.Log.With(append(attrs, "pid", req.Pid)...)
		for _, fn := range later {
			fn(log)
		}
		if err := stats.CountHook(d.StateDir, outcome); err != nil {
			log.Debug("outcome not counted", "err", err)
		}
		log.Debug("create-runtime run for a hook", "outcome", outcome, "code", a.Code, "took", took.Round(time.Microsecond))
	}
}
