package supervise

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/sysinfo"
)

// EnvSysinfo passes the sysinfo listener's descriptors to a worker or to
// the re-executed supervisor, beside EnvConn's FUSE connection: the same
// handover, more descriptors. Its value is space-separated key=value items:
//
//	listen=FD        the registration socket (supervisor only)
//	ctl=FD           the worker's end of its control socket (worker only)
//	slots=FD         the worker's slots; for a supervisor, the old worker's
//	l=FD:SLOT:PID:TICKS  one container's notification fd, once per container
const EnvSysinfo = "LXCFS_FUSED_SYSINFO"

// Held is one container's notification fd as the supervisor keeps it.
type Held struct {
	File       *os.File
	Slot       int
	InitPid    int
	StartTicks uint64
}

// SysinfoEnv is EnvSysinfo decoded.
type SysinfoEnv struct {
	Listen, Ctl, Slots *os.File
	Held               []Held
}

func fdItem(key string, fd int) string { return key + "=" + strconv.Itoa(fd) }

// encodeHeld is an l= item.
func encodeHeld(fd int, h Held) string {
	return fmt.Sprintf("l=%d:%d:%d:%d", fd, h.Slot, h.InitPid, h.StartTicks)
}

// DecodeSysinfo parses EnvSysinfo's value into descriptor numbers, checking
// each: nothing is adopted from a malformed value.
func DecodeSysinfo(s string) (listen, ctl, slots int, held []Held, fds []int, err error) {
	listen, ctl, slots = -1, -1, -1
	for item := range strings.FieldsSeq(s) {
		k, v, ok := strings.Cut(item, "=")
		if !ok {
			return 0, 0, 0, nil, nil, fmt.Errorf("%s: item %q: want key=value", EnvSysinfo, item)
		}
		switch k {
		case "listen", "ctl", "slots":
			fd, err := strconv.Atoi(v)
			if err != nil || fd < 3 {
				return 0, 0, 0, nil, nil, fmt.Errorf("%s: %s=%q: want a descriptor above 2", EnvSysinfo, k, v)
			}
			switch k {
			case "listen":
				listen = fd
			case "ctl":
				ctl = fd
			default:
				slots = fd
			}
		case "l":
			parts := strings.Split(v, ":")
			if len(parts) != 4 {
				return 0, 0, 0, nil, nil, fmt.Errorf("%s: l=%q: want FD:SLOT:PID:TICKS", EnvSysinfo, v)
			}
			var n [4]uint64
			for i, p := range parts {
				if n[i], err = strconv.ParseUint(p, 10, 63); err != nil {
					return 0, 0, 0, nil, nil, fmt.Errorf("%s: l=%q: %w", EnvSysinfo, v, err)
				}
			}
			if n[0] < 3 || n[1] >= sysinfo.MaxSlots || n[2] == 0 || n[2] > 1<<22 {
				return 0, 0, 0, nil, nil, fmt.Errorf("%s: l=%q: out of range", EnvSysinfo, v)
			}
			fds = append(fds, int(n[0]))
			held = append(held, Held{Slot: int(n[1]), InitPid: int(n[2]), StartTicks: n[3]})
		default:
			return 0, 0, 0, nil, nil, fmt.Errorf("%s: unknown key %q", EnvSysinfo, k)
		}
	}
	return listen, ctl, slots, held, fds, nil
}

// SysinfoFromEnv adopts what a parent passed in EnvSysinfo; nil when
// nothing was passed. The variable is cleared so children do not inherit it.
// pollable (for a worker) makes the notification fds non-blocking files
// the Go runtime polls, so waiting for calls takes no thread.
func SysinfoFromEnv(pollable bool) (*SysinfoEnv, error) {
	v, ok := os.LookupEnv(EnvSysinfo)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvSysinfo)
	listen, ctl, slots, held, fds, err := DecodeSysinfo(v)
	if err != nil {
		return nil, err
	}
	file := func(fd int, name string) *os.File {
		if fd < 0 {
			return nil
		}
		unix.CloseOnExec(fd)
		return os.NewFile(uintptr(fd), name)
	}
	e := &SysinfoEnv{Listen: file(listen, "sysinfo-listen"), Ctl: file(ctl, "sysinfo-ctl"), Slots: file(slots, "sysinfo-slots")}
	for i, h := range held {
		if pollable {
			unix.SetNonblock(fds[i], true)
		}
		h.File = file(fds[i], "seccomp-notify")
		e.Held = append(e.Held, h)
	}
	return e, nil
}

