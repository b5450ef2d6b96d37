package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeSystemd plays systemd for the daemons a test starts after it: it
// receives what they send to NOTIFY_SOCKET, all the time (a sender blocks
// when the socket's queue is full), and keeps the fd store as systemd does
// (by name; FDSTOREREMOVE drops one); it starts a daemon again with the
// store in LISTEN_FDS, as systemd restarts a failed unit.
type fakeSystemd struct {
	fd int

	mu    sync.Mutex
	store map[string]*os.File
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	t.Helper()
	requireRoot(t)
	sock := filepath.Join(t.TempDir(), "notify")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: sock}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	s := &fakeSystemd{fd: fd, store: map[string]*os.File{}}
	stop, done := make(chan struct{}), make(chan struct{})
	go s.receive(stop, done)
	t.Cleanup(func() {
		close(stop)
		<-done
		unix.Close(fd)
		s.closeStore()
	})
	t.Setenv("NOTIFY_SOCKET", sock)
	return s
}

func (s *fakeSystemd) receive(stop, done chan struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		default:
		}
		s.once()
	}
}

// once receives and keeps one message, or returns after the receive
// timeout. It holds mu throughout, so a message taken off the socket is
// always kept before anyone looks at the store.
func (s *fakeSystemd) once() {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf, oob := make([]byte, 512), make([]byte, 128)
	n, oobn, _, _, err := unix.Recvmsg(s.fd, buf, oob, 0)
	if err != nil {
		return
	}
	var name string
	remove := false
	for _, l := range strings.Split(string(buf[:n]), "\n") {
		if v, ok := strings.CutPrefix(l, "FDNAME="); ok {
			name = v
		}
		remove = remove || l == "FDSTOREREMOVE=1"
	}
	var got *os.File
	msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
	for _, m := range msgs {
		if fds, err := unix.ParseUnixRights(&m); err == nil && len(fds) == 1 {
			got = os.NewFile(uintptr(fds[0]), name)
		}
	}
	if old := s.store[name]; old != nil && (remove || got != nil) {
		old.Close()
		delete(s.store, name)
	}
	if got != nil && !remove {
		s.store[name] = got
	}
}

// take waits until a name starting with each of want is stored (the
// daemon stores some only when a worker starts) and nothing more is queued:
// the store is then what the daemon sent up to now.
func (s *fakeSystemd) take(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		s.mu.Lock()
		queued, err := unix.IoctlGetInt(s.fd, unix.SIOCINQ)
		s.mu.Unlock()
		if err != nil {
			t.Fatalf("fake systemd socket: %v", err)
		}
		missing := s.missing(want)
		if queued == 0 && len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing named %v in the fd store after a minute: %v", missing, s.names())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *fakeSystemd) missing(prefixes []string) []string {
	var out []string
	names := s.names()
	for _, p := range prefixes {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, p) }) {
			out = append(out, p)
		}
	}
	return out
}

func (s *fakeSystemd) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.store {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// has says whether name is stored.
func (s *fakeSystemd) has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.store[name] != nil
}

// kill kills d's supervisor (its worker follows) and waits for it.
func (s *fakeSystemd) kill(d *daemon) {
	d.stoppedByTest = true
	d.cmd.Process.Kill()
	<-d.exited
}

// restart starts lxcfs-fused again on d's mountpoint and state directory,
// with args, handing it the store as systemd would; it is stopped at
// cleanup. It returns the new daemon's log path.
func (s *fakeSystemd) restart(t *testing.T, d *daemon, args ...string) string {
	t.Helper()
	names := s.names()
	files := make([]*os.File, len(names))
	s.mu.Lock()
	for i, n := range names {
		files[i] = s.store[n]
	}
	s.mu.Unlock()
	logPath := filepath.Join(t.TempDir(), "fused2.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, fusedBin, "--mountpoint", d.mp, "--state-dir", d.stateDir}, args...)
	cmd := exec.Command("sh", argv...)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "NOTIFY_SOCKET=") }),
		"LISTEN_FDS="+strconv.Itoa(len(files)), "LISTEN_FDNAMES="+strings.Join(names, ":"))
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			// A thread of the daemon waiting on a request to its own
			// mount that nobody will answer keeps it from exiting while
			// a copy of the device (this store's) keeps the connection:
			// fail, and end the connection so the suite goes on.
			t.Errorf("the restarted daemon did not stop within 30s of SIGTERM")
			s.closeStore()
			<-exited
		}
		logFile.Close()
		if t.Failed() {
			t.Logf("restarted daemon's log:\n%s", readFile(t, logPath))
		}
	})
	return logPath
}

// closeStore closes every stored descriptor, as systemd flushes its store.
func (s *fakeSystemd) closeStore() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, f := range s.store {
		f.Close()
		delete(s.store, name)
	}
}
