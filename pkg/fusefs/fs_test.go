package fusefs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
)

func TestNewRejectsBadTrees(t *testing.T) {
	tests := []struct {
		name  string
		files []string
	}{
		{"absolute", []string{"/proc/meminfo"}},
		{"dot-dot", []string{"../etc/passwd"}},
		{"unclean", []string{"proc//meminfo"}},
		{"empty", []string{""}},
		{"duplicate", []string{"proc/meminfo", "proc/meminfo"}},
		{"file used as dir", []string{"proc", "proc/meminfo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newFS(tt.files, tt.files, nil, slog.Default()); err == nil {
				t.Errorf("New(%q) accepted a bad tree", tt.files)
			}
		})
	}
}

// TestNodeTable pins the node ID of every file and directory given so far:
// the kernel keeps them across upgrades, in containers' bind mounts. It
// fails on any change to NodeTable but an append; when you append a file,
// append its line (and any new directory's) here too.
func TestNodeTable(t *testing.T) {
	pinned := []struct {
		id   uint64
		name string
	}{
		{1, ""},
		{2, "proc"},
		{3, "proc/cpuinfo"},
		{4, "proc/diskstats"},
		{5, "proc/loadavg"},
		{6, "proc/meminfo"},
		{7, "proc/pressure"},
		{8, "proc/pressure/cpu"},
		{9, "proc/pressure/io"},
		{10, "proc/pressure/memory"},
		{11, "proc/stat"},
		{12, "proc/swaps"},
		{13, "proc/uptime"},
		{14, "sys"},
		{15, "sys/devices"},
		{16, "sys/devices/system"},
		{17, "sys/devices/system/cpu"},
		{18, "sys/devices/system/cpu/online"},
		{19, "proc/vmstat"},
		{20, "sys/devices/system/cpu/possible"},
		{21, "sys/devices/system/cpu/present"},
		{22, "sys/devices/system/cpu/offline"},
	}
	all, err := New(NodeTable, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	got := inodes(all)
	for _, p := range pinned {
		if got[p.name] != p.id {
			t.Errorf("%q has node ID %d, was %d in earlier releases: NodeTable is append only", p.name, got[p.name], p.id)
		}
	}
	if len(got) < len(pinned) {
		t.Errorf("NodeTable gives %d IDs, fewer than the %d pinned: an entry was removed", len(got), len(pinned))
	}

	// A host without some files (no PSI) serves the rest under the same IDs.
	some, err := New([]string{"proc/meminfo", "sys/devices/system/cpu/online", "proc/stat"}, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"": 1, "proc": 2, "proc/meminfo": 6, "proc/stat": 11, "sys": 14, "sys/devices": 15,
		"sys/devices/system": 16, "sys/devices/system/cpu": 17, "sys/devices/system/cpu/online": 18}
	if fmt.Sprint(inodes(some)) != fmt.Sprint(want) {
		t.Errorf("a subset of the files is numbered %v, want %v", inodes(some), want)
	}
	if _, err := New([]string{"proc/vmstat-never-listed"}, nil, slog.Default()); err == nil {
		t.Errorf("a file missing from NodeTable was given a node ID")
	}
}

func inodes(f *FS) map[string]uint64 {
	out := map[string]uint64{}
	for _, n := range f.nodes[1:] {
		if n != nil {
			out[n.name] = n.inode
		}
	}
	return out
}

// counter renders "gen=N who=W" padded to 10 KiB, so reads at later offsets
// can tell which generation they see; proc/panic panics. Each reader pid is
// its own container, its ID the pid.
type counter struct {
	mu   sync.Mutex
	gen  int
	pids []int
}

func (c *counter) Identify(pid int) uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pids = append(c.pids, pid)
	return uint32(pid)
}

