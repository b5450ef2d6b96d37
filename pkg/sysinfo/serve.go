package sysinfo

import (
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// Figures computes a container's sysinfo: the container is the one whose
// init has host pid initPid and started startTicks clock ticks after boot
// (see content.Files.Sysinfo). An error lets the real call run.
type Figures func(initPid int, startTicks uint64, host view.Sysinfo) (view.Sysinfo, error)

// Listener is one container's notification fd as registered: the fd, the
// container it belongs to, and its slot in Slots.
type Listener struct {
	File       *os.File
	Slot       int
	InitPid    int
	StartTicks uint64
}

// Server answers the notifications of any number of listeners, each on a
// goroutine of its own that takes one call at a time: a container that
// calls sysinfo from many threads queues behind itself, and shares only the
// CPU with other containers' answers.
type Server struct {
	Figures Figures
	// Timeout bounds the computing of one answer; past it the call is
	// continued (the host's figures). A stuck cgroup read never blocks a
	// container longer than this.
	Timeout time.Duration
	Slots   *Slots // records each listener's call in progress; nil: none
	Log     *slog.Logger

	// Taken, when set, runs between taking a call and recording it (only
	// the tests' builds set it, to wedge a worker there).
	Taken func()

	stopping atomic.Bool
	inFlight atomic.Int64
	answered atomic.Uint64
	timedOut atomic.Uint64
	contd    atomic.Uint64
}

// Stats are counters for logs and tests.
func (s *Server) Stats() (answered, continued, timedOut uint64) {
	return s.answered.Load(), s.contd.Load(), s.timedOut.Load()
}

// Serve answers l's notifications until every task using its filter has
// exited (then l.File is closed) or Drain is called.
func (s *Server) Serve(l Listener) {
	defer l.File.Close()
	rc, err := l.File.SyscallConn()
	if err != nil {
		s.Log.Warn("sysinfo: cannot poll a notification fd; its container's sysinfo calls wait for another worker", "init", l.InitPid, "err", err)
		return
	}
	// Only one computing of figures per listener at a time: a call whose
	// figures were abandoned past the timeout leaves its computing running,
	// and the next call waits for it (within its own timeout) rather than
	// piling up goroutines behind it.
	gate := make(chan struct{}, 1)
	fb := &fallbacks{log: s.Log, initPid: l.InitPid}
	warned := false
	// The fd as the callback gets it: File.Fd would make the file blocking.
	var fd int
	for !s.stopping.Load() {
		var n notif
		var hup bool
		var rerr error
		err := rc.Read(func(rawFd uintptr) bool {
			fd = int(rawFd)
			if s.stopping.Load() {
				hup = true
				return true
			}
			p := []unix.PollFd{{Fd: int32(rawFd), Events: unix.POLLIN}}
			k, err := unix.Poll(p, 0)
			if err != nil || k == 0 {
				return false // wait for the kernel to queue a call
			}
			if p[0].Revents&unix.POLLIN == 0 {
				hup = true // POLLHUP: no task uses the filter any more
				return true
			}
			s.inFlight.Add(1)
			s.Slots.taking(l.Slot, true)
			rerr = recvNotif(fd, &n)
			if rerr != nil {
				s.Slots.taking(l.Slot, false)
				s.inFlight.Add(-1)
			}
			return true
		})
		if err != nil || hup {
			return
		}
		if rerr != nil {
			if errors.Is(rerr, unix.ENOENT) || errors.Is(rerr, unix.EINTR) {
				continue // the caller was killed between the wake-up and the receive
			}
			// Not an error the kernel documents for a valid fd: keep trying,
			// slowly, rather than leave the container's calls waiting.
			if !warned {
				warned = true
				s.Log.Warn("sysinfo: receiving a notification failed; retrying", "init", l.InitPid, "err", rerr)
			}
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if s.Taken != nil {
			s.Taken()
		}
		s.Slots.set(l.Slot, n.ID)
		s.Slots.taking(l.Slot, false)
		s.answer(fd, &n, l, gate, fb)
		s.Slots.clear(l.Slot, n.ID)
		s.inFlight.Add(-1)
	}
}

// answer computes the figures for call n on listener l, at most one
// computing at a time (gate, a one-slot semaphore), and writes them into
// the caller; any way it fails, the call is continued (the host's
// figures) and fb logs why.
func (s *Server) answer(fd int, n *notif, l Listener, gate chan struct{}, fb *fallbacks) {
	if n.Data.Arch != nativeArch || n.Data.Nr != unix.SYS_SYSINFO {
		s.cont(fd, n.ID) // not a call this daemon answers: nothing falls back
		return
	}
	timer := time.NewTimer(s.Timeout)
	defer timer.Stop()
	// The previous call's computing may still hold the gate: one abandoned
	// past its timeout, or one that has sent its result and not yet let go
	// (a goroutine descheduled under load between the two). Wait for it
	// within this call's timeout rather than fall back at once.
	select {
	case gate <- struct{}{}:
	case <-timer.C:
		s.timedOut.Add(1)
		fb.note("the previous call's figures are still being computed past the timeout", "timeout", s.Timeout)
		s.cont(fd, n.ID)
		return
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		if host, err := Host(); err != nil {
			r.err = err
		} else if v, err := s.Figures(l.InitPid, l.StartTicks, host); err != nil {
			r.err = err
		} else {
			r.b = Encode(v)
		}
		<-gate // let go before the result is seen: the next call finds the gate free
		done <- r
	}()
	var r result
	select {
	case r = <-done:
	case <-timer.C:
		s.timedOut.Add(1)
		fb.note("figures not ready in time", "timeout", s.Timeout)
		s.cont(fd, n.ID)
		return
	}
	if r.err != nil {
		fb.note("no container figures", "err", r.err)
		s.cont(fd, n.ID)
		return
	}
	switch err := writeAnswer(fd, n.ID, n.Pid, n.Data.Args[0], r.b); {
	case err == nil:
		s.answered.Add(1)
	case errors.Is(err, errGone):
	default:
		fb.note("cannot write the answer into the caller", "tid", n.Pid, "err", err)
		s.cont(fd, n.ID)
	}
}

// fallbackLogEvery spaces the warnings of one listener's fallbacks: a
// container whose figures cannot be computed (its cgroup unreadable) falls
// back on every call, and its warnings must not flood the log.
const fallbackLogEvery = time.Minute

// fallbacks logs, for one listener, why its calls got the host's figures:
// the first at once, then at most one warning per fallbackLogEvery with the
// count of those not logged. Used by the listener's goroutine only.
type fallbacks struct {
	log     *slog.Logger
	initPid int
	last    time.Time
	quiet   uint64 // fallbacks since the last warning, not logged
}

func (f *fallbacks) note(reason string, args ...any) {
	now := time.Now()
	if !f.last.IsZero() && now.Sub(f.last) < fallbackLogEvery {
		f.quiet++
		return
	}
	f.log.Warn("sysinfo: the call gets the host's figures: "+reason, append([]any{"init", f.initPid, "not_logged_since_last", f.quiet}, args...)...)
	f.last, f.quiet = now, 0
}

func (s *Server) cont(fd int, id uint64) {
	s.contd.Add(1)
	if err := Continue(fd, id); err != nil && !errors.Is(err, unix.ENOENT) {
		s.Log.Warn("sysinfo: cannot continue a call", "err", err)
	}
}

// Drain stops taking calls and waits, at most limit, for those in progress
// to be answered: a worker retired for an upgrade leaves nothing behind.
func (s *Server) Drain(limit time.Duration) {
	s.stopping.Store(true)
	for deadline := time.Now().Add(limit); s.inFlight.Load() > 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
}
