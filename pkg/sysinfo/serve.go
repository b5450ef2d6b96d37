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
	// Only one computing of figures per listener at a time: if one is stuck
	// past the timeout, the next calls are continued at once rather than
	// piling up goroutines behind it.
	var busy atomic.Bool
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
			rerr = recvNotif(fd, &n)
			if rerr != nil {
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
		s.Slots.set(l.Slot, n.ID)
		s.answer(fd, &n, l, &busy)
		s.Slots.clear(l.Slot, n.ID)
		s.inFlight.Add(-1)
	}
}

func (s *Server) answer(fd int, n *notif, l Listener, busy *atomic.Bool) {
	if n.Data.Arch != nativeArch || n.Data.Nr != unix.SYS_SYSINFO || !busy.CompareAndSwap(false, true) {
		s.cont(fd, n.ID)
		return
	}
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer busy.Store(false)
		host, err := Host()
		if err != nil {
			done <- result{err: err}
			return
		}
		v, err := s.Figures(l.InitPid, l.StartTicks, host)
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{b: Encode(v)}
	}()
	var r result
	timer := time.NewTimer(s.Timeout)
	select {
	case r = <-done:
		timer.Stop()
	case <-timer.C:
		s.timedOut.Add(1)
		s.Log.Warn("sysinfo: figures not ready in time; the call gets the host's", "init", l.InitPid, "timeout", s.Timeout)
		s.cont(fd, n.ID)
		return
	}
	if r.err != nil {
		s.Log.Debug("sysinfo: no container figures; the call gets the host's", "init", l.InitPid, "err", r.err)
		s.cont(fd, n.ID)
		return
	}
	switch err := writeAnswer(fd, n.ID, n.Pid, n.Data.Args[0], r.b); {
	case err == nil:
		s.answered.Add(1)
	case errors.Is(err, errGone):
	default:
		s.Log.Debug("sysinfo: cannot answer; the call gets the host's", "tid", n.Pid, "err", err)
		s.cont(fd, n.ID)
	}
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
