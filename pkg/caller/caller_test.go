package caller

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/cgroup"
)

func TestParseNSLink(t *testing.T) {
	tests := []struct {
		in      string
		want    uint64
		wantErr bool
	}{
		{"pid:[4026531836]", 4026531836, false},
		{"pid:[]", 0, true},
		{"mnt:[4026531836]", 0, true},
		{"pid:[12", 0, true},
		{"pid:[-1]", 0, true},
		{"", 0, true},
	}
	for _, tt := range tests {
		got, err := parseNSLink(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseNSLink(%q) = %d, %v; want %d, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

// rootResolver is a resolver over the host's /proc for a test that needs
// root (to make pid namespaces), closed when the test ends.
func rootResolver(t *testing.T) *Resolver {
	t.Helper()
	needRoot(t)
	r, err := NewResolver("/proc", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create pid namespaces")
	}
}

// startInNewPidNS starts sh as the init of a new pid namespace, with one
// child (sleep), and returns both host pids.
func startInNewPidNS(t *testing.T) (init *exec.Cmd, child int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sh in a new pid namespace: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	children := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/task/" + strconv.Itoa(cmd.Process.Pid) + "/children"
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(children)
		if f := strings.Fields(string(b)); len(f) > 0 {
			child, _ = strconv.Atoi(f[0])
			return cmd, child
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the namespace's init started no child within 30s")
	return nil, 0
}

func TestResolveLive(t *testing.T) {
	r := rootResolver(t)

	if c, err := r.Resolve(os.Getpid()); err != nil || c != nil {
		t.Fatalf("host process: got %+v, %v; want nil, nil", c, err)
	}

	init, child := startInNewPidNS(t)
	c, err := r.Resolve(child)
	if err != nil {
		t.Fatalf("resolve child %d: %v", child, err)
	}
	if c == nil || c.InitPid != init.Process.Pid {
		t.Fatalf("resolve child %d: got %+v, want init %d", child, c, init.Process.Pid)
	}
	if _, ok := c.Cgroups["memory"]; !ok && c.Cgroups[""] == "" {
		t.Errorf("no cgroup paths read for init: %v", c.Cgroups)
	}
	if c2, _ := r.Resolve(init.Process.Pid); c2 != c {
		t.Errorf("init and child of one namespace resolved to different entries: %p vs %p", c2, c)
	}

	// A process that entered the namespace with setns has its parent
	// outside it: the scan must still find the init.
	ns := exec.Command("nsenter", "-t", strconv.Itoa(init.Process.Pid), "-p", "--", "sleep", "30")
	if err := ns.Start(); err != nil {
		t.Fatalf("nsenter: %v", err)
	}
	defer func() { ns.Process.Kill(); ns.Wait() }()
	joined := waitChild(t, ns.Process.Pid)
	r2, _ := NewResolver("/proc", "")
	defer r2.Close()
	if c3, err := r2.Resolve(joined); err != nil || c3 == nil || c3.InitPid != init.Process.Pid {
		t.Fatalf("setns'd process %d: got %+v, %v; want init %d", joined, c3, err, init.Process.Pid)
	}

	// When the init dies the entry must go, never to be served again.
	init.Process.Kill()
	init.Wait() // reaped: its pidfd reports it gone from now on
	if got := r.cached(c.NS, time.Now()); got != nil {
		t.Fatalf("entry of a dead init still served: %+v", got)
	}
	if r.Len() != 0 {
		t.Fatalf("cache holds %d entries after the only init died", r.Len())
	}
}

func TestResolveExited(t *testing.T) {
	r := rootResolver(t)
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if c, err := r.Resolve(cmd.Process.Pid); err == nil {
		t.Fatalf("exited pid %d resolved to %+v, want an error", cmd.Process.Pid, c)
	}
}

func waitChild(t *testing.T, parent int) int {
	t.Helper()
	p := strconv.Itoa(parent)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.Atoi(f[0])
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d started no child within 30s", parent)
	return 0
}

// TestResolvePinsRereadingThreads: a thread that reads twice is pinned, so
// later resolutions skip its /proc link; once it exits the pin goes and the
// pid resolves afresh (to an error, here), never to the old answer.
func TestResolvePinsRereadingThreads(t *testing.T) {
	r := rootResolver(t)
	init, child := startInNewPidNS(t)
	first, err := r.Resolve(child)
	if err != nil || first == nil {
		t.Fatalf("resolve %d: %+v, %v", child, first, err)
	}
	if n := r.Threads(); n != 0 {
		t.Fatalf("%d threads pinned after one read, want 0 (one-shot readers cost no pidfd)", n)
	}
	for range 3 {
		if c, err := r.Resolve(child); err != nil || c != first {
			t.Fatalf("resolve %d again: %+v, %v; want %+v", child, c, err, first)
		}
	}
	if n := r.Threads(); n != 1 {
		t.Fatalf("%d threads pinned after repeated reads, want 1", n)
	}
	// A forgotten container is looked up afresh, pinned thread or not.
	r.Forget(first)
	again, err := r.Resolve(child)
	if err != nil || again == nil || again == first || again.InitPid != first.InitPid {
		t.Fatalf("resolve %d after Forget: %+v, %v; want a new entry for init %d", child, again, err, first.InitPid)
	}
	if c, _ := r.Resolve(child); c != again {
		t.Fatalf("pinned thread resolved to %p, want the new entry %p", c, again)
	}

	syscall.Kill(child, syscall.SIGKILL)
	init.Wait() // sh's wait returns and the namespace's init exits
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat("/proc/" + strconv.Itoa(child)); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still exists 30s after SIGKILL", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if c, err := r.Resolve(child); err == nil {
		t.Fatalf("exited thread %d resolved to %+v, want an error", child, c)
	}
	if n := r.Threads(); n != 0 {
		t.Fatalf("%d threads still pinned after the only one exited", n)
	}
}

// TestPinThreadNonLeader: a thread that is not its group's leader can be
// pinned (PIDFD_THREAD, Linux 6.9); an older kernel may refuse, never
// mis-pin.
func TestPinThreadNonLeader(t *testing.T) {
	r := rootResolver(t)
	tids := make(chan int)
	release := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tids <- syscall.Gettid()
		<-release
	}()
	tid := <-tids
	defer close(release)
	if tid == os.Getpid() {
		t.Skip("the goroutine landed on the main thread")
	}
	pidfd, ok := r.pinThread(tid, r.hostNS)
	if !ok {
		var u unix.Utsname
		unix.Uname(&u)
		t.Skipf("kernel %s cannot pin a non-leader thread", unix.ByteSliceToString(u.Release[:]))
	}
	unix.Close(pidfd)
	if _, ok := r.pinThread(tid, r.hostNS+1); ok {
		t.Fatalf("thread %d pinned to a namespace it is not in", tid)
	}
}

// TestPruneReleasesExited: an entry whose init exited is dropped by Prune,
// with no read coming after, and the cgroup files kept with it are closed.
func TestPruneReleasesExited(t *testing.T) {
	r := rootResolver(t)
	init, child := startInNewPidNS(t)
	c, err := r.Resolve(child)
	if err != nil || c == nil {
		t.Fatalf("resolve %d: %+v, %v", child, c, err)
	}
	root := t.TempDir()
	pressure := filepath.Join(root, "cpu.pressure")
	if err := os.WriteFile(pressure, []byte("some avg10=0.00\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	g := c.Group(func() *cgroup.Group {
		return (&cgroup.Hierarchy{Root: root, V2: true}).ForPaths(map[string]string{"": "/"}).WithOpenFiles()
	})
	if _, err := g.Pressure("cpu"); err != nil {
		t.Fatal(err)
	}
	if n := fdsOn(t, pressure); n != 1 {
		t.Fatalf("%d descriptors on %s after a read through the kept group, want 1", n, pressure)
	}
	r.Prune()
	if r.Len() != 1 {
		t.Fatalf("Prune dropped a live container: %d entries", r.Len())
	}
	init.Process.Kill()
	init.Wait()
	r.Prune()
	if r.Len() != 0 {
		t.Fatalf("%d entries after Prune with the only init exited, want 0", r.Len())
	}
	for deadline := time.Now().Add(30 * time.Second); fdsOn(t, pressure) != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the dropped container's cgroup files were not closed")
		}
	}
}

// fdsOn counts this process's descriptors open on path.
func fdsOn(t *testing.T, path string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == path {
			n++
		}
	}
	return n
}
