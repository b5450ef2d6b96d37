package integration

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
)

// withHolder puts testdata/fdholder in the container as /bin/fdholder.
func withHolder(t *testing.T) func(string) {
	return func(bundle string) { copyFile(t, holderBin, filepath.Join(bundle, "rootfs/bin/fdholder")) }
}

// withMemoryLimit sets the container's memory limit.
func withMemoryLimit(t *testing.T, mib int) func(string) {
	return func(bundle string) {
		editConfig(t, bundle, func(c map[string]any) {
			res := c["linux"].(map[string]any)["resources"].(map[string]any)
			res["memory"] = map[string]any{"limit": mib << 20}
		})
	}
}

// touch creates a file in the container's /tmp: fdholder's rounds and
// switches.
func (c *container) touch(t *testing.T, name string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(c.bundle, "rootfs/tmp", name), nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitLine waits for a line of the container's output matching re and
// returns its submatches.
func waitLine(t *testing.T, c *container, re string) []string {
	t.Helper()
	return waitLineWithin(t, c, re, 30*time.Second)
}

// holdRound has A read its held file at offset 0 100 times and checks that
// every read showed A's own 64 MiB.
func holdRound(t *testing.T, a *container, round int, when string) {
	t.Helper()
	a.touch(t, "cmd-"+strconv.Itoa(round))
	got := waitLine(t, a, `round=`+strconv.Itoa(round)+` memtotal=(.*)`)[1]
	if got != "65536:100" {
		t.Errorf("%s: A's 100 reads of its held meminfo at offset 0 showed MemTotal (kB:reads) %s, want 65536:100", when, got)
	}
}

// upgradeDaemon replaces the daemon's binary at exe with a new copy and
// runs `lxcfs-fused upgrade`, returning the new worker's pid.
func upgradeDaemon(t *testing.T, d *daemon, exe string, worker int) int {
	t.Helper()
	copyFile(t, fusedBin, exe+".new")
	if err := os.Rename(exe+".new", exe); err != nil {
		t.Fatal(err)
	}
	runUpgrade(t, d, exe)
	return waitWorker(t, d, worker)
}

// runUpgrade runs `EXE upgrade` against d (EXE: the binary now at the
// daemon's path, or any build that can ask it); the deadline only catches
// a hang.
func runUpgrade(t *testing.T, d *daemon, exe string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, exe, "--state-dir", d.stateDir, "upgrade").CombinedOutput(); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
}

// hookModes are the two ways a container's views are bound: its own files,
// registered with the daemon (the hook shares the daemon's state directory),
// or the shared LXCFS-compatible tree, answered per reader (the hook finds
// no daemon to register with, as with an older release or LXCFS).
var hookModes = []struct {
	name   string
	shared bool
}{{"own files", false}, {"shared tree", true}}

// hookStateDir is the state directory the test's hook uses in a mode, and
// checkMode checks the container's views came from where the mode says.
func hookStateDir(t *testing.T, d *daemon, shared bool) string {
	if shared {
		return filepath.Join(t.TempDir(), "hook-state")
	}
	return d.stateDir
}

func checkMode(t *testing.T, d *daemon, stateDir string, c *container, shared bool) {
	t.Helper()
	root := viewRoot(t, stateDir, c)
	if own := strings.HasPrefix(root, d.mp+"/.containers/"); own == shared || (shared && root != d.mp) {
		t.Fatalf("views bound from %s (mount %s), want the %s", root, d.mp, map[bool]string{true: "shared tree", false: "container's own files"}[shared])
	}
}