// Sysinfo is the supervisor's side of the sysinfo listener: the
// registration socket and every container's notification fd, held here so
// that a dying worker does not close them (the kernel would then fail the
// containers' sysinfo calls with ENOSYS), and handed to each new worker and
// across an upgrade like the FUSE connection.
type Sysinfo struct {
	Path string // the registration socket, for logs
	Log  *slog.Logger
	// mu guards the rest: the supervisor's loop registers and sweeps while
	// retiring an upgraded binary's worker runs on its own goroutine.
	mu       sync.Mutex
	listener *net.UnixListener
	held     map[int]Held // by slot
	slots    *sysinfo.Slots
	oldSlots *sysinfo.Slots // the previous binary's worker, recovered once it is retired
	ctl      *os.File       // our end of the current worker's control socket
	regs     chan sysinfo.Registration
	passed   *os.File // the socket's dup kept open across an upgrade's exec
	// OnChange, when set, is told of each container added or dropped (the
	// systemd fd store keeps them).
	OnChange func(h Held, added bool)
	// OnSlots, when set, is given each new worker's slots (the systemd fd
	// store keeps them, so a restarted supervisor can continue the call a
	// worker that died with it had taken).
	OnSlots func(f *os.File)
}

// ListenSysinfo creates the root-only registration socket at path,
// replacing a stale one.
func ListenSysinfo(path string, log *slog.Logger) (*Sysinfo, error) {
	if err := os.MkdirAll(dirOf(path), 0o755); err != nil {
		return nil, fmt.Errorf("sysinfo socket directory: %w", err)
	}
	os.Remove(path)
	old := unix.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen for sysinfo registrations on %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false) // an upgrade passes it on; stop removes it
	return newSysinfo(path, l, log), nil
}

func newSysinfo(path string, l *net.UnixListener, log *slog.Logger) *Sysinfo {
	return &Sysinfo{Path: path, Log: log, listener: l, held: map[int]Held{}, regs: make(chan sysinfo.Registration, 16)}
}

func dirOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i > 0 {
		return p[:i]
	}
	return "."
}

// AdoptSysinfo takes back what the previous binary passed (upgrade) or
// systemd's fd store kept (restart): the socket and the containers.
func AdoptSysinfo(path string, e *SysinfoEnv, log *slog.Logger) (*Sysinfo, error) {
	fl, err := net.FileListener(e.Listen)
	e.Listen.Close()
	if err != nil {
		return nil, fmt.Errorf("adopt the sysinfo socket: %w", err)
	}
	ul, ok := fl.(*net.UnixListener)
	if !ok {
		fl.Close()
		return nil, errors.New("adopt the sysinfo socket: not a unix socket")
	}
	ul.SetUnlinkOnClose(false)
	s := newSysinfo(path, ul, log)
	for _, h := range e.Held {
		s.held[h.Slot] = h
	}
	if e.Slots != nil {
		if s.oldSlots, err = sysinfo.OpenSlots(e.Slots); err != nil {
			log.Warn("sysinfo: cannot map the previous worker's slots; a call it leaves unanswered waits until its caller is signalled", "err", err)
		}
	}
	return s, nil
}

// AddHeld keeps a container taken back from systemd's fd store.
func (s *Sysinfo) AddHeld(h Held) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[h.Slot] = h
}

// AdoptSlots takes the slots of a worker whose supervisor died (systemd's
// fd store kept them) and continues the calls it had taken, once the held
// containers are added.
func (s *Sysinfo) AdoptSlots(f *os.File) {
	old, err := sysinfo.OpenSlots(f)
	if err != nil {
		s.Log.Warn("sysinfo: cannot map the previous worker's slots", "err", err)
		f.Close()
		return
	}
	s.mu.Lock()
	s.oldSlots = old
	s.mu.Unlock()
	s.recoverOld(true) // no worker takes calls yet
}

// accept reads registrations until the listener is closed.
func (s *Sysinfo) accept(procDir string) {
	for {
		c, err := s.listener.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.Log.Warn("sysinfo: accept failed", "err", err)
			continue
		}
		go func() {
			defer c.Close()
			reg, err := sysinfo.ReadRegistration(c, procDir)
			if errors.Is(err, sysinfo.ErrProbe) {
				return
			}
			if err != nil {
				s.Log.Warn("sysinfo: registration refused; that container's sysinfo calls get ENOSYS", "err", err)
				return
			}
			s.regs <- reg
		}()
	}
}

// register keeps a new container and hands it to the running worker.
func (s *Sysinfo) register(reg sysinfo.Registration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := -1
	for i := 0; i < sysinfo.MaxSlots; i++ {
		if _, used := s.held[i]; !used {
			slot = i
			break
		}
	}
	if slot < 0 {
		s.Log.Error("sysinfo: too many containers registered; this one's sysinfo calls get ENOSYS", "container", reg.ContainerID, "max", sysinfo.MaxSlots)
		reg.File.Close()
		return
	}
	h := Held{File: reg.File, Slot: slot, InitPid: reg.InitPid, StartTicks: reg.StartTicks}
	s.held[slot] = h
	s.Log.Info("sysinfo: container registered", "container", reg.ContainerID, "init", reg.InitPid, "slot", slot)
	if s.OnChange != nil {
		s.OnChange(h, true)
	}
	s.send(h)
}

