package fusefs

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"bazil.org/fuse"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/pollwake"
)

// Triggerer is a Renderer whose files take PSI triggers, as the kernel's
// /proc/pressure files do: a program opens one for writing, writes a
// trigger ("some 150000 1000000"), and polls the file for POLLPRI.
//
// Trigger registers spec, written by pid, on the real file behind name for
// container who (the handle's, found at open, never the writer's now) and
// returns the file the kernel tied the trigger to. An error carrying a
// syscall.Errno is answered with that errno.
type Triggerer interface {
	Triggerable(name string) bool
	Trigger(name string, who uint32, pid int, spec []byte) (*os.File, error)
}

// A trigger is a kernel file descriptor the daemon holds, and each armed
// privileged trigger costs the kernel a timer and a polling thread's work,
// so their number is bounded: per container, and in all. The kernel bounds
// them only by the opener's file limit, which the daemon's is.
const (
	DefaultTriggerLimit = 32
	DefaultTriggerTotal = 1024
)

// defaultPollMask is what the kernel answers for a file that can always be
// read and written (DEFAULT_POLLMASK): a served file's answer to poll.
const defaultPollMask = fuse.PollIn | fuse.PollOut | fuse.PollReadNormal | fuse.PollWriteNormal

// trigger is one handle's registered trigger.
type trigger struct {
	who  uint32
	file *os.File
	key  uint64 // its epoll data

	mu     sync.Mutex
	fired  bool // epoll saw it fire (and so consumed the event) since the last POLL
	wakeup fuse.PollWakeup
	polled bool // wakeup is the kernel's handle for a waiting poller
	slot   int  // where wakeup is kept for the supervisor (FS.Polls), or -1
}

// triggers is a connection's registered triggers, watched by one epoll
// instance and one goroutine.
type triggers struct {
	mu      sync.Mutex
	byFH    map[fuse.HandleID]*trigger
	byKey   map[uint64]*trigger
	perWho  map[uint32]int
	nextKey uint64
	epfd    int // -1 until the first trigger
	polls   *pollwake.Table
	wake    int // an eventfd in epfd (key 0) that ends watchTriggers
	closed  bool
}

func (s *server) triggerLimits() (limit, total int) {
	limit, total = s.fs.TriggerLimit, s.fs.TriggerTotal
	if limit <= 0 {
		limit = DefaultTriggerLimit
	}
	if total <= 0 {
		total = DefaultTriggerTotal
	}
	return limit, total
}

// isTrigger reports whether n takes triggers.
func (s *server) isTrigger(n *node) bool {
	return s.fs.Triggers && s.fs.tr != nil && !n.pt && !n.dir && s.fs.tr.Triggerable(n.name)
}

// openTrigger opens a pressure file for writing. The handle names the
// opener's container, as a reading handle does; the trigger is registered
// at the WRITE, against that container.
func (s *server) openTrigger(nr ref, r *fuse.OpenRequest) {
	who := nr.who
	if who == 0 {
		who = s.owner(nr, r.Pid)
	}
	r.Respond(&fuse.OpenResponse{Handle: fileHandle(who, s.nextFH.Add(1)), Flags: fuse.OpenDirectIO | openNoFlush})
}