// TestIdentityHandleAcrossKillAndUpgrade: container A (64 MiB) keeps its
// /proc/meminfo open across a worker kill and an upgrade, while container B
// (128 MiB) opens the same file hundreds of times after each. A new worker
// numbering its handles from scratch gave B a number A's handle already had,
// and A's next read at offset 0 showed B's MemTotal.
func TestIdentityHandleAcrossKillAndUpgrade(t *testing.T) {
	requireRoot(t)
	for _, mode := range hookModes {
		t.Run(mode.name, func(t *testing.T) {
			exe := filepath.Join(t.TempDir(), "lxcfs-fused")
			copyFile(t, fusedBin, exe)
			d := startDaemon(t, exe, "")
			state := hookStateDir(t, d, mode.shared)
			a := runDetached(t, d.mp, state, "exec /bin/fdholder hold /proc/meminfo", withHolder(t))
			checkMode(t, d, state, a, mode.shared)
			waitLine(t, a, `opened tid=\d+`)
			a.touch(t, "thread-exit")
			waitLine(t, a, "thread exited")
			holdRound(t, a, 1, "before any kill")

			_, worker, _ := fusedState(t, d)
			if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
				t.Fatalf("kill worker %d: %v", worker, err)
			}
			worker = waitWorker(t, d, worker)
			// 400 at a time: runc's default soft limit is 1024 descriptors.
			b := runDetached(t, d.mp, state, "exec /bin/fdholder open 400 /proc/meminfo", withHolder(t), withMemoryLimit(t, 128))
			b.touch(t, "cmd-1")
			if got := waitLine(t, b, `round=1 opened=400 memtotal=(\d*)`)[1]; got != "131072" {
				t.Fatalf("B sees MemTotal %q kB, want its own 131072", got)
			}
			holdRound(t, a, 2, "after a worker kill and 400 opens by B")

			upgradeDaemon(t, d, exe, worker)
			b.touch(t, "cmd-2")
			waitLine(t, b, `round=2 opened=800 memtotal=131072`)
			holdRound(t, a, 3, "after an upgrade and 400 more opens by B")
		})
	}
}

// TestIdentityThreadIDReuse: a thread of container A opens /proc/meminfo and
// exits; the host's next pid is steered onto that thread's id and given to a
// process of container B. A's reads of the file it keeps open must stay A's:
// a handle that kept its opener's pid was resolved to B.
func TestIdentityThreadIDReuse(t *testing.T) {
	requireRoot(t)
	for _, mode := range hookModes {
		t.Run(mode.name, func(t *testing.T) { threadIDReuse(t, mode.shared) })
	}
}

func threadIDReuse(t *testing.T, shared bool) {
	d := startDaemon(t, fusedBin, "")
	state := hookStateDir(t, d, shared)
	a := runDetached(t, d.mp, state, "exec /bin/fdholder hold /proc/meminfo", withHolder(t))
	checkMode(t, d, state, a, shared)
	nsTid := waitLine(t, a, `opened tid=(\d+)`)[1]
	tid := hostTid(t, a.pid(t), nsTid)
	a.touch(t, "thread-exit")
	waitLine(t, a, "thread exited")

	b := runDetached(t, d.mp, state, "echo ready; exec sleep 100000", withMemoryLimit(t, 128))
	waitLine(t, b, "ready")
	bPid := strconv.Itoa(b.pid(t))
	bNS, err := os.Readlink("/proc/" + bPid + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	// B's processes are forked by nsenter inside B's pid namespace. A
	// FIFO read by B's shell did this before, and the test blocked opening
	// it forever once that shell had gone.
	taken := false
	for attempt := 1; attempt <= 100 && !taken; attempt++ {
		// Other processes on the host may take the pid first; each try
		// starts once the id is free again.
		for deadline := time.Now().Add(30 * time.Second); pidExists(tid); time.Sleep(10 * time.Millisecond) {
			if ns, _ := os.Readlink("/proc/" + strconv.Itoa(tid) + "/ns/pid"); ns == bNS {
				break
			}
			if time.Now().After(deadline) {
				comm, _ := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/comm")
				status, _ := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/status")
				t.Fatalf("pid %d stayed taken by another process (%s) for 30s:\n%s", tid, strings.TrimSpace(string(comm)), status)
			}
		}
		// The shell steers the next pid and becomes nsenter (exec: no pid
		// of its own), whose child in B's namespace gets the steered pid
		// unless another process on the host forks in between.
		fork := exec.Command("sh", "-c", fmt.Sprintf("echo %d > /proc/sys/kernel/ns_last_pid && exec nsenter --target %s --pid -- sleep 100000", tid-1, bPid))
		if err := fork.Start(); err != nil {
			t.Fatalf("fork in B's pid namespace: %v", err)
		}
		t.Cleanup(func() { fork.Process.Kill(); fork.Wait() })
		// nsenter forks its child and waits for it: the child is there
		// once nsenter has one.
		var child string
		for deadline := time.Now().Add(30 * time.Second); child == ""; time.Sleep(5 * time.Millisecond) {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", fork.Process.Pid, fork.Process.Pid))
			if f := strings.Fields(string(b)); len(f) > 0 {
				child = f[0]
			} else if time.Now().After(deadline) {
				t.Fatalf("nsenter started no child in B's pid namespace within 30s")
			}
		}
		if child == strconv.Itoa(tid) {
			ns, _ := os.Readlink("/proc/" + child + "/ns/pid")
			taken = ns == bNS
		}
		if !taken {
			// Missed: free whatever pid this try's processes took.
			fork.Process.Kill()
			fork.Wait()
			if pid, err := strconv.Atoi(child); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if !taken {
		t.Fatalf("no process of B got pid %d in 100 tries", tid)
	}
	holdRound(t, a, 1, "after B's process took the opening thread's id")
}

// hostTid maps a thread id as process pid's namespace sees it to the host's.
func hostTid(t *testing.T, pid int, nsTid string) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + task.Name() + "/status")
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if f := strings.Fields(strings.TrimPrefix(line, "NSpid:")); strings.HasPrefix(line, "NSpid:") && len(f) > 1 && f[len(f)-1] == nsTid {
				n, _ := strconv.Atoi(f[0])
				return n
			}
		}
	}
	t.Fatalf("no thread %s in process %d", nsTid, pid)
	return 0
}

