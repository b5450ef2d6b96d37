package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// reader is a process that is the init of its own pid namespace, inside a
// test cgroup: a minimal container without a runtime. It cats the files it
// is asked for.
type reader struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex
}

const endMark = "@@lxcfs-oci-end@@"

func startReader(t *testing.T, cg *v1Cgroup) *reader {
	t.Helper()
	loop := `while IFS= read -r f; do cat "$f" 2>&1 || echo "cat failed"; echo ` + endMark + `; done`
	script := ""
	if cg != nil {
		script = cg.enterScript()
	}
	// unshare forks: the child, pid 1 of the new namespace, runs the loop
	// and is what the daemon must resolve the reads to.
	script += "exec unshare --pid --fork --kill-child sh -c '" + loop + "'"
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start reader: %v", err)
	}
	r := &reader{t: t, cmd: cmd, in: in, out: bufio.NewReader(out)}
	t.Cleanup(r.stop)
	return r
}

func (r *reader) stop() {
	r.in.Close()
	r.cmd.Process.Kill()
	r.cmd.Wait()
}

// read returns the content of path as the reader sees it.
func (r *reader) read(path string) string {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, err := fmt.Fprintln(r.in, path); err != nil {
		r.t.Fatalf("ask reader for %s: %v", path, err)
	}
	var b strings.Builder
	done := make(chan error, 1)
	go func() {
		for {
			line, err := r.out.ReadString('\n')
			if err != nil {
				done <- err
				return
			}
			if line == endMark+"\n" {
				done <- nil
				return
			}
			b.WriteString(line)
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			r.t.Fatalf("read %s in reader: %v", path, err)
		}
	case <-time.After(30 * time.Second):
		r.t.Fatalf("read %s in reader: no answer within 30s", path)
	}
	return b.String()
}

// initPid is the host pid of the reader's namespace init.
func (r *reader) initPid() int {
	r.t.Helper()
	p := strconv.Itoa(r.cmd.Process.Pid)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
		if f := strings.Fields(string(b)); len(f) > 0 {
			n, _ := strconv.Atoi(f[0])
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.t.Fatal("reader's namespace init not found")
	return 0
}

func meminfoKB(t *testing.T, content, key string) uint64 {
	t.Helper()
	for line := range strings.SplitSeq(content, "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, err := strconv.ParseUint(f[0], 10, 64)
				if err == nil {
					return n
				}
			}
		}
	}
	t.Fatalf("no %s in meminfo:\n%s", key, content)
	return 0
}