// writeTrigger registers the trigger written to a pressure file's handle.
// A handle takes one trigger, as in the kernel (EBUSY after).
func (s *server) writeTrigger(r *fuse.WriteRequest) {
	nr, ok := s.ref(r.Hdr().Node)
	who, tagged := handleOwner(r.Handle)
	if !ok || !tagged || !s.isTrigger(nr.n) {
		r.RespondError(errno(syscall.EROFS))
		return
	}
	t := &s.trig
	limit, total := s.triggerLimits()
	t.mu.Lock()
	switch {
	case t.closed:
		t.mu.Unlock()
		r.RespondError(errno(syscall.ENODEV))
		return
	case t.byFH[r.Handle] != nil:
		t.mu.Unlock()
		r.RespondError(errno(syscall.EBUSY))
		return
	case t.perWho[who] >= limit || len(t.byFH) >= total:
		t.mu.Unlock()
		s.fs.log.Warn("PSI trigger refused: too many", "file", nr.n.name, "container", who, "limit", limit, "total", total)
		r.RespondError(errno(syscall.EMFILE))
		return
	}
	if t.epfd < 0 {
		if err := t.start(); err != nil {
			t.mu.Unlock()
			s.fs.log.Warn("PSI triggers: cannot watch", "err", err)
			r.RespondError(errnoOf(err))
			return
		}
		go s.watchTriggers(t.epfd)
	}
	// Reserved before the kernel is asked, so concurrent writes cannot
	// pass the limits together.
	tg := &trigger{who: who, slot: -1}
	t.byFH[r.Handle] = tg
	t.perWho[who]++
	t.mu.Unlock()

	f, err := s.fs.tr.Trigger(nr.n.name, who, int(r.Pid), r.Data)
	if err == nil {
		tg.mu.Lock()
		tg.file = f
		tg.mu.Unlock()
		err = t.watch(tg)
	}
	if err != nil {
		s.fs.log.Debug("PSI trigger not registered", "file", nr.n.name, "container", who, "err", err)
		t.remove(r.Handle)
		r.RespondError(errnoOf(err))
		return
	}
	r.Respond(&fuse.WriteResponse{Size: len(r.Data)})
}

// start creates the epoll instance and the eventfd that stops its
// watcher (closing an epoll file does not end a wait on it). t.mu is held.
func (t *triggers) start() error {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return err
	}
	t.epfd, t.wake = epfd, wake
	return nil
}

// watch adds tg's file to the epoll instance.
func (t *triggers) watch(tg *trigger) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return syscall.ENODEV
	}
	t.nextKey++
	tg.key = t.nextKey
	ev := unix.EpollEvent{Events: unix.EPOLLPRI | unix.EPOLLET, Fd: int32(tg.key), Pad: int32(tg.key >> 32)}
	if err := unix.EpollCtl(t.epfd, unix.EPOLL_CTL_ADD, int(tg.file.Fd()), &ev); err != nil {
		return err
	}
	t.byKey[tg.key] = tg
	return nil
}

// remove forgets handle fh's trigger and closes its file, which takes it
// off the epoll instance and unregisters it in the kernel.
func (t *triggers) remove(fh fuse.HandleID) {
	t.mu.Lock()
	tg := t.byFH[fh]
	if tg == nil {
		t.mu.Unlock()
		return
	}
	delete(t.byFH, fh)
	delete(t.byKey, tg.key)
	if t.perWho[tg.who]--; t.perWho[tg.who] <= 0 {
		delete(t.perWho, tg.who)
	}
	t.mu.Unlock()
	tg.mu.Lock()
	f := tg.file
	tg.file = nil
	slot := tg.slot
	tg.slot = -1
	tg.mu.Unlock()
	if f != nil {
		f.Close()
	}
	t.polls.Release(slot)
}

// watchTriggers waits for triggers to fire and wakes the kernel's pollers.
// Reading the event from the kernel consumes it (a PSI file reports POLLPRI
// once per event), so it is kept in the trigger for the POLL that follows.
func (s *server) watchTriggers(epfd int) {
	t := &s.trig
	events := make([]unix.EpollEvent, 64)
	for {
		n, err := linux.EpollWait(epfd, events, -1)
		if err != nil {
			s.fs.log.Warn("PSI triggers: epoll wait failed; triggers no longer wake pollers", "err", err)
			return
		}
		for _, ev := range events[:n] {
			key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if key == 0 { // closeTriggers
				unix.Close(t.wake)
				unix.Close(epfd)
				return
			}
			t.mu.Lock()
			tg := t.byKey[key]
			t.mu.Unlock()
			if tg == nil {
				continue
			}
			tg.mu.Lock()
			tg.fired = true
			wake, polled := tg.wakeup, tg.polled
			tg.mu.Unlock()
			if polled {
				if err := s.conn.NotifyPollWakeup(wake); err != nil && !errors.Is(err, fuse.ErrNotCached) {
					s.fs.log.Debug("poll wakeup failed", "err", err)
				}
			}
		}
	}
}