func pidExists(pid int) bool {
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

// withPidNS sets the container's pid namespace: "" shares the host's,
// a path joins that namespace.
func withPidNS(t *testing.T, path string) func(string) {
	return func(bundle string) {
		editConfig(t, bundle, func(c map[string]any) {
			linux := c["linux"].(map[string]any)
			var kept []any
			for _, ns := range linux["namespaces"].([]any) {
				if ns.(map[string]any)["type"] != "pid" {
					kept = append(kept, ns)
				}
			}
			if path != "" {
				kept = append(kept, map[string]any{"type": "pid", "path": path})
			}
			linux["namespaces"] = kept
		})
	}
}

// viewRoot is where the hook bound the container's views from, as it
// recorded them for re-attaching in stateDir.
func viewRoot(t *testing.T, stateDir string, c *container) string {
	t.Helper()
	var rec struct {
		Root string `json:"lxcfs_root"`
	}
	b, err := os.ReadFile(filepath.Join(stateDir, "containers", c.id+".json"))
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err != nil {
		t.Fatalf("hook record of %s: %v", c.id, err)
	}
	return rec.Root
}

const printMemTotal = `echo "memtotal=$(grep MemTotal /proc/meminfo | tr -s ' ')"`

// TestIdentitySharedPidNamespaces: containers whose readers cannot be told
// apart by pid namespace (one in the host's, two sharing one) each see their
// own limits through the hook, which registers each container and binds it
// files of its own. Resolved per reader, the first saw the host's MemTotal
// and the second of the pair its partner's.
func TestIdentitySharedPidNamespaces(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, fusedBin, "")
	h := runDetached(t, d.mp, d.stateDir, printMemTotal+"; exec sleep 1000", withPidNS(t, ""))
	a := runDetached(t, d.mp, d.stateDir, printMemTotal+"; exec sleep 1000")
	b := runDetached(t, d.mp, d.stateDir, printMemTotal+"; sleep 0.2",
		withMemoryLimit(t, 128), withPidNS(t, "/proc/"+strconv.Itoa(a.pid(t))+"/ns/pid"))
	for _, tc := range []struct {
		name string
		c    *container
		want string
	}{
		{"in the host's pid namespace (64 MiB)", h, "MemTotal: 65536 kB"},
		{"owning a pid namespace (64 MiB)", a, "MemTotal: 65536 kB"},
		{"joining its pid namespace (128 MiB)", b, "MemTotal: 131072 kB"},
	} {
		if got := waitLine(t, tc.c, `memtotal=(.*)`)[1]; got != tc.want {
			t.Errorf("container %s reads %q, want %q", tc.name, got, tc.want)
		}
	}

	// B's files go away with B (its init exits after the read).
	own := viewRoot(t, d.stateDir, b)
	if !strings.Contains(own, "/.containers/") {
		t.Fatalf("B's views are bound from %s, not from files of its own", own)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(own, "proc/meminfo")); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there 10s after its container exited", own)
		}
	}
	if got := readFile(t, filepath.Join(viewRoot(t, d.stateDir, a), "proc/meminfo")); !regexp.MustCompile(`(?m)^MemTotal: +65536 kB$`).MatchString(got) {
		t.Errorf("A's own files, read by the host, do not show A's limit:\n%s", got)
	}
}