func (c *counter) Render(name string, who uint32) ([]byte, error) {
	if name == "proc/panic" {
		panic("render exploded")
	}
	if name == "proc/fail" {
		return nil, errors.New("host file unreadable")
	}
	c.mu.Lock()
	c.gen++
	g := c.gen
	c.mu.Unlock()
	s := fmt.Sprintf("gen=%d who=%d\n", g, who)
	return []byte(s + strings.Repeat(strconv.Itoa(g%10), 10240-len(s))), nil
}

func mountTest(t testing.TB, r Renderer, files ...string) string {
	t.Helper()
	return mountTestWith(t, r, nil, files...)
}

func mountTestWith(t testing.TB, r Renderer, setup func(*FS), files ...string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount FUSE")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("needs /dev/fuse: %v", err)
	}
	mp := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The test's own files, numbered in the order given.
	tree, err := newFS(files, files, r, log)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(tree)
	}
	conn, err := Mount(mp, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tree.Serve(conn, 4) }()
	t.Cleanup(func() {
		if err := Unmount(mp); err != nil {
			t.Errorf("unmount: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("serve did not stop within 30s")
		}
	})
	return mp
}

func TestServeSnapshotsAndRegenerates(t *testing.T) {
	c := &counter{}
	mp := mountTest(t, c, "proc/meminfo", "proc/panic", "proc/fail")
	path := filepath.Join(mp, "proc/meminfo")

	// No page cache: every open reads fresh content.
	a, _ := readMount(path)
	b, _ := readMount(path)
	if len(a) != 10240 || string(a[:6]) == string(b[:6]) {
		t.Fatalf("two opens returned %q and %q (len %d): want fresh, full content", a[:12], b[:12], len(a))
	}

	f, err := openMount(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 100)
	if _, err := f.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	tail := make([]byte, 100)
	if _, err := f.ReadAt(tail, 5000); err != nil {
		t.Fatal(err)
	}
	gen := strings.TrimPrefix(strings.Fields(string(head))[0], "gen=")
	if want := gen[len(gen)-1]; tail[0] != want {
		t.Errorf("read at offset 5000 came from generation %c, want the snapshot's %c", tail[0], want)
	}
	// A read at offset 0 on the same handle regenerates (top's pread(0)).
	if _, err := f.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	if g2 := strings.TrimPrefix(strings.Fields(string(head))[0], "gen="); g2 == gen {
		t.Errorf("pread at 0 on an open handle served the old snapshot %s", gen)
	}

	// The pid at open is a thread of this process.
	c.mu.Lock()
	pid := c.pids[0]
	c.mu.Unlock()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil || !strings.Contains(string(status), "\nTgid:\t"+strconv.Itoa(os.Getpid())+"\n") {
		t.Errorf("renderer saw pid %d, not a thread of this process (%d)", pid, os.Getpid())
	}

	// A panic in one request is EIO for that request only.
	if _, err := readMount(filepath.Join(mp, "proc/panic")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of a panicking file: %v, want EIO", err)
	}
	if _, err := readMount(filepath.Join(mp, "proc/fail")); !errors.Is(err, syscall.EIO) {
		t.Errorf("read of a failing file: %v, want EIO", err)
	}
	if _, err := readMount(path); err != nil {
		t.Errorf("daemon stopped serving after a panic: %v", err)
	}
	if _, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		t.Errorf("opened a served file for writing")
	}
	entries, err := os.ReadDir(filepath.Join(mp, "proc"))
	if err != nil || len(entries) != 3 || entries[0].Name() != "fail" || entries[2].Name() != "panic" {
		t.Errorf("proc/ lists %v (%v), want exactly the 3 files", entries, err)
	}

	// busybox cat copies with sendfile(2), which reads through the page
	// cache up to the inode size: the size must be the content's.
	if _, err := exec.LookPath("busybox"); err == nil {
		out, err := exec.Command("busybox", "cat", path).Output()
		if err != nil || len(out) != 10240 {
			t.Errorf("busybox cat (sendfile) read %d bytes (%v), want 10240", len(out), err)
		}
	}
	if st, err := f.Stat(); err != nil || st.Size() != 10240 {
		t.Errorf("fstat of an open handle: size %v (%v), want its snapshot's 10240", st.Size(), err)
	}
}