// poll answers a POLL. A handle with a trigger answers what the trigger's
// file does (POLLPRI once per event) and has the kernel woken when it
// fires. A pressure handle without one answers as the kernel's file does
// with no trigger: POLLERR|POLLPRI, which is also what a program whose
// trigger was lost (the worker holding it was replaced) gets, so that it
// registers again. Any other file is always ready, like a regular file.
func (s *server) poll(r *fuse.PollRequest) {
	if !s.fs.Triggers || s.fs.tr == nil {
		r.RespondError(errno(syscall.ENOSYS))
		return
	}
	t := &s.trig
	t.mu.Lock()
	tg := t.byFH[r.Handle]
	t.mu.Unlock()
	var armed bool
	if tg != nil {
		tg.mu.Lock()
		armed = tg.file != nil
		tg.mu.Unlock()
	}
	if !armed {
		nr, ok := s.ref(r.Hdr().Node)
		if ok && s.isTrigger(nr.n) {
			r.Respond(&fuse.PollResponse{REvents: defaultPollMask | fuse.PollError | fuse.PollPriority})
			return
		}
		r.Respond(&fuse.PollResponse{REvents: defaultPollMask})
		return
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if w, ok := r.Wakeup(); ok {
		tg.wakeup, tg.polled = w, true
		// Kept where the supervisor finds it if this worker dies before
		// the trigger fires; the file's handle is the same at every POLL.
		// A released trigger (file nil) has given its slot back.
		if tg.slot < 0 && tg.file != nil {
			tg.slot = t.polls.Claim()
		}
		t.polls.Set(tg.slot, w.Handle())
		if f := pollScheduled.Load(); f != nil {
			(*f)()
		}
	}
	if tg.file == nil { // released meanwhile
		r.Respond(&fuse.PollResponse{REvents: defaultPollMask | fuse.PollError | fuse.PollPriority})
		return
	}
	fds := []unix.PollFd{{Fd: int32(tg.file.Fd()), Events: unix.POLLIN | unix.POLLOUT | unix.POLLPRI}}
	var rev fuse.PollEvents
	if _, err := unix.Poll(fds, 0); err == nil {
		rev = fuse.PollEvents(uint16(fds[0].Revents))
		if rev&fuse.PollIn != 0 {
			rev |= fuse.PollReadNormal
		}
		if rev&fuse.PollOut != 0 {
			rev |= fuse.PollWriteNormal
		}
	} else {
		rev = defaultPollMask | fuse.PollError
	}
	if tg.fired {
		rev |= fuse.PollPriority
		tg.fired = false
	}
	r.Respond(&fuse.PollResponse{REvents: rev})
}

// pollScheduled, when set (by tests), is called when a poller asks to be
// woken.
var pollScheduled atomic.Pointer[func()]

// releaseTrigger drops the trigger of a handle being released.
func (s *server) releaseTrigger(fh fuse.HandleID) { s.trig.remove(fh) }

// closeTriggers drops every trigger when the connection ends.
func (s *server) closeTriggers() {
	t := &s.trig
	t.mu.Lock()
	t.closed = true
	fhs := make([]fuse.HandleID, 0, len(t.byFH))
	for fh := range t.byFH {
		fhs = append(fhs, fh)
	}
	started := t.epfd >= 0
	t.mu.Unlock()
	for _, fh := range fhs {
		t.remove(fh)
	}
	if started {
		// The watcher closes both files once it reads this.
		unix.Write(t.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}