// withNofile lets the container raise its descriptor limit up to hard.
func withNofile(t *testing.T, hard uint64) func(string) {
	return func(bundle string) {
		editConfig(t, bundle, func(c map[string]any) {
			proc := c["process"].(map[string]any)
			proc["rlimits"] = []any{map[string]any{"type": "RLIMIT_NOFILE", "hard": hard, "soft": 1024}}
		})
	}
}

// TestIdentityFdFlood: a container raises its soft descriptor limit to the
// hard one and opens /proc/cpuinfo and /proc/meminfo until it has no
// descriptor left, holding them all. The worker's RSS stays within its
// snapshot budget (DefaultSnapshotLimit per container; every open kept its
// snapshot until close before), another container's reads keep working, and
// once the flooding container exits the worker's RSS and descriptors are
// back near where they were.
func TestIdentityFdFlood(t *testing.T) {
	requireRoot(t)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// No CAP_SYS_RESOURCE here: the container cannot go past our hard limit.
	hard := min(lim.Max, 1<<20)
	d := startDaemon(t, fusedBin, "", "--log-level", "info")
	b := runDetached(t, d.mp, d.stateDir, "exec /bin/fdholder open 1 /proc/meminfo", withHolder(t))
	b.touch(t, "cmd-1")
	waitLine(t, b, `round=1 opened=1 memtotal=65536`)
	_, f0, _, r0 := workerStats(t, d)

	a := runDetached(t, d.mp, d.stateDir, "exec /bin/fdholder flood /proc/cpuinfo /proc/meminfo",
		withHolder(t), withNofile(t, hard), withMemoryLimit(t, 256))
	m := waitLineWithin(t, a, `flooded=(\d+) limit=(\d+)`, 120*time.Second)
	n, _ := strconv.Atoi(m[1])
	if n < int(hard)/2 {
		t.Fatalf("the container opened only %d files with a hard limit of %d", n, hard)
	}
	_, f1, _, r1 := workerStats(t, d)
	t.Logf("%d files held open by one container: worker RSS %d -> %d kB, fds %d -> %d", n, r0, r1, f0, f1)
	// The snapshots the flooder may keep, with room for the Go runtime.
	if bound := r0 + (fusefs.DefaultSnapshotLimit+12<<20)>>10; r1 > bound {
		t.Errorf("worker RSS %d kB with %d files held open by one container, want at most %d kB (%d before)", r1, n, bound, r0)
	}
	b.touch(t, "cmd-2")
	waitLine(t, b, `round=2 opened=2 memtotal=65536`)

	a.touch(t, "cmd-1") // the flooder exits, closing everything
	var f2, r2 int
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		_, f2, _, r2 = workerStats(t, d)
		if r2 <= r0+8<<10 && f2 <= f0+4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after the flooder exited: worker RSS %d kB (was %d), fds %d (were %d)", r2, r0, f2, f0)
		}
	}
	t.Logf("after the flooder exited: RSS %d kB, fds %d", r2, f2)
}

// waitLineWithin is waitLine with a deadline of the test's choosing.
func waitLineWithin(t *testing.T, c *container, re string, within time.Duration) []string {
	t.Helper()
	rx := regexp.MustCompile(`(?m)^` + re + `$`)
	var m []string
	waitOutputWithin(t, c, within, func(out string) bool {
		m = rx.FindStringSubmatch(out)
		return m != nil || strings.Contains(out, "ERROR")
	})
	if m == nil {
		t.Fatalf("no line %q from the container, which failed:\n%s", re, c.output(t))
	}
	return m
}