// slow never finishes rendering proc/slow until released; its fallback
// answers at once.
type slow struct {
	release chan struct{}
}

func (s *slow) Identify(int) uint32 { return 1 }

func (s *slow) Render(name string, who uint32) ([]byte, error) {
	if name == "proc/slow" {
		<-s.release
	}
	return []byte("rendered " + name + "\n"), nil
}

func (s *slow) Fallback(name string) ([]byte, error) {
	return []byte("fallback " + name + "\n"), nil
}

// A render that hangs (a wedged cgroup file) must not hold its reader past
// FS.Timeout, nor take a reading goroutine away from everyone else.
func TestServeTimeout(t *testing.T) {
	s := &slow{release: make(chan struct{})}
	mp := mountTestWith(t, s, func(f *FS) { f.Timeout = 100 * time.Millisecond }, "proc/slow", "proc/fast")
	defer close(s.release)

	// The render never returns until the test ends, so the fallback can
	// only come from the timer.
	for i := range 6 { // more hanging reads than the 4 reading goroutines
		b, err := readMount(filepath.Join(mp, "proc/slow"))
		if err != nil || string(b) != "fallback proc/slow\n" {
			t.Fatalf("read %d of a hanging file = %q, %v; want the fallback", i, b, err)
		}
	}
	// Every reading goroutine but the replacements is stuck now; the
	// replacements serve.
	b, err := readMount(filepath.Join(mp, "proc/fast"))
	if err != nil || string(b) != "rendered proc/fast\n" {
		t.Errorf("read of a healthy file while others hang = %q, %v", b, err)
	}
}

// TestMountMaxBackground: the connection lets the kernel send many RELEASEs
// at once. With the default 12, a busy mount's releases queued by the
// thousand and every unreleased handle kept its snapshot in memory.
func TestMountMaxBackground(t *testing.T) {
	mp := mountTest(t, fixedContent("x\n"), "proc/meminfo")
	var st unix.Stat_t
	if err := unix.Stat(mp, &st); err != nil {
		t.Fatal(err)
	}
	conns := "/sys/fs/fuse/connections"
	if _, err := os.Stat(filepath.Join(conns, "version")); err != nil {
		// fusectl is not always mounted: mount it for the test, and leave
		// the machine as it was.
		err := unix.Mount("fusectl", conns, "fusectl", 0, "")
		switch {
		case err == nil:
			t.Cleanup(func() {
				if err := unix.Unmount(conns, 0); err != nil {
					t.Errorf("unmount the fusectl the test mounted at %s: %v", conns, err)
				}
			})
		case !errors.Is(err, unix.EBUSY):
			t.Skipf("no fusectl at %s to read the connection's settings (needs root): %v", conns, err)
		}
	}
	path := filepath.Join(conns, strconv.FormatUint(uint64(unix.Minor(st.Dev)), 10), "max_background")
	b, err := readMount(path)
	if err != nil {
		t.Fatalf("read the connection's settings: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(maxBackground) {
		t.Errorf("max_background = %s, want %d", got, maxBackground)
	}
}

// recycler renders like counter, but into the buffers handed back to it,
// which it scribbles over as they come back: a buffer recycled while a reply
// still used it would show as a reply of 'X's or mixing two generations. It also checks that only buffers it
// rendered come back, each once.
type recycler struct {
	mu    sync.Mutex
	gen   int
	live  map[*byte]bool
	free  [][]byte
	wrong []string
}

func (r *recycler) Identify(int) uint32 { return 1 }

func (r *recycler) Render(name string, who uint32) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gen++
	var b []byte
	if n := len(r.free); n > 0 {
		b, r.free = r.free[n-1][:0], r.free[:n-1]
	}
	b = fmt.Appendf(b, "gen=%d\n", r.gen)
	for len(b) < 10240 {
		b = append(b, byte('0'+r.gen%10))
	}
	r.live[&b[0]] = true
	return b, nil
}

