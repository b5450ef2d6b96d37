package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fileCounts is the daemon's opens and reads of one file so far.
func fileCounts(t *testing.T, d *daemon, name string) (opens, reads uint64) {
	t.Helper()
	for _, f := range fusedStatus(t, d).Files {
		if f.Name == name {
			return f.Opens, f.Reads
		}
	}
	return 0, 0
}

// countsAtLeast waits up to 30s for the daemon to have counted at least
// opens and reads of name since (opens0, reads0): a request is counted
// after its answer is sent, so the reader can be back first.
func countsAtLeast(t *testing.T, d *daemon, name string, opens0, reads0, opens, reads uint64) (uint64, uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		o, r := fileCounts(t, d, name)
		if (o-opens0 >= opens && r-reads0 >= reads) || time.Now().After(deadline) {
			return o, r
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// memoryLimitFile is the file that sets the memory limit of the cgroup
// process pid is in (v1 memory.limit_in_bytes or v2 memory.max).
func memoryLimitFile(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctrl := range strings.Split(parts[1], ",") {
			if ctrl == "memory" {
				return filepath.Join("/sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes")
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
				return filepath.Join("/sys/fs/cgroup", parts[2], "memory.max")
			}
		}
	}
	t.Fatalf("no memory cgroup for pid %d in:\n%s", pid, b)
	return ""
}

// memTotalPrefix reads the start of path as a reader that asks for less
// than the file holds does: within the size the kernel knows, so a cached
// page answers it with no request to the daemon, however old the page.
func memTotalPrefix(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 32)
	n, err := f.ReadAt(buf, 0)
	if n < len(buf) {
		t.Fatalf("read %s: %d bytes, %v", path, n, err)
	}
	line, _, _ := strings.Cut(string(buf), "\n")
	return strings.Join(strings.Fields(line), " ")
}

// TestCacheTTLContainerFiles: with --cache-ttl, a container's own files
// (bound by the hook) are served by the kernel within the TTL: 200 reads
// with busybox cat inside the container reach the daemon as opens, but
// hardly as reads (one per page cached). A limit changed on the container's
// cgroup then shows once the TTL has passed, also to a reader that reads
// less than the file (no size check, so only the daemon's invalidation
// refreshes its pages). The shared tree stays uncached: every cat of it
// reads.
func TestCacheTTLContainerFiles(t *testing.T) {
	requireRoot(t)
	const ttl = 2 * time.Second
	d := startDaemon(t, fusedBin, "", "--cache-ttl", ttl.String())
	c := runDetached(t, d.mp, d.stateDir, `while [ ! -e /tmp/go ]; do sleep 0.01; done
i=0; while [ $i -lt 200 ]; do cat /proc/meminfo > /dev/null || echo ERROR; i=$((i+1)); done
echo DONE; exec sleep 1000`)
	root := viewRoot(t, d.stateDir, c)
	if !strings.HasPrefix(root, d.mp+"/.containers/") {
		t.Fatalf("views bound from %s, want the container's own files below %s/.containers", root, d.mp)
	}
	own := filepath.Join(root, "proc/meminfo")
	if got := memTotalPrefix(t, own); got != "MemTotal: 65536 kB" {
		t.Fatalf("container's meminfo starts %q, want MemTotal: 65536 kB", got)
	}
	requireOwnConnection(t, d, c.pid(t))

	opens0, reads0 := fileCounts(t, d, "proc/meminfo")
	start := time.Now()
	c.touch(t, "go")
	waitLineWithin(t, c, "DONE", 120*time.Second)
	spanned := int(time.Since(start)/ttl) + 1
	opens1, reads1 := fileCounts(t, d, "proc/meminfo")
	// On the containers' own connection the kernel sends no OPEN (FUSE
	// no-open), so no RELEASE either: no open of the 200 reaches the
	// daemon. (Were they sent, all but the last few would be counted by
	// now: each is counted as it is answered, before its cat goes on.)
	if opens1 != opens0 {
		t.Errorf("200 cats made %d opens in the daemon, want 0 (no OPEN on the own connection)", opens1-opens0)
	}
	// The kernel asks for meminfo's one page once per TTL (once more if
	// an invalidation lands during a fill), however fast the cats run: a
	// slow machine only spreads them over more TTLs.
	if allowed := 3 * spanned; allowed >= 100 {
		t.Logf("200 cats spanned %d TTLs: too slow to tell cached reads from uncached ones", spanned)
	} else if n := reads1 - reads0; n > uint64(allowed) {
		t.Errorf("200 cats of the container's own meminfo over %d TTLs made %d reads in the daemon, want at most %d (the kernel serves the rest)", spanned, n, allowed)
	}

	// The shared tree: every reader's own answer, never cached.
	_, sharedReads0 := fileCounts(t, d, "proc/meminfo")
	for range 20 {
		if _, err := os.ReadFile(filepath.Join(d.mp, "proc/meminfo")); err != nil {
			t.Fatal(err)
		}
	}
	if _, r := countsAtLeast(t, d, "proc/meminfo", 0, sharedReads0, 0, 20); r-sharedReads0 < 20 {
		t.Errorf("20 reads of the shared meminfo made %d reads in the daemon, want each to reach it", r-sharedReads0)
	}

	// 96 MiB: MemTotal keeps its width, so no size change drops the page.
	limit := memoryLimitFile(t, c.pid(t))
	memTotalPrefix(t, own) // cached now
	if err := os.WriteFile(limit, []byte(strconv.Itoa(96<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	for memTotalPrefix(t, own) != "MemTotal: 98304 kB" {
		if time.Since(changed) > ttl+30*time.Second {
			t.Fatalf("the container's meminfo still shows %q %v after its limit changed (TTL %v)", memTotalPrefix(t, own), time.Since(changed), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("new limit seen %v after the change (TTL %v)", time.Since(changed).Round(time.Millisecond), ttl)
}

// TestCacheForgottenAcrossWorkerKill: pages the kernel caches outlive the
// worker that filled them. With a TTL of a minute, a limit changed while the
// container's meminfo is cached, then a worker killed with SIGKILL: the new
// worker has the kernel forget the container's files before it serves, so
// the new limit shows within the daemon's limit reuse, not after the old
// worker's TTL.
func TestCacheForgottenAcrossWorkerKill(t *testing.T) {
	requireRoot(t)
	const ttl = time.Minute
	d := startDaemon(t, fusedBin, "", "--cache-ttl", ttl.String())
	c := runDetached(t, d.mp, d.stateDir, "exec sleep 1000")
	own := filepath.Join(viewRoot(t, d.stateDir, c), "proc/meminfo")
	if got := memTotalPrefix(t, own); got != "MemTotal: 65536 kB" {
		t.Fatalf("container's meminfo starts %q, want MemTotal: 65536 kB", got)
	}
	if err := os.WriteFile(memoryLimitFile(t, c.pid(t)), []byte(strconv.Itoa(96<<20)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, worker, _ := fusedState(t, d)
	if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
		t.Fatalf("kill worker %d: %v", worker, err)
	}
	waitWorker(t, d, worker)
	killed := time.Now()
	// Well under the TTL: only the new worker's invalidation can make it.
	for memTotalPrefix(t, own) != "MemTotal: 98304 kB" {
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("the container's meminfo still shows %q %v after the worker was replaced (TTL %v)", memTotalPrefix(t, own), time.Since(killed), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