// pageCacheLoop waits for /tmp/go, then reads /proc/meminfo 300 times with
// busybox cat (sendfile, through the page cache) while fdholder maps it 300
// times (a private map, through the page cache too), and counts the reads
// and maps that did not show want kB.
func pageCacheLoop(want int) string {
	return fmt.Sprintf(`/bin/fdholder mmap 300 %[1]d /proc/meminfo &
while [ ! -e /tmp/go ]; do sleep 0.01; done
n=0; bad=0
while [ $n -lt 300 ]; do
  n=$((n+1))
  cat /proc/meminfo | grep -q '^MemTotal: *%[1]d kB$' || bad=$((bad+1))
done
echo "DONE reads=$n bad=$bad"
wait`, want)
}

// TestIdentityPageCache: two containers with different limits read
// /proc/meminfo with busybox cat (sendfile reads through the page cache) and
// map it (so do private maps) at the same time. Through files every
// container shares, one inode and its page cache, reads showed the other
// container's MemTotal; through each container's own files, none may.
func TestIdentityPageCache(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, fusedBin, "")
	a := runDetached(t, d.mp, d.stateDir, pageCacheLoop(65536), withHolder(t))
	b := runDetached(t, d.mp, d.stateDir, pageCacheLoop(131072), withHolder(t), withMemoryLimit(t, 128))
	a.touch(t, "go")
	b.touch(t, "go")
	for _, c := range []*container{a, b} {
		for _, what := range []string{"reads", "mmaps"} {
			m := waitLineWithin(t, c, `DONE `+what+`=(\d+) bad=(\d+)`, 120*time.Second)
			if m[2] != "0" {
				t.Errorf("%s of %s %s of the container's own meminfo showed another MemTotal", m[2], m[1], what)
			}
		}
	}
}

// buildWithExtraFile builds lxcfs-fused as a later release that serves one
// more file would be: proc/aaa-extra (first in name order) appended to
// NodeTable and served. It uses go build -overlay, so the checkout is not
// touched.
func buildWithExtraFile(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	overlay := map[string]string{}
	edit := func(src, old, new string) {
		abs, err := filepath.Abs(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(abs)
		if err != nil {
			t.Fatal(err)
		}
		i := strings.LastIndex(string(b), old)
		if i < 0 {
			t.Fatalf("%s has no %q to change for the test build; update buildWithExtraFile", src, old)
		}
		out := filepath.Join(dir, filepath.Base(src))
		if err := os.WriteFile(out, []byte(string(b[:i])+new+string(b[i+len(old):])), 0o644); err != nil {
			t.Fatal(err)
		}
		overlay[abs] = out
	}
	edit("../pkg/fusefs/nodeids.go", "\n}", "\n\t\"proc/aaa-extra\",\n}")
	edit("../cmd/lxcfs-fused/worker.go", "names := files.List()", `names := append(files.List(), "proc/aaa-extra")`)
	b, err := json.Marshal(map[string]any{"Replace": overlay})
	if err != nil {
		t.Fatal(err)
	}
	overlayFile := filepath.Join(dir, "overlay.json")
	if err := os.WriteFile(overlayFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "lxcfs-fused-extra")
	cmd := exec.Command("go", "build", "-tags", testBuildTags, "-overlay", overlayFile, "-o", bin, "../cmd/lxcfs-fused")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build a release with one more file: %v\n%s", err, out)
	}
	return bin
}

// filesLoop prints, at each round (/tmp/cmd-N), what a few of the served
// files look like: every count is 1 when each file is what its name says.
const filesLoop = `round=1; while true; do
  while [ ! -e /tmp/cmd-$round ]; do sleep 0.01; done
  echo "round=$round meminfo=$(grep -c '^MemTotal:' /proc/meminfo) stat=$(grep -c '^cpu ' /proc/stat) cpuinfo=$(grep -c '^processor' /proc/cpuinfo) uptime=$(grep -cE '^[0-9.]+ [0-9.]+$' /proc/uptime) loadavg=$(grep -cE '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+/[0-9]+ [0-9]+$' /proc/loadavg) online=$(grep -cE '^[0-9]' /sys/devices/system/cpu/online)"
  round=$((round+1))
done`

