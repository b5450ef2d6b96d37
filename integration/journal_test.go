package integration

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bazil.org/fuse"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
)

// TestReliabilityDuplicateReplyDropped pins down the kernel behaviour the
// request journal relies on to answer each request once: a reply to a
// request already answered, or to a unique ID the kernel never issued, is
// refused with ENOENT and changes nothing (the journal answers again a
// request whose worker died between its reply and clearing its slot).
func TestReliabilityDuplicateReplyDropped(t *testing.T) {
	requireRoot(t)
	mp := filepath.Join(t.TempDir(), "mnt")
	conn, err := fusefs.Mount(mp, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount(mp, unix.MNT_DETACH)
		conn.Close()
	})
	fd := int(conn.File().Fd())
	reply := func(unique uint64) error {
		var b [16]byte // struct fuse_out_header: len, error, unique
		binary.LittleEndian.PutUint32(b[0:], 16)
		errno := -int32(syscall.ENOENT)
		binary.LittleEndian.PutUint32(b[4:], uint32(errno))
		binary.LittleEndian.PutUint64(b[8:], unique)
		_, err := unix.Write(fd, b[:])
		return err
	}
	statErr := make(chan error, 1)
	go func() {
		_, err := os.Stat(filepath.Join(mp, "absent"))
		statErr <- err
	}()
	for {
		req, err := conn.ReadRequest()
		if err != nil {
			t.Fatalf("read request: %v", err)
		}
		id := uint64(req.Hdr().ID)
		if err := reply(id); err != nil {
			t.Fatalf("first reply to %v: %v", req, err)
		}
		if l, ok := req.(*fuse.LookupRequest); !ok || l.Name != "absent" {
			continue
		}
		if err := reply(id); !errors.Is(err, unix.ENOENT) {
			t.Errorf("second reply to the same request: %v, want ENOENT", err)
		}
		if err := reply(id + 1<<40); !errors.Is(err, unix.ENOENT) {
			t.Errorf("reply to a unique never issued: %v, want ENOENT", err)
		}
		break
	}
	select {
	case err := <-statErr:
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat answered %v, want the first reply's ENOENT", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stat not answered")
	}
}

// TestReliabilityJournalUnderLoad: 16 readers in a container read their
// views while the worker is SIGKILLed 5 times, with the request journal
// answering what each dead worker held (forced by the test switch where
// the kernel has FUSE_NOTIFY_RESEND): no read fails, none hangs. Each kill
// lands while the worker certainly holds a read (the test-only stall) and
// waits for every reader to have completed reads since the one before.
func TestReliabilityJournalUnderLoad(t *testing.T) {
	requireRoot(t)
	t.Setenv("LXCFS_FUSED_TEST_NO_RESEND", "1")
	marker := filepath.Join(t.TempDir(), "stall")
	t.Setenv("LXCFS_FUSED_TEST_STALL", marker)
	d := startDaemon(t, fusedBin, "", "--read-timeout", "0")
	if got := fusedStatus(t, d).Kernel.NotifyResend; !strings.HasPrefix(got, "journal") {
		t.Fatalf("status notify_resend %q: the journal is not in use", got)
	}
	const readers = 16
	memLines := strings.Count(readFile(t, "/proc/meminfo"), "\n")
	// Each reader runs readLoop in the background, with its own progress
	// and stop files; the summary line is prefixed with its number.
	loop := readLoop(memLines)
	var script strings.Builder
	for i := range readers {
		r := strings.NewReplacer("/tmp/stop", "/tmp/stop", "/tmp/progress", "/tmp/progress"+strconv.Itoa(i), `echo "DONE`, `echo "R`+strconv.Itoa(i)+` DONE`)
		script.WriteString("( " + r.Replace(loop) + " ) &\n")
	}
	script.WriteString("wait\necho ALLDONE\n")
	c := runDetached(t, d.mp, d.stateDir, script.String())
	progress := func() []int {
		p := make([]int, readers)
		for i := range p {
			b, _ := os.ReadFile(filepath.Join(c.bundle, "rootfs/tmp/progress"+strconv.Itoa(i)))
			p[i], _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return p
	}
	// waitAll waits until every reader completed more reads than in from.
	waitAll := func(from []int) []int {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			now := progress()
			ok := true
			for i := range now {
				ok = ok && now[i] > from[i]+3
			}
			if ok {
				return now
			}
			if time.Now().After(deadline) {
				t.Fatalf("readers stalled: progress %v, was %v; output:\n%s", now, from, c.output(t))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	done := waitAll(make([]int, readers))
	_, worker, _ := fusedState(t, d)
	for range 5 {
		held := stallRead(t, d, marker)
		if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
			t.Fatalf("kill worker %d: %v", worker, err)
		}
		worker = waitWorker(t, d, worker)
		held()
		done = waitAll(done)
	}
	out := c.stopLoop(t, "ALLDONE")
	sums := regexp.MustCompile(`R\d+ DONE reads=(\d+) bad=(\d+)`).FindAllStringSubmatch(out, -1)
	if len(sums) != readers {
		t.Fatalf("%d of %d readers summed up:\n%s", len(sums), readers, out)
	}
	total := 0
	for _, m := range sums {
		n, _ := strconv.Atoi(m[1])
		total += n
		if m[2] != "0" {
			t.Errorf("a reader had %s bad reads", m[2])
		}
	}
	if strings.Contains(out, "FAIL") || strings.Contains(out, "BAD") {
		t.Errorf("failed or malformed reads:\n%s", out)
	}
	replays := strings.Count(readFile(t, d.logPath), "journal: answered the requests a dead worker left")
	t.Logf("%d reads by %d readers through 5 worker kills, 0 failed, 0 hung; %d deaths left requests the journal answered", total, readers, replays)
}

// stallRead starts a read of proc/loadavg that the worker takes and never
// answers (the test-only stall), and returns once the worker has it; the
// returned function waits for the read's answer, which only the next worker
// can give.
func stallRead(t *testing.T, d *daemon, marker string) (wait func()) {
	t.Helper()
	return stallReadOf(t, filepath.Join(d.mp, "proc/loadavg"), marker)
}

// stallReadOf is stallRead of the loadavg file at path (a container's own,
// for one). A cached file's read may be answered by the kernel without a
// request (its render is younger than the TTL): then it reads again.
func stallReadOf(t *testing.T, path, marker string) (wait func()) {
	t.Helper()
	type result struct {
		b   []byte
		err error
	}
	var done chan result
	read := func() {
		if err := os.WriteFile(marker, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		done = make(chan result, 1)
		go func() {
			b, err := os.ReadFile(path)
			done <- result{b, err}
		}()
	}
	read()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := os.Stat(marker); os.IsNotExist(err) {
			break
		}
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatalf("read %s: %v", path, r.err)
			}
			read() // served from the kernel's cache
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker never took the read")
		}
	}
	select {
	case r := <-done:
		t.Fatalf("read answered by a stalled worker: %q, %v", r.b, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	return func() {
		t.Helper()
		select {
		case r := <-done:
			if r.err != nil || len(strings.Fields(string(r.b))) != 5 {
				t.Errorf("read held by the killed worker: %q, %v; want a loadavg line", r.b, r.err)
			}
		case <-time.After(time.Minute):
			t.Fatal("read held by the killed worker still unanswered a minute later: the request was not answered again")
		}
	}
}
