package integration

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// psiSpec is the trigger the tests register: 300 ms of "some" CPU stall
// within 2 s. The busy container stalls for about half of the time or more
// (two loops on one CPU with half a CPU's quota); an idle program waiting
// for CPU on a loaded machine (sysmon's wake-ups) stays far below. The
// containers' root lacks CAP_SYS_RESOURCE, so the window is a multiple of
// 2 s, as the kernel asks of unprivileged triggers.
const psiSpec = "some 300000 2000000"

// requirePSI skips where the kernel keeps no pressure per cgroup: the
// daemon serves /proc/pressure only where the host has it, and a trigger
// needs the container's cgroup2 group to have cpu.pressure.
func requirePSI(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/proc/pressure/cpu"); err != nil {
		t.Skipf("needs PSI (/proc/pressure/cpu): %v", err)
	}
}

// psiOpts is a busybox bundle with psiprog.
func psiOpts(script string, limits bool) bundleOpts {
	return bundleOpts{script: script, limits: limits, files: map[string]string{psiProg: "bin/psiprog"}}
}

// busyScript keeps two CPU-bound loops in the container, which with its
// cpuset of one CPU and half a CPU's quota stall each other: its cgroup's
// CPU pressure. The loops end when /tmp/stop exists.
const busyScript = `spin() { while [ ! -e /tmp/stop ]; do :; done; }
spin & spin &
`

// TestPSITriggerRunc: a program in a runc container registers a PSI trigger
// on /proc/pressure/cpu (open for writing, write the trigger, poll for
// POLLPRI), as systemd-oomd and lmkd do, and gets POLLPRI when its own
// cgroup is under CPU pressure. Another container, idle, with the same
// trigger while the first one stalls (and so the host, whose pressure
// counts the first container's), gets none: the trigger is on the opener's
// cgroup, not the host's. Without the feature the write fails (the file
// is read-only).
func TestPSITriggerRunc(t *testing.T) {
	requirePSI(t)
	d := startDaemon(t, fusedBin, "", "--psi-triggers")
	busy := runBundleDetached(t, d.mp, d.stateDir, psiOpts(busyScript+
		`/bin/psiprog wait /proc/pressure/cpu "`+psiSpec+`" 120; echo done`, true))
	out := waitLine(t, busy, `(event|pollerr|timeout)`)[1]
	if out != "event" {
		t.Fatalf("the busy container's trigger: %s, want event (POLLPRI)\n%s", out, busy.output(t))
	}

	// The busy container still stalls while the idle one waits.
	idle := runBundleDetached(t, d.mp, d.stateDir, psiOpts(
		`/bin/psiprog wait /proc/pressure/cpu "`+psiSpec+`" 5; echo done`, false))
	got := waitLine(t, idle, `(event|pollerr|timeout)`)[1]
	busy.touch(t, "stop")
	if got != "timeout" {
		t.Errorf("the idle container's trigger: %s while another container stalled, want timeout (no event of its own)\n%s", got, idle.output(t))
	}
	if !strings.Contains(readFile(t, "/proc/pressure/cpu"), "some") {
		t.Errorf("host /proc/pressure/cpu unreadable")
	}
}