// TestIdentityUpgradeAcrossReleases: a live daemon is upgraded to a build
// whose file table gained an entry that sorts first. Every file already
// bound in running containers must still be the same file: node IDs were
// positions in the sorted file list, and such a release showed another
// file under each name.
func TestIdentityUpgradeAcrossReleases(t *testing.T) {
	requireRoot(t)
	extra := buildWithExtraFile(t)
	for _, mode := range hookModes {
		t.Run(mode.name, func(t *testing.T) {
			exe := filepath.Join(t.TempDir(), "lxcfs-fused")
			copyFile(t, fusedBin, exe)
			d := startDaemon(t, exe, "")
			state := hookStateDir(t, d, mode.shared)
			c := runDetached(t, d.mp, state, filesLoop)
			checkMode(t, d, state, c, mode.shared)
			want := "meminfo=1 stat=1 cpuinfo=1 uptime=1 loadavg=1 online=1"
			c.touch(t, "cmd-1")
			if got := waitLine(t, c, `round=1 (.*)`)[1]; got != want {
				t.Fatalf("before the upgrade: %s, want %s", got, want)
			}
			_, worker, _ := fusedState(t, d)
			copyFile(t, extra, exe+".new")
			if err := os.Rename(exe+".new", exe); err != nil {
				t.Fatal(err)
			}
			runUpgrade(t, d, exe)
			waitWorker(t, d, worker)
			if _, err := os.Stat(filepath.Join(d.mp, "proc/aaa-extra")); err != nil {
				t.Fatalf("the upgraded daemon does not serve its new file: %v", err)
			}
			c.touch(t, "cmd-2")
			if got := waitLine(t, c, `round=2 (.*)`)[1]; got != want {
				t.Errorf("after an upgrade to a release with one more file: %s, want %s", got, want)
			}
		})
	}
}

// TestIdentityCPUDirOwnTree: a registered container's CPU directory is its
// own tree's: a container in the host's pid namespace (whose readers look
// like the host's) sees only its cpuset's cpuN/, with the host's content
// inside, and a host process reading that container's tree sees the same,
// while the shared tree shows the host reader every CPU.
func TestIdentityCPUDirOwnTree(t *testing.T) {
	requireRoot(t)
	if host := cpuDirs(t, "/sys/devices/system/cpu"); len(host) < 2 {
		t.Skipf("needs 2 host CPUs, has %v: the container's cpuset 0 must hide one", host)
	}
	d := startDaemon(t, fusedBin, "")
	c := runDetached(t, d.mp, d.stateDir, `echo "cpudirs=$(ls /sys/devices/system/cpu | grep '^cpu[0-9]' | tr '\n' ' ')"
echo "core=$(cat /sys/devices/system/cpu/cpu0/topology/core_id)"
echo "online=$(cat /sys/devices/system/cpu/online)"
exec sleep 1000`, withPidNS(t, ""))
	if got := waitLine(t, c, `cpudirs=(.*)`)[1]; got != "cpu0 " {
		t.Errorf("the container lists cpuN %q, want its cpuset's alone, \"cpu0 \"", got)
	}
	want := readTrim(t, "/sys/devices/system/cpu/cpu0/topology/core_id")
	if got := waitLine(t, c, `core=(.*)`)[1]; got != want {
		t.Errorf("cpu0/topology/core_id in the container = %q, want the host's %q", got, want)
	}
	if got := waitLine(t, c, `online=(.*)`)[1]; got != "0" {
		t.Errorf("online in the container = %q, want 0", got)
	}

	own := viewRoot(t, d.stateDir, c)
	if !strings.Contains(own, "/.containers/") {
		t.Fatalf("the container's views are bound from %s, not from files of its own", own)
	}
	if got := cpuDirs(t, filepath.Join(own, "sys/devices/system/cpu")); strings.Join(got, " ") != "cpu0" {
		t.Errorf("the host reading the container's tree lists %v, want [cpu0]: hidden by the tree's container, not the reader", got)
	}
	if _, err := os.Stat(filepath.Join(own, "sys/devices/system/cpu/cpu1")); !os.IsNotExist(err) {
		t.Errorf("cpu1 in the container's tree: %v, want it hidden", err)
	}
	if got := readTrim(t, filepath.Join(own, "sys/devices/system/cpu/cpu0/topology/core_id")); got != want {
		t.Errorf("the container's tree's cpu0 core_id = %q, want %q", got, want)
	}
	host := cpuDirs(t, "/sys/devices/system/cpu")
	if got := cpuDirs(t, filepath.Join(d.mp, "sys/devices/system/cpu")); strings.Join(got, " ") != strings.Join(host, " ") {
		t.Errorf("the host reading the shared tree lists %v, want the host's %v", got, host)
	}
}

