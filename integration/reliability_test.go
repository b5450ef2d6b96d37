package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fusedState reads the daemon's STATE-DIR/fused.json, waiting for it: the
// supervisor writes it once it has started a worker, which may be after
// the mount first answers.
func fusedState(t *testing.T, d *daemon) (pid, worker, generation int) {
	t.Helper()
	var s struct{ Pid, Worker, Generation int }
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var b []byte
		b, err = os.ReadFile(filepath.Join(d.stateDir, "fused.json"))
		if err == nil {
			err = json.Unmarshal(b, &s)
		}
		if err == nil && s.Worker > 0 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatalf("read daemon state: %v", err)
	}
	return s.Pid, s.Worker, s.Generation
}

// waitWorker waits until the daemon reports a worker other than old.
func waitWorker(t *testing.T, d *daemon, old int) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, w, _ := fusedState(t, d); w != old && w > 0 {
			return w
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no new worker replaced %d within 30s", old)
	return 0
}

// container is a detached runc container with our hook, running script.
type container struct {
	id, state, bundle, out string
	hookLog                string
}

func (c *container) pid(t *testing.T) int {
	t.Helper()
	out, err := exec.Command(ociRuntime(), "--root", c.state, "state", c.id).Output()
	if err != nil {
		t.Fatalf("runc state %s: %v", c.id, err)
	}
	var s struct{ Pid int }
	if err := json.Unmarshal(out, &s); err != nil || s.Pid <= 0 {
		t.Fatalf("runc state %s: %s (%v)", c.id, out, err)
	}
	return s.Pid
}

