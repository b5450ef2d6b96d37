package register

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/delegate"
)

// The daemon gets a pidfd of the very process the hook names, and the hook
// gets the daemon's ID back.
func TestRegisterRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root may register")
	}
	sock := filepath.Join(t.TempDir(), SocketName)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 1)
	serve := func(pidfd int) (uint32, error) {
		b, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(pidfd))
		got <- string(b)
		return 42, err
	}
	served := []string{"proc/meminfo", "proc/pressure/cpu", "sys/devices/system/cpu"}
	go Serve(ctx, sock, Handlers{Register: serve, Files: served}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var id uint32
	var files []string
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if id, files, err = Register(sock, os.Getpid(), time.Second); err == nil {
			break
		}
	}
	if err != nil || id != 42 {
		t.Fatalf("Register = %d, %v; want 42", id, err)
	}
	if !slices.Equal(files, served) {
		t.Errorf("Register listed %q, want the daemon's %q", files, served)
	}
	if info := <-got; !strings.Contains(info, "Pid:\t"+strconv.Itoa(os.Getpid())+"\n") {
		t.Errorf("the daemon got a descriptor that is not a pidfd of the hook's pid %d:\n%s", os.Getpid(), info)
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600: only root may register", st.Mode(), err)
	}
}

// A daemon that never answers (or is not there) costs the hook at most its
// timeout; it then binds the shared files.
func TestRegisterGivesUp(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Register(filepath.Join(dir, "absent.sock"), os.Getpid(), time.Second); err == nil {
		t.Errorf("registered with no daemon")
	}
	mute := filepath.Join(dir, "mute.sock")
	l, err := net.Listen("unix", mute)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	start := time.Now()
	if _, _, err := Register(mute, os.Getpid(), 200*time.Millisecond); err == nil {
		t.Errorf("registered with a daemon that never answered")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("gave up after %v with a 200ms timeout", took)
	}
}

// A socket nobody listens on (a worker killed, its replacement starting)
// is tried again until the timeout: the replacement answers.
func TestRegisterWaitsForReplacement(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root may register")
	}
	sock := filepath.Join(t.TempDir(), SocketName)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close() // left behind, as by a killed worker
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	go func() {
		<-started
		Serve(ctx, sock, Handlers{Register: func(int) (uint32, error) { return 7, nil }, Files: nil}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	time.AfterFunc(100*time.Millisecond, func() { close(started) })
	if id, _, err := Register(sock, os.Getpid(), 5*time.Second); err != nil || id != 7 {
		t.Errorf("Register across a worker replacement = %d, %v; want 7", id, err)
	}
}

// Hooks and daemons of different releases meet during an upgrade: a hook
// from before the file list asks with 'r' and parses the ID alone, and a
// daemon from before it answers the ID alone whatever it is asked.
func TestRegisterAcrossReleases(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root may register")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))

	sock := filepath.Join(dir, SocketName)
	go Serve(ctx, sock, Handlers{Register: func(int) (uint32, error) { return 9, nil }, Files: []string{"proc/meminfo"}}, discard)
	var line string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if line = askOld(t, sock); line != "" {
			break
		}
	}
	if line != "ok 9" {
		t.Errorf("an old hook's request was answered %q, want \"ok 9\" (the ID alone)", line)
	}

	// A list longer than a hook reads is left out rather than cut.
	long := filepath.Join(dir, "long.sock")
	many := make([]string, 500)
	for i := range many {
		many[i] = "proc/file" + strconv.Itoa(i)
	}
	go Serve(ctx, long, Handlers{Register: func(int) (uint32, error) { return 3, nil }, Files: many}, discard)
	var files []string
	var id uint32
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if id, files, err = Register(long, os.Getpid(), time.Second); err == nil {
			break
		}
	}
	if err != nil || id != 3 || files != nil {
		t.Errorf("Register with %d files served = %d, %d files, %v; want 3 and no list (the hook lists)", len(many), id, len(files), err)
	}

	old := filepath.Join(dir, "old.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: old, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			c.Read(make([]byte, 16))
			c.Write([]byte("ok 5\n"))
			c.Close()
		}
	}()
	id, files, err = Register(old, os.Getpid(), 5*time.Second)
	if err != nil || id != 5 || files != nil {
		t.Errorf("Register with an old daemon = %d, %q, %v; want 5 and no files (the hook lists them)", id, files, err)
	}
}

// askOld registers as a hook from before the file list did and returns the
// answer's line, "" when nobody answered yet.
func askOld(t *testing.T, sock string) string {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return ""
	}
	defer c.Close()
	pidfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pidfd)
	if _, _, err := c.WriteMsgUnix([]byte{reqRegister}, unix.UnixRights(pidfd), nil); err != nil {
		return ""
	}
	b, _ := io.ReadAll(c)
	return strings.TrimSpace(string(b))
}

// A hook that delegates create-runtime gets the daemon's answer, with the
// state passed through whole (however long: it spans many reads) and the
// hook's pid for the daemon to check its pid namespace; a daemon from
// before delegation refuses the request, which the hook takes as "do it
// yourself".
func TestDelegateRoundTrip(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root may register")
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	state := `{"ociVersion":"1.2.0","id":"c1","pid":` + strconv.Itoa(os.Getpid()) + `,"annotations":{"a":"` + strings.Repeat("x", 100<<10) + `"}}`
	req := delegate.Request{Root: "/var/lib/lxcfs", LogLevel: "info", StateDir: "/run/lxcfs-oci", Always: true}
	ask := func(sock string) (delegate.Answer, error) {
		t.Helper()
		var a delegate.Answer
		var err error
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if a, err = delegate.Ask(sock, req, []byte(state), 30*time.Second); !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ECONNREFUSED) {
				break
			}
		}
		return a, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sock := filepath.Join(t.TempDir(), SocketName)
	got := make(chan delegate.Request, 1)
	gotState := make(chan string, 1)
	peers := make(chan int, 1)
	after := make(chan struct{})
	want := delegate.Answer{Code: 3, Msg: "refused\n", Log: "level=ERROR msg=x\n"}
	h := Handlers{Register: func(int) (uint32, error) { return 7, nil }, Delegate: func(head, body []byte, peer int) ([]byte, func()) {
		r, st, err := delegate.Decode(head, body)
		if err != nil {
			t.Errorf("request: %v", err)
		}
		got <- r
		gotState <- string(st)
		peers <- peer
		// What is done after the answer does not hold the hook.
		return delegate.AppendAnswer(nil, want), func() { <-after }
	}}
	go Serve(ctx, sock, h, discard)
	a, err := ask(sock)
	close(after)
	if err != nil || a != want {
		t.Fatalf("Ask = %+v, %v; want the daemon's %+v", a, err, want)
	}
	if r, st := <-got, <-gotState; st != state || r != req {
		t.Errorf("the daemon got %d bytes of state and %+v; want %d bytes and the hook's %+v", len(st), r, len(state), req)
	}
	if peer := <-peers; peer != os.Getpid() {
		t.Errorf("the daemon was told the hook is pid %d, want %d", peer, os.Getpid())
	}

	// A daemon without delegation (an older release) refuses it as a
	// registration and closes on the unread rest: an error either way, on
	// which the hook runs create-runtime itself.
	old := filepath.Join(t.TempDir(), SocketName)
	go Serve(ctx, old, Handlers{Register: func(int) (uint32, error) { return 7, nil }}, discard)
	if a, err := ask(old); err == nil {
		t.Errorf("Ask of a daemon without delegation = %+v; want an error", a)
	}
}