// send passes one container to the running worker over its control socket.
func (s *Sysinfo) send(h Held) {
	if s.ctl == nil {
		return // the next worker gets it at start
	}
	msg := fmt.Sprintf("%d:%d:%d", h.Slot, h.InitPid, h.StartTicks)
	err := unix.Sendmsg(int(s.ctl.Fd()), []byte(msg), unix.UnixRights(int(h.File.Fd())), nil, unix.MSG_DONTWAIT)
	if err != nil {
		// The worker is gone or not reading; the next one gets it at start.
		s.Log.Warn("sysinfo: cannot hand a container to the worker", "slot", h.Slot, "err", err)
	}
}

// sweep drops the containers whose tasks have all exited: the kernel
// reports POLLHUP on a notification fd whose filter nobody uses.
func (s *Sysinfo) sweep() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for slot, h := range s.held {
		p := []unix.PollFd{{Fd: int32(h.File.Fd()), Events: unix.POLLIN}}
		if n, err := unix.Poll(p, 0); err == nil && n > 0 && p[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0 {
			h.File.Close()
			delete(s.held, slot)
			if s.OnChange != nil {
				s.OnChange(h, false)
			}
		}
	}
}

// workerFiles returns the descriptors a new worker gets, numbered from
// first, and EnvSysinfo's value for them. It opens the worker's control
// socket and slots.
func (s *Sysinfo) workerFiles(first int) ([]*os.File, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("sysinfo control socket: %w", err)
	}
	slots, err := sysinfo.NewSlots()
	if err != nil {
		unix.Close(pair[0])
		unix.Close(pair[1])
		return nil, "", err
	}
	if s.ctl != nil {
		s.ctl.Close()
	}
	// The last call ids taken go on from worker to worker (Slots.Recover).
	if s.slots != nil {
		slots.CopyLast(s.slots)
		s.slots.Close()
	} else {
		slots.CopyLast(s.oldSlots)
	}
	s.ctl, s.slots = os.NewFile(uintptr(pair[0]), "sysinfo-ctl"), slots
	if s.OnSlots != nil {
		s.OnSlots(slots.File())
	}
	theirs := os.NewFile(uintptr(pair[1]), "sysinfo-ctl-worker")
	files := []*os.File{theirs, slots.File()}
	items := []string{fdItem("ctl", first), fdItem("slots", first+1)}
	for _, h := range s.held {
		items = append(items, encodeHeld(first+len(files), h))
		files = append(files, h.File)
	}
	return files, strings.Join(items, " "), nil
}

// workerDied continues what the dead worker was answering (see
// sysinfo.Slots) and stops handing it containers.
func (s *Sysinfo) workerDied() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.slots != nil {
		// The next worker starts after this: no one else takes calls.
		if n := s.slots.Recover(s.fds(), true); n > 0 {
			s.Log.Info("sysinfo: calls the dead worker had taken continued with the host's figures", "calls", n)
		}
	}
	if s.ctl != nil {
		s.ctl.Close()
		s.ctl = nil
	}
}

// retired is told the previous binary's worker is gone.
func (s *Sysinfo) retired() {
	// The new binary's worker is taking calls meanwhile: a call the
	// previous one took without recording it cannot be told from its own.
	s.recoverOld(false)
}

func (s *Sysinfo) recoverOld(scan bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oldSlots != nil {
		if n := s.oldSlots.Recover(s.fds(), scan); n > 0 {
			s.Log.Info("sysinfo: calls the previous worker had taken continued with the host's figures", "calls", n)
		}
		s.oldSlots.Close()
		s.oldSlots = nil
	}
}

func (s *Sysinfo) fds() map[int]int {
	m := make(map[int]int, len(s.held))
	for slot, h := range s.held {
		m[slot] = int(h.File.Fd())
	}
	return m
}

// upgradeEnv keeps the socket, the containers and the current worker's
// slots open across exec and describes them for the new binary.
func (s *Sysinfo) upgradeEnv() (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keep := func(f *os.File) error {
		_, err := unix.FcntlInt(f.Fd(), unix.F_SETFD, 0)
		return err
	}
	if s.passed == nil {
		lf, err := s.listener.File() // a dup, kept referenced so no finalizer closes it
		if err != nil {
			return "", fmt.Errorf("keep the sysinfo socket across exec: %w", err)
		}
		s.passed = lf
	}
	if err := keep(s.passed); err != nil {
		return "", fmt.Errorf("keep the sysinfo socket across exec: %w", err)
	}
	items := []string{fdItem("listen", int(s.passed.Fd()))}
	if s.slots != nil && keep(s.slots.File()) == nil {
		items = append(items, fdItem("slots", int(s.slots.File().Fd())))
	}
	for _, h := range s.held {
		if err := keep(h.File); err != nil {
			return "", fmt.Errorf("keep a notification fd across exec: %w", err)
		}
		items = append(items, encodeHeld(int(h.File.Fd()), h))
	}
	return strings.Join(items, " "), nil
}

// Close stops registrations and removes the socket.
func (s *Sysinfo) Close() {
	s.listener.Close()
	os.Remove(s.Path)
}

// Held lists the containers held, for the systemd fd store at start.
func (s *Sysinfo) Held() []Held {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Held, 0, len(s.held))
	for _, h := range s.held {
		out = append(out, h)
	}
	return out
}