func (r *recycler) Recycle(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(b) == 0 || !r.live[&b[0]] {
		r.wrong = append(r.wrong, fmt.Sprintf("recycled %d bytes it did not render or had taken back", len(b)))
		return
	}
	delete(r.live, &b[0])
	// Scribbled at once, so a reply still using it shows 'X's.
	for i := range b {
		b[i] = 'X'
	}
	r.free = append(r.free, b)
}

// consistent reports whether chunk, read at off from a recycler's file, is
// all one generation's bytes.
func consistent(chunk []byte, off int64) bool {
	body := chunk
	if off == 0 {
		head, rest, ok := strings.Cut(string(chunk), "\n")
		g, err := strconv.Atoi(strings.TrimPrefix(head, "gen="))
		if !ok || err != nil {
			return false
		}
		body = []byte(rest)
		if len(body) > 0 && body[0] != byte('0'+g%10) {
			return false
		}
	}
	for _, c := range body {
		if c != body[0] || c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// TestServeRecycles: answers go back to a Recycler once nothing reads them
// (release, a re-render at offset 0, a getattr), never while a reply still
// uses them, and every one of them comes back.
func TestServeRecycles(t *testing.T) {
	r := &recycler{live: map[*byte]bool{}}
	mp := mountTest(t, r, "proc/meminfo")
	path := filepath.Join(mp, "proc/meminfo")
	shared, err := openMount(path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for j := range 500 {
				if i%2 == 0 {
					b, err := readMount(path)
					if err != nil || len(b) != 10240 || !consistent(b, 0) {
						errs <- fmt.Sprintf("read of a fresh open: %d bytes, %v, consistent %v", len(b), err, consistent(b, 0))
						return
					}
					if _, err := os.Stat(path); err != nil {
						errs <- err.Error()
						return
					}
					continue
				}
				// Offset 0 re-renders the shared handle; 5000 reads its snapshot.
				off := int64(j%2) * 5000
				n, err := shared.ReadAt(buf, off)
				if err != nil || n != len(buf) || !consistent(buf, off) {
					errs <- fmt.Sprintf("pread at %d of the shared handle: %d bytes, %v, consistent %v", off, n, err, consistent(buf[:n], off))
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	shared.Close()

	// Releases are asynchronous: the last ones may still be on their way.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		live, gen, wrong := len(r.live), r.gen, r.wrong
		r.mu.Unlock()
		if len(wrong) > 0 {
			t.Fatalf("bad recycling: %v", wrong)
		}
		if live == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d answers never came back to the Recycler", live, gen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestServeCounts: opens, reads, render errors and timeouts are counted per
// file into the stats region, with their latency.
func TestServeCounts(t *testing.T) {
	files := []string{"proc/fail", "proc/meminfo", "proc/slow"}
	st, err := stats.Create(stats.Path(t.TempDir()), files)
	if err != nil {
		t.Fatal(err)
	}
	// Left mapped, as a worker leaves it: a timer's goroutine may count
	// after the test ends.
	s := &slow{release: make(chan struct{})}
	defer close(s.release)
	mp := mountTestWith(t, failingSlow{&counter{}, s}, func(f *FS) { f.Timeout = 100 * time.Millisecond; f.Stats = st }, files...)

	for range 3 {
		if _, err := readMount(filepath.Join(mp, "proc/meminfo")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readMount(filepath.Join(mp, "proc/fail")); err == nil {
		t.Fatal("proc/fail read without error")
	}
	if b, err := readMount(filepath.Join(mp, "proc/slow")); err != nil || !strings.HasPrefix(string(b), "fallback") {
		t.Fatalf("proc/slow: %q %v, want the fallback", b, err)
	}
	snap := st.Snapshot()
	got := map[string]stats.FileCounts{}
	for _, f := range snap.Files {
		got[f.Name] = f
	}
	if m := got["proc/meminfo"]; m.Opens != 3 || m.Reads < 3 || m.RenderErrors != 0 {
		t.Errorf("meminfo counted %+v, want 3 opens, at least 3 reads, no error", m)
	}
	if f := got["proc/fail"]; f.RenderErrors != 1 || f.Opens != 1 {
		t.Errorf("fail counted %+v, want 1 open with 1 render error", f)
	}
	// The open timed out, and so may the size lookup (getattr) before the read.
	if sl := got["proc/slow"]; sl.Fallbacks["timeout"] < 1 {
		t.Errorf("slow counted %+v, want a timeout fallback", sl)
	}
	// An open's latency is counted after its answer is sent, so the
	// reader can be back before the count.
	var opens uint64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		snap = st.Snapshot()
		opens = 0
		for _, c := range snap.Hists[stats.OpOpen].Counts {
			opens += c
		}
		if opens >= 5 || time.Now().After(deadline) {
			break
		}
	}
	if opens != 5 || snap.Hists[stats.OpOpen].Sum <= 0 {
		t.Errorf("open latency histogram holds %d opens (sum %v), want 5", opens, snap.Hists[stats.OpOpen].Sum)
	}
}

// failingSlow renders proc/fail as an error, proc/slow slowly (with a
// fallback), and the rest with counter.
type failingSlow struct {
	c *counter
	s *slow
}

func (f failingSlow) Identify(pid int) uint32 { return f.c.Identify(pid) }

func (f failingSlow) Render(name string, who uint32) ([]byte, error) {
	if name == "proc/slow" {
		return f.s.Render(name, who)
	}
	return f.c.Render(name, who)
}

func (f failingSlow) Fallback(name string) ([]byte, error) { return f.s.Fallback(name) }

// A file handle names its opener's container for whichever process is
// handed it later; directories' handles and older releases' name none.
func TestFileHandleOwner(t *testing.T) {
	for _, who := range []uint32{0, 1, 7, 1<<31 - 1} {
		for _, n := range []uint32{0, 1, 1<<32 - 1} {
			got, ok := handleOwner(fileHandle(who, n))
			if !ok || got != who {
				t.Errorf("handle of container %d (counter %d) names %d, %v", who, n, got, ok)
			}
		}
	}
	if _, ok := handleOwner(42); ok {
		t.Errorf("an untagged handle (a directory's, or an older release's) named a container")
	}
	if fileHandle(1, 5) == fileHandle(2, 5) {
		t.Errorf("two containers' handles with the same counter are the same number")
	}
}

// scoped is a counter whose container 5 is registered and running.
type scoped struct{ counter }

func (s *scoped) Alive(who uint32) bool { return who == 5 }

// A registered container's own files (.containers/ID/) are answered for that
// container whoever reads them, under inode numbers of their own; other IDs
// have no files, and the shared tree stays as it was.
func TestServeContainerTrees(t *testing.T) {
	s := &scoped{}
	mp := mountTest(t, s, "proc/meminfo")
	own := filepath.Join(mp, ".containers/5/proc/meminfo")
	b, err := readMount(own)
	if err != nil || !strings.Contains(string(b), " who=5\n") {
		t.Fatalf("read of container 5's file by this process: %q, %v; want it rendered for 5", b[:min(len(b), 20)], err)
	}
	b, err = readMount(filepath.Join(mp, "proc/meminfo"))
	if err != nil || strings.Contains(string(b), " who=5\n") {
		t.Errorf("shared file read for %q, %v; want this reader's", b[:min(len(b), 20)], err)
	}
	var shared, mine unix.Stat_t
	if err := unix.Stat(filepath.Join(mp, "proc/meminfo"), &shared); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(own, &mine); err != nil {
		t.Fatal(err)
	}
	if shared.Ino == mine.Ino {
		t.Errorf("container 5's meminfo shares inode %d with the shared one: one page cache for both", mine.Ino)
	}
	// ls -i in the container's tree shows what stat shows.
	listed := dirInodes(t, filepath.Join(mp, ".containers/5/proc"))
	if listed["meminfo"] != mine.Ino {
		t.Errorf("container 5's proc lists meminfo as inode %d, stat says %d", listed["meminfo"], mine.Ino)
	}
	if listed = dirInodes(t, filepath.Join(mp, "proc")); listed["meminfo"] != shared.Ino {
		t.Errorf("the shared proc lists meminfo as inode %d, stat says %d", listed["meminfo"], shared.Ino)
	}
	for _, p := range []string{".containers/6/proc/meminfo", ".containers/05/proc/meminfo", ".containers/x", ".containers/5/proc/nope"} {
		if _, err := os.Stat(filepath.Join(mp, p)); !os.IsNotExist(err) {
			t.Errorf("%s: %v, want it absent", p, err)
		}
	}
	entries, _ := os.ReadDir(mp)
	for _, e := range entries {
		if e.Name() == ".containers" {
			t.Errorf("the root lists .containers; its listing must stay LXCFS's")
		}
	}
}

// dirInodes lists dir with getdents and returns each name's inode number.
func dirInodes(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	out := map[string]uint64{}
	buf := make([]byte, 4096)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatalf("getdents %s: %v", dir, err)
		}
		if n == 0 {
			return out
		}
		for b := buf[:n]; len(b) > 0; {
			ino := binary.NativeEndian.Uint64(b[0:8])
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			name := unix.ByteSliceToString(b[19:reclen])
			out[name] = ino
			b = b[reclen:]
		}
	}
}

// openMount opens a file of a test's mount with open(2) alone. os.Open
// would also add it to the Go runtime's poller, whose epoll_ctl sends the
// mount a POLL from inside the runtime, holding its P: a garbage collection
// starting then waits for that P while the goroutine that would answer the
// POLL waits for the collection, and the test process hangs in its own
// mount. Every test that reads a mount this process serves goes through
// here or readMount.
func openMount(path string) (*os.File, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil // blocking: not in the poller
}

// readMount is os.ReadFile through openMount.
func readMount(path string) ([]byte, error) {
	f, err := openMount(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// oneContainer is a counter whose readers are all in container 1.
type oneContainer struct{ counter }

func (c *oneContainer) Identify(int) uint32 { return 1 }

// TestServeSnapshotBudget: a container holding many open files keeps at most
// SnapshotLimit bytes of snapshots in the daemon; the files past it still
// read right, and a snapshot goes once its reader has read to the end.
func TestServeSnapshotBudget(t *testing.T) {
	c := &oneContainer{}
	var tree *FS
	limit := 3 * (10240 + handleCost)
	mp := mountTestWith(t, c, func(f *FS) { f.SnapshotLimit = limit; tree = f }, "proc/meminfo")
	path := filepath.Join(mp, "proc/meminfo")
	var files []*os.File
	for range 20 {
		f, err := openMount(path)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if held := tree.Held(); held > int64(limit) {
		t.Errorf("20 open files keep %d bytes, over the %d limit", held, limit)
	}
	buf := make([]byte, 20000)
	for i, f := range files {
		n, err := f.ReadAt(buf, 0)
		if n != 10240 || (err != nil && err != io.EOF) || !strings.HasPrefix(string(buf), "gen=") {
			t.Errorf("file %d past the budget: read %d bytes, %v", i, n, err)
		}
	}
	for _, f := range files {
		f.Close()
	}
	waitHeld := func(want int64, what string) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); tree.Held() != want; time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d bytes kept, want %d", what, tree.Held(), want)
			}
		}
	}
	waitHeld(0, "all files closed")

	// Read to the end and kept open: nothing kept.
	f, err := openMount(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if b, err := io.ReadAll(f); err != nil || len(b) != 10240 {
		t.Fatalf("read %d bytes, %v", len(b), err)
	}
	waitHeld(0, "a file read to its end and kept open")
}
