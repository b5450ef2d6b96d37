package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
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
	rx := regexp.MustCompile(`(?m)^` + re + `$`)
	var m []string
	waitOutput(t, c, func(out string) bool {
		m = rx.FindStringSubmatch(out)
		return m != nil || strings.Contains(out, "ERROR")
	})
	if m == nil {
		t.Fatalf("container failed:\n%s", c.output(t))
	}
	return m
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
	if out, err := exec.Command(exe, "--state-dir", d.stateDir, "upgrade").CombinedOutput(); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
	return waitWorker(t, d, worker)
}

// TestIdentityHandleAcrossKillAndUpgrade: container A (64 MiB) keeps its
// /proc/meminfo open across a worker kill and an upgrade, while container B
// (128 MiB) opens the same file hundreds of times after each. A new worker
// numbering its handles from scratch gave B a number A's handle already had,
// and A's next read at offset 0 showed B's MemTotal.
func TestIdentityHandleAcrossKillAndUpgrade(t *testing.T) {
	requireRoot(t)
	exe := filepath.Join(t.TempDir(), "lxcfs-fused")
	copyFile(t, fusedBin, exe)
	d := startDaemon(t, exe, "")
	a := runDetached(t, d.mp, d.stateDir, "exec /bin/fdholder hold /proc/meminfo", withHolder(t))
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
	b := runDetached(t, d.mp, d.stateDir, "exec /bin/fdholder open 400 /proc/meminfo", withHolder(t), withMemoryLimit(t, 128))
	b.touch(t, "cmd-1")
	if got := waitLine(t, b, `round=1 opened=400 memtotal=(\d*)`)[1]; got != "131072" {
		t.Fatalf("B sees MemTotal %q kB, want its own 131072", got)
	}
	holdRound(t, a, 2, "after a worker kill and 400 opens by B")

	upgradeDaemon(t, d, exe, worker)
	b.touch(t, "cmd-2")
	waitLine(t, b, `round=2 opened=800 memtotal=131072`)
	holdRound(t, a, 3, "after an upgrade and 400 more opens by B")
}

// TestIdentityThreadIDReuse: a thread of container A opens /proc/meminfo and
// exits; the host's next pid is steered onto that thread's id and given to a
// process of container B. A's reads of the file it keeps open must stay A's:
// a handle that kept its opener's pid was resolved to B.
func TestIdentityThreadIDReuse(t *testing.T) {
	requireRoot(t)
	d := startDaemon(t, fusedBin, "")
	a := runDetached(t, d.mp, d.stateDir, "exec /bin/fdholder hold /proc/meminfo", withHolder(t))
	nsTid := waitLine(t, a, `opened tid=(\d+)`)[1]
	tid := hostTid(t, a.pid(t), nsTid)
	a.touch(t, "thread-exit")
	waitLine(t, a, "thread exited")

	b := runDetached(t, d.mp, d.stateDir,
		`mkfifo /tmp/fork && echo ready && while read line < /tmp/fork; do sleep 1000 & echo "forked $!"; done`,
		withMemoryLimit(t, 128))
	waitLine(t, b, "ready")
	bNS, err := os.Readlink("/proc/" + strconv.Itoa(b.pid(t)) + "/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	taken := false
	for attempt := 1; attempt <= 100 && !taken; attempt++ {
		// Other processes on the host may take the pid first; each try
		// starts once the id is free again.
		for deadline := time.Now().Add(10 * time.Second); pidExists(tid); time.Sleep(10 * time.Millisecond) {
			if ns, _ := os.Readlink("/proc/" + strconv.Itoa(tid) + "/ns/pid"); ns == bNS {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pid %d stayed taken by another process for 10s", tid)
			}
		}
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(tid-1)), 0o644); err != nil {
			t.Fatalf("steer the next pid: %v", err)
		}
		fifo, err := os.OpenFile(filepath.Join(b.bundle, "rootfs/tmp/fork"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fifo.WriteString("fork\n")
		fifo.Close()
		waitOutput(t, b, func(out string) bool { return strings.Count(out, "forked ") >= attempt })
		ns, _ := os.Readlink("/proc/" + strconv.Itoa(tid) + "/ns/pid")
		taken = ns == bNS
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