// TestPSITriggerAcrossWorkerKill: the kernel file behind a trigger is held
// by the worker, so a worker's death drops it. The program's next poll
// gets POLLERR (what the kernel's own pressure file answers with no
// trigger), it registers again with the new worker, and its triggers fire
// again (TestPSIWaitingPollWoken covers the poll waiting at the kill).
func TestPSITriggerAcrossWorkerKill(t *testing.T) {
	requirePSI(t)
	d := startDaemon(t, fusedBin, "", "--psi-triggers")
	c := runBundleDetached(t, d.mp, d.stateDir, psiOpts(busyScript+
		`/bin/psiprog loop /proc/pressure/cpu "`+psiSpec+`" /tmp; echo done`, true))
	tmp := filepath.Join(c.bundle, "rootfs/tmp")
	count := func(name string) int {
		b, _ := os.ReadFile(filepath.Join(tmp, name))
		n, _ := strconv.Atoi(string(b))
		return n
	}
	waitCount := func(name string, over int, when string) int {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if n := count(name); n > over {
				return n
			}
			if strings.Contains(c.output(t), "psiprog:") {
				t.Fatalf("%s: psiprog failed:\n%s", when, c.output(t))
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: no %s past %d within 60s\n%s", when, name, over, c.output(t))
		return 0
	}
	events := waitCount("events", 0, "start")

	_, w, _ := fusedState(t, d)
	unix.Kill(w, unix.SIGKILL)
	waitWorker(t, d, w)
	if lost := waitCount("lost", 0, "after a worker kill"); lost != 1 {
		t.Errorf("the trigger was lost %d times after one worker kill, want 1", lost)
	}
	// Fired again: registered with the new worker.
	waitCount("events", count("events"), "after a worker kill")
	t.Logf("events before the kill %d, after %d", events, count("events"))
	c.touch(t, "stop")
}

// TestPSIWaitingPollWoken: a program waiting in poll(2) on its trigger when
// the worker that took the POLL is killed, or retired by an upgrade, or
// when the supervisor dies and systemd starts it again with its fd store,
// is woken (the supervisor wakes the handles the worker kept in its
// pkg/pollwake table) and gets POLLERR, so it can register again. Its own
// timeout is 10 minutes: without the wakeup it waits all of it, and the
// test fails at its 60 s deadline.
func TestPSIWaitingPollWoken(t *testing.T) {
	requirePSI(t)
	sd := newFakeSystemd(t)
	d := startDaemon(t, fusedBin, "", "--psi-triggers")
	// runc would proxy NOTIFY_SOCKET to the containers and wait for them.
	os.Unsetenv("NOTIFY_SOCKET")
	for _, how := range []string{"worker killed", "upgrade", "supervisor restarted from the fd store"} {
		// exec: the program is the container's init, whose pid runc gives.
		c := runBundleDetached(t, d.mp, d.stateDir, psiOpts(
			`exec /bin/psiprog wait /proc/pressure/cpu "`+psiSpec+`" 600`, false))
		waitPolling(t, c)
		_, w, _ := fusedState(t, d)
		switch how {
		case "worker killed":
			unix.Kill(w, unix.SIGKILL)
			waitWorker(t, d, w)
		case "upgrade":
			runUpgrade(t, d, fusedBin)
			waitWorker(t, d, w)
		default:
			// The running worker's table was stored when it started,
			// before the program polled.
			sd.take(t, "lxcfs-fuse-", "lxcfs-polls")
			sd.kill(d)
			sd.restart(t, d, "--psi-triggers")
		}
		if got := waitLineWithin(t, c, `(event|pollerr|timeout)`, 60*time.Second)[1]; got != "pollerr" {
			t.Errorf("%s: the waiting poll returned %s, want pollerr (the trigger was lost)", how, got)
		}
	}
}

// waitPolling waits until the container's init sleeps in poll(2) on its
// trigger, past the POLL round trip (whose sleep is in the FUSE request,
// not the poll wait): the worker has then kept the kernel's wakeup handle.
// The program is Go: the poll may be on any of its threads.
func waitPolling(t *testing.T, c *container) {
	t.Helper()
	tasks := filepath.Join("/proc", strconv.Itoa(c.pid(t)), "task")
	var seen []string
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		seen = seen[:0]
		ids, _ := os.ReadDir(tasks)
		for _, id := range ids {
			b, _ := os.ReadFile(filepath.Join(tasks, id.Name(), "wchan"))
			if strings.Contains(string(b), "poll") {
				return
			}
			seen = append(seen, string(b))
		}
		if strings.Contains(c.output(t), "psiprog:") {
			t.Fatalf("psiprog failed:\n%s", c.output(t))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the container's program is not waiting in poll after 60s (its threads' wchan %q):\n%s", seen, c.output(t))
}
