package fusefs

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// oobTrigger stands in for the kernel's pressure files: a "trigger" is the
// server end of a TCP connection, whose peer receives the spec written and
// makes it poll POLLPRI by sending urgent (out-of-band) data, as a PSI
// trigger does when it fires.
type oobTrigger struct {
	counter
	mu    sync.Mutex
	peers []*net.TCPConn
	whos  []uint32
}

func (o *oobTrigger) Identify(int) uint32 { return 1 }

func (o *oobTrigger) Triggerable(name string) bool { return name == "proc/pressure/cpu" }

func (o *oobTrigger) Trigger(name string, who uint32, pid int, spec []byte) (*os.File, error) {
	if string(spec) == "bad" {
		return nil, syscall.EINVAL
	}
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	defer l.Close()
	peer, err := net.DialTCP("tcp", nil, l.Addr().(*net.TCPAddr))
	if err != nil {
		return nil, err
	}
	srv, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	f, err := srv.File()
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(spec); err != nil {
		return nil, err
	}
	o.mu.Lock()
	o.peers, o.whos = append(o.peers, peer), append(o.whos, who)
	o.mu.Unlock()
	return f, nil
}

// fire sends urgent data from the i-th trigger's peer.
func (o *oobTrigger) fire(t *testing.T, i int) {
	t.Helper()
	o.mu.Lock()
	peer := o.peers[i]
	o.mu.Unlock()
	raw, err := peer.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	raw.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), []byte{'!'}, unix.MSG_OOB, nil)
		return true
	})
	if serr != nil {
		t.Fatal(serr)
	}
}

// pollFile polls fd once (raw syscalls: a Go file of this process's own
// mount would be polled by the runtime, which needs this process to
// answer). Signals are blocked while it waits: one interrupting it would
// poll again, and that new POLL, not the daemon's wakeup, would see the
// trigger fired.
func pollFile(t *testing.T, fd int, timeout time.Duration) int16 {
	t.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
	all := ^uint64(0) // the kernel's sigset_t: 64 signals
	ts := unix.NsecToTimespec(timeout.Nanoseconds())
	_, _, e := unix.Syscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&fds[0])), 1,
		uintptr(unsafe.Pointer(&ts)), uintptr(unsafe.Pointer(&all)), 8, 0)
	if e != 0 {
		t.Errorf("poll: %v", e)
	}
	return fds[0].Revents
}

func TestPSITriggerWritePollRelease(t *testing.T) {
	o := &oobTrigger{}
	mp := mountTestWith(t, o, func(f *FS) { f.Triggers, f.TriggerLimit = true, 2 }, "proc/meminfo", "proc/pressure/cpu")
	path := filepath.Join(mp, "proc/pressure/cpu")

	if _, err := unix.Open(filepath.Join(mp, "proc/meminfo"), unix.O_WRONLY, 0); !errors.Is(err, unix.EACCES) {
		t.Errorf("opening meminfo for writing: %v, want EACCES", err)
	}
	fd, err := unix.Open(path, unix.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	// No trigger yet: the kernel's own file answers POLLERR|POLLPRI.
	if rev := pollFile(t, fd, 0); rev&unix.POLLERR == 0 {
		t.Errorf("poll before a trigger: %#x, want POLLERR", rev)
	}
	if _, err := unix.Write(fd, []byte("bad")); !errors.Is(err, unix.EINVAL) {
		t.Errorf("writing a trigger the kernel refuses: %v, want EINVAL", err)
	}
	if _, err := unix.Write(fd, []byte("some 1 2")); err != nil {
		t.Fatalf("write trigger: %v", err)
	}
	if _, err := unix.Write(fd, []byte("some 1 2")); !errors.Is(err, unix.EBUSY) {
		t.Errorf("a second trigger on one handle: %v, want EBUSY", err)
	}
	o.mu.Lock()
	who := o.whos[0]
	o.mu.Unlock()
	if who != 1 {
		t.Errorf("trigger registered for container %d, want the opener's (1)", who)
	}
	if rev := pollFile(t, fd, 0); rev&(unix.POLLPRI|unix.POLLERR) != 0 {
		t.Errorf("poll before the trigger fired: %#x, want neither POLLPRI nor POLLERR", rev)
	}
	// A poll waiting when the trigger fires is woken. (Fired once the
	// poll waits: a trigger fired earlier answers the POLL itself.)
	scheduled := make(chan struct{}, 16)
	notify := func() { scheduled <- struct{}{} }
	pollScheduled.Store(&notify)
	defer pollScheduled.Store(nil)
	for len(scheduled) > 0 {
		<-scheduled
	}
	// The poll's timeout only catches a missing wakeup: the kernel polls
	// once more when it expires, and would then see the event.
	const wait = 60 * time.Second
	got := make(chan int16, 1)
	start := time.Now()
	go func() { got <- pollFile(t, fd, wait) }()
	<-scheduled
	o.fire(t, 0)
	if rev := <-got; rev&unix.POLLPRI == 0 {
		t.Errorf("poll after the trigger fired: %#x, want POLLPRI", rev)
	}
	if time.Since(start) >= wait {
		t.Errorf("the poll ran to its timeout: the trigger firing did not wake it")
	}

	// The limit per container: a second handle's trigger, then EMFILE.
	fd2, _ := unix.Open(path, unix.O_WRONLY, 0)
	defer unix.Close(fd2)
	if _, err := unix.Write(fd2, []byte("some 1 2")); err != nil {
		t.Errorf("second trigger: %v", err)
	}
	fd3, _ := unix.Open(path, unix.O_WRONLY, 0)
	if _, err := unix.Write(fd3, []byte("some 1 2")); !errors.Is(err, unix.EMFILE) {
		t.Errorf("third trigger past a limit of 2: %v, want EMFILE", err)
	}
	unix.Close(fd3)
	// Closing a handle frees its place (the release is asynchronous).
	unix.Close(fd2)
	deadline := time.Now().Add(30 * time.Second)
	for {
		fd4, _ := unix.Open(path, unix.O_WRONLY, 0)
		_, err := unix.Write(fd4, []byte("some 1 2"))
		unix.Close(fd4)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a trigger after another was closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPSITriggersOff(t *testing.T) {
	mp := mountTestWith(t, &oobTrigger{}, nil, "proc/pressure/cpu")
	if _, err := unix.Open(filepath.Join(mp, "proc/pressure/cpu"), unix.O_WRONLY, 0); !errors.Is(err, unix.EACCES) {
		t.Errorf("opening for writing with triggers off: %v, want EACCES", err)
	}
}