func countPrefix(content, prefix string) int {
	n := 0
	for line := range strings.SplitSeq(content, "\n") {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}

func TestFusedContainerView(t *testing.T) {
	mp := startFused(t)
	cg := newV1Cgroup(t, "memory", "cpuset", "cpu", "cpuacct")
	cg.set(t, "memory", "memory.limit_in_bytes", strconv.Itoa(64<<20))
	cg.set(t, "cpuset", "cpuset.cpus", "0")
	cg.set(t, "cpu", "cpu.cfs_quota_us", "50000")
	r := startReader(t, cg)
	file := func(name string) string { return r.read(filepath.Join(mp, name)) }

	meminfo := file("proc/meminfo")
	if got := meminfoKB(t, meminfo, "MemTotal"); got != 65536 {
		t.Errorf("MemTotal = %d kB in the container, want 65536", got)
	}
	if free, total := meminfoKB(t, meminfo, "MemFree"), meminfoKB(t, meminfo, "MemTotal"); free > total {
		t.Errorf("MemFree %d > MemTotal %d", free, total)
	}
	if got := countPrefix(file("proc/cpuinfo"), "processor"); got != 1 {
		t.Errorf("cpuinfo shows %d processors, want 1", got)
	}
	if got := strings.TrimSpace(file("sys/devices/system/cpu/online")); got != "0" {
		t.Errorf("online = %q, want \"0\"", got)
	}
	stat := file("proc/stat")
	if got := countPrefix(stat, "cpu"); got != 2 {
		t.Errorf("stat has %d cpu lines, want 2 (cpu, cpu0):\n%s", got, stat)
	}
	if !strings.Contains(stat, "\nctxt ") || !strings.Contains(stat, "\nbtime ") {
		t.Errorf("stat lost the host's non-cpu lines:\n%s", stat)
	}
	up := strings.Fields(file("proc/uptime"))
	if len(up) != 2 {
		t.Fatalf("uptime = %q, want two fields", up)
	}
	if secs, err := strconv.ParseFloat(up[0], 64); err != nil || secs > 30 {
		t.Errorf("uptime %q in a container started just now, want under 30s", up[0])
	}
	if !strings.HasPrefix(file("proc/swaps"), "Filename") {
		t.Errorf("swaps lost its header")
	}

	// The same files read from the host are the host's.
	hostMem, _ := os.ReadFile("/proc/meminfo")
	ours, err := os.ReadFile(filepath.Join(mp, "proc/meminfo"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := meminfoKB(t, string(ours), "MemTotal"), meminfoKB(t, string(hostMem), "MemTotal"); got != want {
		t.Errorf("host reader sees MemTotal %d, want the host's %d", got, want)
	}
	hostOnline, _ := os.ReadFile("/sys/devices/system/cpu/online")
	oursOnline, _ := os.ReadFile(filepath.Join(mp, "sys/devices/system/cpu/online"))
	if string(hostOnline) != string(oursOnline) {
		t.Errorf("host reader sees online %q, want %q", oursOnline, hostOnline)
	}
}

func TestFusedListing(t *testing.T) {
	mp := startFused(t)
	entries, err := os.ReadDir(filepath.Join(mp, "proc"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{"cpuinfo", "diskstats", "loadavg", "meminfo", "stat", "swaps", "uptime", "vmstat"}
	if _, err := os.Stat("/proc/pressure/cpu"); err == nil {
		want = append(want, "pressure")
	}
	if strings.Join(names, " ") != strings.Join(sortedCopy(want), " ") {
		t.Errorf("proc/ lists %v, want %v", names, sortedCopy(want))
	}
	if _, err := os.Stat(filepath.Join(mp, "proc/nonexistent")); !os.IsNotExist(err) {
		t.Errorf("stat of a file we do not serve: %v, want not-exist", err)
	}
	if err := os.WriteFile(filepath.Join(mp, "proc/meminfo"), []byte("x"), 0o644); err == nil {
		t.Errorf("writing proc/meminfo succeeded on a read-only file system")
	}
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestFusedCFSView(t *testing.T) {
	if n := countPrefix(readFile(t, "/proc/cpuinfo"), "processor"); n < 2 {
		t.Skipf("needs at least 2 host CPUs to tell the cpuset from the quota; host has %d", n)
	}
	cg := newV1Cgroup(t, "memory", "cpuset", "cpu", "cpuacct")
	cg.set(t, "cpuset", "cpuset.cpus", "0-1")
	cg.set(t, "cpu", "cpu.cfs_quota_us", "50000") // half a CPU
	r := startReader(t, cg)

	plain := startFused(t)
	if got := countPrefix(r.read(filepath.Join(plain, "proc/cpuinfo")), "processor"); got != 2 {
		t.Errorf("without --enable-cfs: %d processors, want the cpuset's 2", got)
	}
	cfs := startFused(t, "--enable-cfs")
	if got := countPrefix(r.read(filepath.Join(cfs, "proc/cpuinfo")), "processor"); got != 1 {
		t.Errorf("with --enable-cfs and a 0.5 CPU quota: %d processors, want 1", got)
	}
	if got := strings.TrimSpace(r.read(filepath.Join(cfs, "sys/devices/system/cpu/online"))); got != "0" {
		t.Errorf("with --enable-cfs: online = %q, want \"0\"", got)
	}
}

func TestFusedLoadavg(t *testing.T) {
	cg := newV1Cgroup(t, "memory", "cpu", "cpuacct")
	r := startReader(t, cg)
	mp := startFused(t, "--enable-loadavg")
	f := strings.Fields(r.read(filepath.Join(mp, "proc/loadavg")))
	if len(f) != 5 {
		t.Fatalf("loadavg = %q, want 5 fields", f)
	}
	running, total, ok := strings.Cut(f[3], "/")
	if !ok {
		t.Fatalf("loadavg field 4 = %q, want running/total", f[3])
	}
	// The container holds the loop shell and the cat reading the file.
	if n, _ := strconv.Atoi(total); n < 1 || n > 5 {
		t.Errorf("container loadavg counts %s tasks, want its own few (1-5), not the host's", total)
	}
	if n, _ := strconv.Atoi(running); n < 0 || n > 5 {
		t.Errorf("container loadavg counts %s running, want 0-5", running)
	}
	// Host readers still get the host's file.
	hostTotal := strings.Split(strings.Fields(readFile(t, "/proc/loadavg"))[3], "/")[1]
	ours := strings.Split(strings.Fields(readFile(t, filepath.Join(mp, "proc/loadavg")))[3], "/")[1]
	if h, _ := strconv.Atoi(hostTotal); h > 10 {
		if o, _ := strconv.Atoi(ours); o < h/2 {
			t.Errorf("host reader sees %s tasks in loadavg, host has %s", ours, hostTotal)
		}
	}
}

// TestFusedReplacesStaleMount: a daemon killed with SIGKILL leaves a dead
// mount ("transport endpoint is not connected"); the next start replaces it.
func TestFusedReplacesStaleMount(t *testing.T) {
	requireRoot(t)
	mp := filepath.Join(t.TempDir(), "lxcfs")
	cmd := exec.Command(fusedBin, "--mountpoint", mp, "--state-dir", t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !isMounted(t, mp) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Supervisor and worker die together, as in a node-wide OOM kill.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	var err error
	for deadline = time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		// In-flight requests of an aborting connection fail with EIO or
		// ECONNABORTED first; then every request gets ENOTCONN.
		if _, err = os.Stat(mp); err != nil && strings.Contains(err.Error(), "not connected") {
			break
		}
	}
	if err == nil || !strings.Contains(err.Error(), "not connected") {
		t.Fatalf("after SIGKILL, stat %s = %v; want transport endpoint is not connected", mp, err)
	}
	t.Cleanup(func() { syscall.Unmount(mp, syscall.MNT_DETACH) })

	// A second daemon on the dead mount: it replaces it and serves.
	d := startDaemon(t, fusedBin, mp)
	d.stop(t)
	if log := readFile(t, d.logPath); !strings.Contains(log, "replacing a dead FUSE mount") {
		t.Errorf("second daemon did not say it replaced the dead mount:\n%s", log)
	}
	if isMounted(t, mp) {
		t.Errorf("%s still mounted after the second daemon stopped", mp)
	}
}

// TestFusedRefusesLiveMount: two daemons on one mountpoint would hide each
// other; the second refuses with a clear error.
func TestFusedRefusesLiveMount(t *testing.T) {
	mp := startFused(t)
	out, err := exec.Command("timeout", "60", fusedBin, "--mountpoint", mp).CombinedOutput()
	if err == nil {
		t.Fatalf("second daemon on a live mount started:\n%s", out)
	}
	if !strings.Contains(string(out), "already a mount point") {
		t.Errorf("second daemon's error does not say why:\n%s", out)
	}
	if _, err := os.ReadFile(filepath.Join(mp, "proc/meminfo")); err != nil {
		t.Errorf("first daemon stopped serving: %v", err)
	}
}

// TestFusedBadReaders: readers that exit before their read is served and a
// cgroup that vanishes under a container never stop the daemon, and the
// reader gets the host's values or its own, never garbage.
func TestFusedBadReaders(t *testing.T) {
	mp := startFused(t)
	meminfo := filepath.Join(mp, "proc/meminfo")

	// 100 readers in fresh pid namespaces that die mid-read.
	script := fmt.Sprintf(`for i in $(seq 100); do unshare --pid --fork head -c1 %s >/dev/null & done; wait`, meminfo)
	if out, err := exec.Command("sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("short-lived readers: %v\n%s", err, out)
	}

	a := newV1Cgroup(t, "memory")
	a.set(t, "memory", "memory.limit_in_bytes", strconv.Itoa(64<<20))
	b := newV1Cgroup(t, "memory")
	b.set(t, "memory", "memory.limit_in_bytes", strconv.Itoa(128<<20))
	r := startReader(t, a)
	if got := meminfoKB(t, r.read(meminfo), "MemTotal"); got != 65536 {
		t.Fatalf("MemTotal in cgroup a = %d, want 65536", got)
	}
	// Move the container out of a and remove a: the cached paths vanish.
	for _, pid := range []int{r.cmd.Process.Pid, r.initPid()} {
		if err := os.WriteFile(filepath.Join(b.dir("memory"), "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(a.dir("memory")); err != nil {
		t.Fatalf("remove cgroup a: %v", err)
	}
	hostTotal := meminfoKB(t, readFile(t, "/proc/meminfo"), "MemTotal")
	first := meminfoKB(t, r.read(meminfo), "MemTotal")
	if first != hostTotal && first != 131072 {
		t.Errorf("MemTotal right after the cgroup vanished = %d, want the host's %d or b's 131072", first, hostTotal)
	}
	if got := meminfoKB(t, r.read(meminfo), "MemTotal"); got != 131072 {
		t.Errorf("MemTotal after moving to cgroup b = %d, want 131072", got)
	}
	if _, err := os.ReadFile(meminfo); err != nil {
		t.Errorf("daemon stopped serving: %v", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFusedUpgradeRefusesReusedPid: a state file left by a supervisor that
// died without cleaning up names a pid that now belongs to another process;
// upgrade refuses instead of sending that process SIGHUP (which would stop
// it).
func TestFusedUpgradeRefusesReusedPid(t *testing.T) {
	requireRoot(t)
	other := exec.Command("sleep", "600")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	dir := t.TempDir()
	stale := fmt.Sprintf(`{"pid":%d,"pid_start":1,"worker":1,"generation":0}`, other.Process.Pid)
	if err := os.WriteFile(filepath.Join(dir, "fused.json"), []byte(stale), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(fusedBin, "--state-dir", dir, "upgrade", "--timeout", "2s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no longer the lxcfs-fused supervisor") {
		t.Errorf("upgrade with a reused pid: %v\n%s", err, out)
	}
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the process now holding the pid was signalled: %v", err)
	}
}

// TestHookLogNotThroughSymlink: a symlink planted at the hook's log path is
// not followed; the root-run hook does not append to the file it names.
func TestHookLogNotThroughSymlink(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "victim")
	if err := os.WriteFile(target, []byte("untouched\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "hook.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(hookBin, "--log-file", link, "create-runtime")
	cmd.Stdin = strings.NewReader("not a state")
	cmd.CombinedOutput() // fails on the state; what matters is where it logged
	if b, _ := os.ReadFile(target); string(b) != "untouched\n" {
		t.Errorf("the hook wrote through the symlink at its log path: %q", b)
	}
}

// TestShippedDaemonHasNoTestSwitches: make build's daemon cannot be wedged
// on purpose through the environment; only the tests' build has the stall
// switches.
func TestShippedDaemonHasNoTestSwitches(t *testing.T) {
	requireRoot(t)
	bin := filepath.Join(t.TempDir(), "lxcfs-fused")
	cmd := exec.Command("go", "build", "-tags", "urfave_cli_no_docs", "-o", bin, "../cmd/lxcfs-fused")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build as make build does: %v\n%s", err, out)
	}
	for path, shipped := range map[string]bool{bin: true, fusedBin: false} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if has := bytes.Contains(b, []byte("LXCFS_FUSED_TEST_STALL")); has == shipped {
			t.Errorf("%s (shipped %v) holds the test stall switch: %v", path, shipped, has)
		}
	}
}