// output is what the container printed so far.
func (c *container) output(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(c.out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// stopLoop asks the container's loop to finish and waits for its last line.
func (c *container) stopLoop(t *testing.T, last string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.bundle, "rootfs/tmp/stop"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if out := c.output(t); strings.Contains(out, last) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("container loop did not finish within 20s; output:\n%s", c.output(t))
	return ""
}

// runDetached starts a limited busybox container with our hook recording
// into stateDir, running script, with its stdout in a file. Each prepare
// function may change the bundle before the container starts.
func runDetached(t *testing.T, root, stateDir, script string, prepare ...func(bundle string)) *container {
	t.Helper()
	return runBundleDetached(t, root, stateDir, bundleOpts{script: script, limits: true, prepare: prepare})
}

// runBundleDetached is runDetached for a bundle of the caller's making.
func runBundleDetached(t *testing.T, root, stateDir string, o bundleOpts, extra ...string) *container {
	t.Helper()
	bundle := busyboxBundle(t, o)
	for _, p := range o.prepare {
		p(bundle)
	}
	hookLog := injectHook(t, bundle, root, append([]string{"--state-dir", stateDir}, extra...)...)
	runcSeq++
	c := &container{
		id:      fmt.Sprintf("lxcfs-rel-%d-%d", os.Getpid(), runcSeq),
		state:   t.TempDir(),
		bundle:  bundle,
		out:     filepath.Join(t.TempDir(), "out"),
		hookLog: hookLog,
	}
	f, err := os.Create(c.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ociRuntime(), "--root", c.state, "run", "-d", "--bundle", bundle, c.id)
	// Files, not pipes: the container inherits them, and a pipe would keep
	// cmd.Run waiting for the container to end.
	cmd.Stdout, cmd.Stderr, cmd.Stdin = f, f, nil
	if err := cmd.Run(); err != nil {
		t.Fatalf("runc run -d: %v\n%s", err, c.output(t))
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		exec.CommandContext(ctx, ociRuntime(), "--root", c.state, "delete", "--force", c.id).Run()
	})
	return c
}

// readLoop reads meminfo, stat and uptime with busybox cat (sendfile) as
// fast as it can and reports any read that failed or came back incomplete
// or malformed, until /tmp/stop appears. After each round it writes how many
// reads it has completed to /tmp/progress, so a test can wait for reads to
// happen instead of guessing how many a few seconds give.
func readLoop(memLines int) string {
	return fmt.Sprintf(`n=0; bad=0
while [ ! -e /tmp/stop ]; do
  echo $n > /tmp/progress
  for f in meminfo stat uptime; do
    n=$((n+1))
    if ! out=$(cat /proc/$f 2>&1); then echo "FAIL $f: $out"; bad=$((bad+1)); continue; fi
    case $f in
    meminfo) [ "$(echo "$out" | wc -l)" = %d ] && echo "$out" | grep -q '^MemTotal: *65536 kB$' || { echo "BAD meminfo: $(echo "$out" | head -2)"; bad=$((bad+1)); } ;;
    stat) echo "$out" | grep -q '^cpu0 ' && echo "$out" | grep -q '^softirq ' && ! echo "$out" | grep -q '^cpu1 ' || { echo "BAD stat"; bad=$((bad+1)); } ;;
    uptime) echo "$out" | grep -Eq '^[0-9]+\.[0-9][0-9] [0-9]+\.[0-9][0-9]$' || { echo "BAD uptime: $out"; bad=$((bad+1)); } ;;
    esac
  done
done
echo "DONE reads=$n bad=$bad"`, memLines)
}

// progress is how many reads the container's readLoop has completed.
// The loop rewrites the file after every round, so a read that catches it
// half-written counts as no progress yet.
func (c *container) progress(t *testing.T) int {
	t.Helper()
	b, _ := os.ReadFile(filepath.Join(c.bundle, "rootfs/tmp/progress"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// waitReads waits until the container's readLoop has completed at least n
// reads more than from, and returns how many it has completed. The deadline
// only catches a loop that stopped; a slow machine just takes longer.
func (c *container) waitReads(t *testing.T, from, n int) int {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got := c.progress(t)
		if got >= from+n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container's loop completed %d reads, no more, in 2 minutes (waiting for %d); output:\n%s", got, from+n, c.output(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readingContainer starts the daemon from a copy of its binary, so that an
// upgrade can replace the binary at its path, and a container running
// readLoop, and waits for the loop's first readsPerStep reads.
func readingContainer(t *testing.T) (d *daemon, exe string, c *container, done int) {
	t.Helper()
	exe = filepath.Join(t.TempDir(), "lxcfs-fused")
	copyFile(t, fusedBin, exe)
	d = startDaemon(t, exe, "")
	memLines := strings.Count(readFile(t, "/proc/meminfo"), "\n")
	c = runDetached(t, d.mp, d.stateDir, readLoop(memLines))
	// Its views are the containers' own connection's: the kills and
	// upgrades below must keep that one served too.
	requireOwnConnection(t, d, c.pid(t))
	return d, exe, c, c.waitReads(t, 0, readsPerStep)
}

// readsPerStep is how many reads the container completes after each kill
// and upgrade before the next one: enough that every kill lands while the
// loop is reading (each step sees reads both before and after it), whatever
// the machine's speed.
const readsPerStep = 30

// TestReliabilityKillsAndUpgrades: a container reads its views in a loop
// while the serving worker is killed with SIGKILL five times and the daemon
// is upgraded (binary replaced, re-executed) twice: no read fails, every
// read is complete and well-formed. Each step waits for the loop to have
// read readsPerStep more times, so the reads during the test are a
// guarantee, not a guess at how fast the machine is.
func TestReliabilityKillsAndUpgrades(t *testing.T) {
	requireRoot(t)
	d, exe, c, done := readingContainer(t)

	_, worker, _ := fusedState(t, d)
	for i := range 5 {
		if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
			t.Fatalf("kill worker %d: %v", worker, err)
		}
		worker = waitWorker(t, d, worker)
		done = c.waitReads(t, done, readsPerStep)
		if i == 1 || i == 3 {
			// A new build lands at the same path (new inode), then upgrade.
			copyFile(t, fusedBin, exe+".new")
			if err := os.Rename(exe+".new", exe); err != nil {
				t.Fatal(err)
			}
			runUpgrade(t, d, exe)
			worker = waitWorker(t, d, worker)
			done = c.waitReads(t, done, readsPerStep)
		}
	}
	pid, _, gen := fusedState(t, d)
	if pid != d.cmd.Process.Pid || gen != 2 {
		t.Errorf("after two upgrades: supervisor %d generation %d, want %d and 2", pid, gen, d.cmd.Process.Pid)
	}
	out := c.stopLoop(t, "DONE")
	m := regexp.MustCompile(`DONE reads=(\d+) bad=(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary from the container:\n%s", out)
	}
	reads, _ := strconv.Atoi(m[1])
	if m[2] != "0" || strings.Contains(out, "FAIL") || strings.Contains(out, "BAD") {
		t.Errorf("%s of %d reads failed or were malformed:\n%s", m[2], reads, out)
	}
	if reads < done {
		t.Errorf("the loop's summary counts %d reads, fewer than the %d it reported on the way", reads, done)
	}
	t.Logf("%d reads through 5 worker kills and 2 upgrades, %s failed", reads, m[2])
}

// okOrDeadLoop is a container's loop printing "ok" while its meminfo view
// shows its 64 MiB and "dead" while the view does not answer.
const okOrDeadLoop = `while [ ! -e /tmp/stop ]; do
  if grep -q '^MemTotal: *65536 kB$' /proc/meminfo 2>/dev/null; then echo ok; else echo dead; fi
  sleep 0.05
done; echo DONE`

// TestReliabilityRemountAfterRestart: the whole daemon stopped (views in the
// running container go dead) and started again: the views are back once it
// serves, re-attached by the daemon from the hook's records.
func TestReliabilityRemountAfterRestart(t *testing.T) {
	requireRoot(t)
	d1 := startDaemon(t, fusedBin, "")
	c := runDetached(t, d1.mp, d1.stateDir, okOrDeadLoop)
	pid := c.pid(t)
	requireOwnConnection(t, d1, pid)
	view := fmt.Sprintf("/proc/%d/root/proc/meminfo", pid)
	if _, err := os.Stat(view); err != nil {
		t.Fatalf("view in the container before the restart: %v", err)
	}

	d1.stop(t)
	// A statfs, not a stat or an open: the kernel may answer a stat from
	// the attributes it caches (--cache-ttl) and, on the containers' own
	// connection (FUSE no-open), an open without asking; a statfs always
	// asks.
	var sfs unix.Statfs_t
	err := unix.Statfs(view, &sfs)
	if err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("after the daemon stopped, the container's view answers %v; want not connected", err)
	}
	// A sendfile reader (busybox cat) is answered from the page cache
	// without asking: on the own connection, the pages the stopped worker
	// left would be served stale while nobody serves; it had them dropped.
	if n, err := sendfileView(t, view); err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("after the daemon stopped, sendfile of the container's view copied %d bytes (%v); want not connected", n, err)
	}

	// Let the container see its views dead before the restart.
	waitOutput(t, c, func(out string) bool { return strings.Contains(out, "dead") })

	d2 := startDaemon(t, fusedBin, d1.mp, "--state-dir", d1.stateDir)
	started := time.Now()
	// Back means answering on the own connection: while the re-attach
	// peels a dead view, the container's procfs file beneath answers too.
	reattached := func() error {
		if err := unix.Statfs(view, &sfs); err != nil {
			return err
		}
		own := ownMountpoint(t, d2)
		var a, b unix.Stat_t
		if own == "" || unix.Stat(own, &a) != nil || unix.Stat(view, &b) != nil || a.Dev != b.Dev {
			return fmt.Errorf("the view is not on the own connection (%s) yet", own)
		}
		return nil
	}
	for time.Since(started) < time.Minute {
		if err = reattached(); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(started)
	if err != nil {
		t.Fatalf("view still dead a minute after the daemon started again: %v", err)
	}
	t.Logf("views back in the running container %v after the daemon served again", took.Round(time.Millisecond))
	requireOwnConnection(t, d2, pid)

	// The container itself reads its 64 MiB again.
	waitOutput(t, c, func(out string) bool {
		return strings.Contains(out[strings.LastIndex(out, "dead"):], "ok")
	})
	c.stopLoop(t, "DONE")
	// The daemon logs the re-attach once it has done them all, which can
	// be after the container read its views again.
	if log := waitLog(t, d2, "views re-attached"); !strings.Contains(log, "views re-attached") {
		t.Errorf("daemon log does not report the re-attach:\n%s", log)
	}
}

// TestReliabilityRemountStalledContainer: a container that puts a FUSE file
// system of its own, one that never answers, over its dead view must not
// stall the re-attach of the other containers when the daemon starts again:
// each container gets remount's time limit, and the stalled one is reported.
func TestReliabilityRemountStalledContainer(t *testing.T) {
	requireRoot(t)
	d1 := startDaemon(t, fusedBin, "")
	hostile := runDetached(t, d1.mp, d1.stateDir, "while true; do sleep 1; done")
	healthy := runDetached(t, d1.mp, d1.stateDir, okOrDeadLoop)
	d1.stop(t)
	waitOutput(t, healthy, func(out string) bool { return strings.Contains(out, "dead") })
	stallingFUSE(t, hostile.pid(t), "/proc/meminfo")

	d2 := startDaemon(t, fusedBin, d1.mp, "--state-dir", d1.stateDir)
	waitOutput(t, healthy, func(out string) bool {
		return strings.Contains(out[strings.LastIndex(out, "dead"):], "ok")
	})
	healthy.stopLoop(t, "DONE")
	want := "remount: cannot re-attach views"
	log := waitLog(t, d2, want)
	line := ""
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, want) {
			line = l
		}
	}
	if !strings.Contains(line, hostile.id) || !strings.Contains(line, "timed out") {
		t.Fatalf("the daemon does not report the stalled container %s as timed out:\n%s", hostile.id, log)
	}
}

// stallingFUSE mounts over path, in the mount namespace of pid, a FUSE file
// system whose server never answers: the test holds its /dev/fuse open and
// never reads it, so every request waits. Closing it at cleanup aborts the
// connection, which ends those waits. The container's own busybox mounts
// it: a thread of this process that joined the container's namespace could
// be the main thread, which Go never ends, and /proc/self would then show
// the container's mounts for the rest of the tests.
func stallingFUSE(t *testing.T, pid int, path string) {
	t.Helper()
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(pid), "-m", "--",
		"/bin/busybox", "mount", "-t", "fuse", "-o", "fd=3,rootmode=100444,user_id=0,group_id=0", "stall", path)
	cmd.ExtraFiles = []*os.File{dev}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mount a stalling FUSE over %s in process %d's namespace: %v\n%s", path, pid, err, out)
	}
}

// waitOutput waits up to 30s for the container's output to satisfy ok.
func waitOutput(t *testing.T, c *container, ok func(string) bool) {
	t.Helper()
	waitOutputWithin(t, c, 30*time.Second, ok)
}

// waitOutputWithin is waitOutput with a deadline of the test's choosing.
func waitOutputWithin(t *testing.T, c *container, within time.Duration, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if ok(c.output(t)) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("container output never got there within %v:\n%s", within, c.output(t))
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestReliabilityResendsTakenRequest: a worker killed while it holds a
// request it read but never answered: the next worker answers it, by
// either mechanism. The kernel's FUSE_NOTIFY_RESEND (Linux 6.9) queues it
// again; the request journal (for older kernels, forced here by a test
// switch on any kernel) has the next worker answer it from the bytes the
// dead one left in the supervisor's memory. Without either the reader
// waits forever.
func TestReliabilityResendsTakenRequest(t *testing.T) {
	requireRoot(t)
	for _, tc := range []struct {
		name    string
		journal bool
		own     bool // a read of a container's own file, on its own connection
	}{
		{"kernel resend", false, false},
		{"journal", true, false},
		{"kernel resend, own connection", false, true},
		{"journal, own connection", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !tc.journal && !kernelAtLeast(t, 6, 9) {
				t.Skip("FUSE_NOTIFY_RESEND needs Linux 6.9; the journal case covers older kernels")
			}
			if tc.journal {
				t.Setenv("LXCFS_FUSED_TEST_NO_RESEND", "1")
			}
			marker := filepath.Join(t.TempDir(), "stall")
			t.Setenv("LXCFS_FUSED_TEST_STALL", marker)
			// No render timeout: the stalled read stays the worker's until
			// the kill, however slow the machine.
			d := startDaemon(t, fusedBin, "", "--read-timeout", "0")
			path := filepath.Join(d.mp, "proc/loadavg")
			if tc.own {
				c := runDetached(t, d.mp, d.stateDir, "exec sleep 1000")
				requireOwnConnection(t, d, c.pid(t))
				path = filepath.Join(viewRoot(t, d.stateDir, c), "proc/loadavg")
			}
			_, worker, _ := fusedState(t, d)
			held := stallReadOf(t, path, marker)
			syscall.Kill(worker, syscall.SIGKILL)
			held()
			// The mechanism that answered is the one the test meant. The
			// worker logs the replay after its answers, so the reader can
			// be answered first.
			replayedLine := "journal: answered the requests a dead worker left"
			log := readFile(t, d.logPath)
			if tc.journal {
				log = waitLog(t, d, replayedLine)
			}
			if replayed := strings.Contains(log, replayedLine); replayed != tc.journal {
				t.Errorf("answered from the journal: %v, want %v; log:\n%s", replayed, tc.journal, log)
			}
			if got, want := fusedStatus(t, d).Kernel.NotifyResend, map[bool]string{false: "yes", true: "journal"}[tc.journal]; !strings.HasPrefix(got, want) {
				t.Errorf("status notify_resend %q, want %s...", got, want)
			}
		})
	}
}

func kernelAtLeast(t *testing.T, major, minor int) bool {
	t.Helper()
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	var maj, min int
	fmt.Sscanf(b.String(), "%d.%d", &maj, &min)
	return maj > major || (maj == major && min >= minor)
}

// TestReliabilitySystemdFDStore plays systemd: it takes the FUSE device the
// daemon stores with FDSTORE=1 on NOTIFY_SOCKET, kills the supervisor (its
// worker follows), and hands the device to a new daemon the way systemd
// does after a restart (LISTEN_FDS, LISTEN_FDNAMES). Reads during the gap
// wait and then succeed; none fails.
func TestReliabilitySystemdFDStore(t *testing.T) {
	sd := newFakeSystemd(t)
	d1 := startDaemon(t, fusedBin, "")
	// The poll wakeup table is stored when the first worker starts, after
	// the connection and, where the kernel has no FUSE_NOTIFY_RESEND, the
	// request journal.
	sd.take(t, "lxcfs-fuse-", "lxcfs-polls", "lxcfs-ownfuse-")
	journaled := strings.HasPrefix(fusedStatus(t, d1).Kernel.NotifyResend, "journal")
	if journaled != sd.has("lxcfs-journal") {
		t.Fatalf("stored %v; the request journal is in use: %v", sd.names(), journaled)
	}
	// The containers' own connection is stored too (waited for above),
	// under a name of its own, with its journal.
	if journaled != sd.has("lxcfs-journal-own") {
		t.Fatalf("stored %v; the request journal is in use: %v", sd.names(), journaled)
	}
	t.Setenv("NOTIFY_SOCKET", "") // runc would wait for the container's READY
	c := runDetached(t, d1.mp, d1.stateDir, "exec sleep 1000")
	requireOwnConnection(t, d1, c.pid(t))
	ownMeminfo := filepath.Join(viewRoot(t, d1.stateDir, c), "proc/meminfo")

	stop := make(chan struct{})
	var (
		mu       sync.Mutex
		failures []error
		reads    atomic.Int64
	)
	meminfo := filepath.Join(d1.mp, "proc/meminfo")
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, p := range []string{meminfo, ownMeminfo} {
				if _, err := os.ReadFile(p); err != nil {
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
				}
			}
			reads.Add(1)
			time.Sleep(2 * time.Millisecond) // pacing, not synchronisation
		}
	}()
	waitCount(t, "reads before the supervisor dies", &reads, 10)

	// The supervisor dies; its worker follows. The stored fd keeps the
	// connection (and the mount) alive.
	sd.kill(d1)
	// A read started while nobody serves waits for the next daemon.
	gapRead := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(meminfo)
		gapRead <- err
	}()
	// The own connection's files are cached: a read made in the gap
	// reaches nobody until its render expires, and then waits likewise.
	ownGapRead := make(chan error, 1)
	go func() {
		_, err := os.ReadFile(ownMeminfo)
		ownGapRead <- err
	}()
	logPath := sd.restart(t, d1)
	select {
	case err := <-gapRead:
		if err != nil {
			t.Errorf("read made while no daemon served failed: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("read made while no daemon served still waiting a minute after the new daemon started")
	}
	select {
	case err := <-ownGapRead:
		if err != nil {
			t.Errorf("read of the container's own file made while no daemon served failed: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("read of the container's own file made while no daemon served still waiting a minute after the new daemon started")
	}
	waitCount(t, "reads after the new daemon started", &reads, reads.Load()+10)
	close(stop)
	select {
	case <-readerDone:
	case <-time.After(time.Minute):
		t.Fatal("a read was still waiting a minute after the new daemon served")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Errorf("%d of %d reads failed across the restart; first: %v", len(failures), reads.Load(), failures[0])
	}
	if log := readFile(t, logPath); !strings.Contains(log, "taken back from the systemd fd store") {
		t.Errorf("second daemon did not adopt the stored connection:\n%s", log)
	} else if journaled && !strings.Contains(log, "request journal taken back from the systemd fd store") {
		t.Errorf("second daemon did not adopt the stored request journal:\n%s", log)
	}
	if log := readFile(t, logPath); !strings.Contains(log, `msg="containers' own files on a connection of their own" mountpoint=`+d1.mp+`/.containers connection="taken back from the systemd fd store"`) {
		t.Errorf("second daemon did not adopt the stored own connection:\n%s", log)
	}
	t.Logf("%d reads across a supervisor kill and an fd-store restart, %d failed", reads.Load(), len(failures))
}

// waitCount waits until n reaches want; the deadline only catches a hang.
func waitCount(t *testing.T, what string, n *atomic.Int64, want int64) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); n.Load() < want; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d after a minute, want %d", what, n.Load(), want)
		}
	}
}

// TestReliabilityBackToBackUpgrades: a second upgrade asked for while the
// first is still retiring the old worker waits for that retirement (and its
// resend) before it executes: the daemon ends at generation 2, serving, and
// no read in the container fails. Before, the second exec could wait
// forever on a supervisor thread stuck on a request the retired worker held.
func TestReliabilityBackToBackUpgrades(t *testing.T) {
	requireRoot(t)
	d, exe, c, done := readingContainer(t)
	for range 2 {
		runUpgrade(t, d, exe)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if _, _, gen := fusedState(t, d); gen == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("two upgrades asked for; the daemon did not reach generation 2 in 2 minutes")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.waitReads(t, done, readsPerStep)
	out := c.stopLoop(t, "DONE")
	if strings.Contains(out, "FAIL") || strings.Contains(out, "BAD") {
		t.Errorf("reads failed or were malformed across back-to-back upgrades:\n%s", out)
	}
}

// sendfileView copies the file at path with sendfile(2), as busybox cat
// does, and returns the bytes copied.
func sendfileView(t *testing.T, path string) (int, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	out, err := os.CreateTemp(t.TempDir(), "sendfile")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	return unix.Sendfile(int(out.Fd()), int(f.Fd()), nil, 1<<20)
}