// cpuDirs lists the cpuN entries of a CPU directory.
func cpuDirs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if regexp.MustCompile(`^cpu[0-9]+$`).MatchString(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

// reservedIDs lists the container IDs the daemon reserved ahead of
// registration (records that name no container yet), from its ID file.
func reservedIDs(t *testing.T, d *daemon) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.stateDir, "container-ids"))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for id := 1; (id+1)*32 <= len(b); id++ {
		if binary.LittleEndian.Uint32(b[id*32:]) == 0 {
			ids[strconv.Itoa(id)] = true
		}
	}
	return ids
}

// waitSpares waits until the daemon has made n spare IDs ready in all
// (its log says each, at debug level) and returns the IDs it reserved.
func waitSpares(t *testing.T, d *daemon, n int) map[string]bool {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if strings.Count(readFile(t, d.logPath), `msg="spare container ID ready"`) >= n {
			return reservedIDs(t, d)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon did not make %d spare container IDs ready within a minute", n)
		}
	}
}

// TestIdentitySpareIDs: the daemon keeps container IDs reserved, their
// trees looked up in advance, and gives each to exactly one registering
// container: two containers, one in the host's pid namespace, get two of
// them and each reads its own limit through them (not the daemon's nor the
// other's), and the daemon reserves more as they are taken. Their hooks,
// sharing the daemon's state directory, have the daemon run create-runtime
// for them (pkg/delegate), and log what it did.
func TestIdentitySpareIDs(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, fusedBin, "")
	spares := waitSpares(t, d, 4)
	a := runDetached(t, d.mp, d.stateDir, printMemTotal+"; exec sleep 1000", withPidNS(t, ""))
	b := runDetached(t, d.mp, d.stateDir, printMemTotal+"; exec sleep 1000", withMemoryLimit(t, 128))
	roots := map[string]bool{}
	for _, tc := range []struct {
		name string
		c    *container
		want string
	}{
		{"A, in the host's pid namespace (64 MiB)", a, "MemTotal: 65536 kB"},
		{"B (128 MiB)", b, "MemTotal: 131072 kB"},
	} {
		if got := waitLine(t, tc.c, `memtotal=(.*)`)[1]; got != tc.want {
			t.Errorf("container %s reads %q, want %q", tc.name, got, tc.want)
		}
		root := viewRoot(t, d.stateDir, tc.c)
		id := filepath.Base(root)
		if !spares[id] || roots[root] {
			t.Errorf("container %s's views are bound from %s; want one of the reserved IDs %v, given once", tc.name, root, spares)
		}
		roots[root] = true
		if log := readHookLog(t, tc.c.hookLog); !strings.Contains(log, "views mounted") || !strings.Contains(log, "run_by=lxcfs-fused") {
			t.Errorf("container %s's hook did not have the daemon run create-runtime:\n%s", tc.name, log)
		}
		if got := readFile(t, filepath.Join(root, "proc/meminfo")); !strings.Contains(got, strings.ReplaceAll(tc.want, "MemTotal: ", "")) {
			t.Errorf("container %s's own files, read by the host, do not show %s:\n%s", tc.name, tc.want, got)
		}
	}
	waitSpares(t, d, 6)
}
