package integration

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sysinfoScript prints what busybox free, glibc's sysconf and a static Go
// program get from sysinfo(2), one key=value a line.
const sysinfoScript = `echo "bbfree=$(free | grep Mem: | tr -s ' ' | cut -d' ' -f2)"
if [ -x /usr/bin/getconf ]; then echo "phys_pages=$(/usr/bin/getconf _PHYS_PAGES)"; fi
/bin/sysinfoprog once
`

const ctrRAM = 64 << 20

// sysinfoOpts is a limited busybox bundle with the sysinfo program.
func sysinfoOpts(script string) bundleOpts {
	return bundleOpts{script: script, limits: true, files: map[string]string{sysinfoProg: "bin/sysinfoprog"}}
}

// staleSysinfoDir is a state directory whose sysinfo.sock is a socket file
// nobody listens on, as a killed daemon leaves it.
func staleSysinfoDir(t *testing.T) string {
	dir := t.TempDir()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "sysinfo.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	return dir
}

// TestSysinfoRunc: in a runc container with a 64 MiB limit whose config
// inject edited (by default, or with --sysinfo), busybox free, glibc's
// sysconf(_SC_PHYS_PAGES) and a static Go program calling sysinfo(2) all
// get the container's memory and uptime; with --sysinfo=false, or when the
// daemon's socket is left with nobody listening, the container starts and
// gets the host's, which is what the test would see without the feature.
func TestSysinfoRunc(t *testing.T) {
	d := startDaemon(t, fusedBin, "")
	hostRAM := hostTotalRAM(t)

	for _, tt := range []struct {
		name  string
		flags []string
		want  string // totalram
	}{
		{"with --sysinfo", []string{"--sysinfo"}, strconv.Itoa(ctrRAM)},
		{"by default", nil, strconv.Itoa(ctrRAM)},
		{"with --sysinfo=false", []string{"--sysinfo=false"}, hostRAM},
		// A socket file nobody listens on (a daemon killed without
		// systemd): the rule is not added, so runc does not fail the
		// container for an unreachable listener.
		{"by default, daemon gone", []string{"--state-dir", staleSysinfoDir(t)}, hostRAM},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := sysinfoOpts(sysinfoScript)
			o.hostUsr = true
			bundle := busyboxBundle(t, o)
			injectHook(t, bundle, d.mp, append([]string{"--state-dir", d.stateDir}, tt.flags...)...)
			out, stderr, err := runcRun(t, bundle)
			if err != nil {
				t.Fatalf("runc run: %v\n%s", err, stderr)
			}
			t.Logf("container:\n%s", out)
			if got := field(out, "totalram"); got != tt.want {
				t.Errorf("sysinfo totalram = %s, want %s", got, tt.want)
			}
			if tt.want == hostRAM {
				return
			}
			if got := field(out, "bbfree"); got != "65536" {
				t.Errorf("busybox free total = %q kB, want 65536", got)
			}
			if got := field(out, "phys_pages"); got != "" && got != strconv.Itoa(ctrRAM/os.Getpagesize()) {
				t.Errorf("getconf _PHYS_PAGES = %s, want %d", got, ctrRAM/os.Getpagesize())
			}
			if free, _ := strconv.ParseUint(field(out, "freeram"), 10, 64); free == 0 || free > ctrRAM {
				t.Errorf("freeram = %d, want within the container's 64 MiB", free)
			}
			if up, _ := strconv.Atoi(field(out, "uptime")); up < 1 || up > 30 {
				t.Errorf("uptime = %d s, want the container's (a few seconds)", up)
			}
			if got := field(out, "unit"); got != "1" {
				t.Errorf("mem_unit = %s, want 1", got)
			}
		})
	}
}

// sysinfoCount reads the count the looping program writes to /tmp/count.
func sysinfoCount(c *container) int {
	b, _ := os.ReadFile(filepath.Join(c.bundle, "rootfs/tmp/count"))
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// waitSysinfoCalls waits until the container's loop has made 512 more
// calls than it had when called: a call that hung would stop it.
func waitSysinfoCalls(t *testing.T, c *container, what string) {
	t.Helper()
	from := sysinfoCount(c)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(filepath.Join(c.bundle, "rootfs/tmp/error")); err == nil {
			t.Fatalf("%s: sysinfo failed in the container: %s", what, b)
		}
		if sysinfoCount(c) >= from+512 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: the container's sysinfo loop made no progress in 30s (from %d calls): a call hangs\n%s", what, from, c.output(t))
}

// TestSysinfoAcrossWorkerKillAndUpgrade: a container calls sysinfo in a
// loop while the serving worker is killed, the daemon upgraded and the
// upgraded daemon's worker killed again. No call fails (a listener closed
// for good would make them fail with ENOSYS), the loop never stalls, and
// after each change the figures are the container's again. The longest
// --sysinfo-timeout makes that last call's figures certain on a loaded
// machine: only a hang falls back to the host's.
func TestSysinfoAcrossWorkerKillAndUpgrade(t *testing.T) {
	d := startDaemon(t, fusedBin, "", "--sysinfo-timeout", "10s")
	c := runBundleDetached(t, d.mp, d.stateDir, sysinfoOpts("/bin/sysinfoprog loop /tmp"), "--sysinfo")
	waitSysinfoCalls(t, c, "start")

	_, w, _ := fusedState(t, d)
	unix.Kill(w, unix.SIGKILL)
	w = waitWorker(t, d, w)
	waitSysinfoCalls(t, c, "after a worker kill")

	runUpgrade(t, d, fusedBin)
	w = waitWorker(t, d, w)
	waitSysinfoCalls(t, c, "after an upgrade")

	unix.Kill(w, unix.SIGKILL)
	waitWorker(t, d, w)
	waitSysinfoCalls(t, c, "after a worker kill in the upgraded daemon")

	out := c.stopLoop(t, "unit=")
	t.Logf("container:\n%s", out)
	if b, err := os.ReadFile(filepath.Join(c.bundle, "rootfs/tmp/error")); err == nil {
		t.Fatalf("sysinfo failed in the container: %s", b)
	}
	// The last call came after the last worker was serving.
	if got := field(out, "totalram"); got != strconv.Itoa(ctrRAM) {
		t.Errorf("last totalram = %s, want the container's %d", got, ctrRAM)
	}
	// A call a killed worker had taken is continued with the host's
	// figures; that is at most one per kill, and the timeout's fallbacks.
	t.Logf("calls %s, of which with other figures: %s", field(out, "calls"), field(out, "not_container"))
}

// TestSysinfoWrapperDefault: lxcfs-runc with no sysinfo setting (on by
// default) sends a runc container's sysinfo to lxcfs-fused when it listens
// in the wrapper's state dir, and when that socket is a file a killed
// daemon left, it leaves the rule out (it connects first) and the
// container starts with the host's figures, where runc would refuse it for
// an unreachable listener.
func TestSysinfoWrapperDefault(t *testing.T) {
	d := startDaemon(t, fusedBin, "")
	hostRAM := hostTotalRAM(t)
	for _, tt := range []struct {
		name, stateDir, want string
	}{
		{"daemon listening", d.stateDir, strconv.Itoa(ctrRAM)},
		{"daemon gone, its socket left", staleSysinfoDir(t), hostRAM},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := setupWrapper(t, d.mp, map[string]any{"stateDir": tt.stateDir})
			bundle := busyboxBundle(t, sysinfoOpts(sysinfoScript))
			state := t.TempDir()
			runcSeq++
			id := fmt.Sprintf("lxcfs-wrap-si-%d-%d", os.Getpid(), runcSeq)
			t.Cleanup(func() { runCmd(t, 20*time.Second, nil, "runc", "--root", state, "delete", "--force", id) })
			out, stderr, err := runCmd(t, 60*time.Second, w.env(), w.path, "--root", state, "run", "--bundle", bundle, id)
			if err != nil {
				t.Fatalf("lxcfs-runc run: %v\n%s", err, stderr)
			}
			if got := field(out, "totalram"); got != tt.want {
				t.Errorf("sysinfo totalram = %s, want %s\n%s", got, tt.want, out)
			}
		})
	}
}

// TestSysinfoStopAfterLostRequest is how TestSysinfoAcrossWorkerKillAndUpgrade
// hung on Linux 6.1 before the request journal: after an upgrade the
// supervisor checks every recorded container's views through its own
// mount (the re-attach, a stat of each), and the worker holding one of
// those requests was killed; with nothing to answer it again, the
// supervisor's thread waited for ever (the kernel lets no task abandon a
// request its server has read, not even on SIGKILL), so the daemon neither
// stopped on SIGTERM nor could be reaped. Here recovery is switched off
// (LXCFS_FUSED_TEST_NO_RECOVERY, the tests' builds only) and the stat of
// loadavg is held for ever by whichever worker takes it (the loadavg
// stall), so the re-attach never finishes and one of its requests is
// always lost: to the retired worker, to the killed one, or at the latest
// to the worker stop ends. SIGTERM must still stop the daemon. It hangs
// without stop's closing of the device.
func TestSysinfoStopAfterLostRequest(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "stall")
	t.Setenv("LXCFS_FUSED_TEST_STALL", marker)
	t.Setenv("LXCFS_FUSED_TEST_NO_RECOVERY", "1")
	d := startDaemon(t, fusedBin, "", "--sysinfo-timeout", "10s")
	c := runBundleDetached(t, d.mp, d.stateDir, sysinfoOpts("/bin/sysinfoprog loop /tmp"), "--sysinfo")
	waitSysinfoCalls(t, c, "start")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, w, _ := fusedState(t, d)
	runUpgrade(t, d, fusedBin)
	w = waitWorker(t, d, w)
	// The previous binary's worker is retired and the new one killed,
	// each dying with whatever request of the re-attach it held.
	waitLog(t, d, "previous serving worker retired")
	unix.Kill(w, unix.SIGKILL)
	waitWorker(t, d, w)
	waitSysinfoCalls(t, c, "after the kill")
	c.stopLoop(t, "unit=")
	d.stop(t)
}

// TestSysinfoHostileNeighbour: one container (96 MiB) calls sysinfo from
// 32 threads without pause while another (64 MiB) makes 2,000 calls. Each
// container's calls are taken one at a time by a goroutine of its own, so
// the hostile one queues behind itself; the other's calls wait only for
// the CPU and their figures. The host's figures are the documented answer
// only past --sysinfo-timeout, set here to its longest (10s) so that only
// a hang falls back: every one of the neighbour's 2,000 calls gets its own
// 64 MiB, none the hostile one's 96 MiB nor the host's. The bound on the
// slowest call is generous, to catch a hang (or a fallback, which takes the
// whole timeout), not to measure speed.
func TestSysinfoHostileNeighbour(t *testing.T) {
	d := startDaemon(t, fusedBin, "", "--sysinfo-timeout", "10s")
	o := sysinfoOpts("/bin/sysinfoprog once; /bin/sysinfoprog hammer 32")
	o.memory = 96 << 20
	hostile := runBundleDetached(t, d.mp, d.stateDir, o, "--sysinfo")
	waitOutput(t, hostile, func(out string) bool { return strings.Contains(out, "hammering") })
	if got := field(hostile.output(t), "totalram"); got != strconv.Itoa(96<<20) {
		t.Errorf("hostile container's totalram = %s, want its own 96 MiB", got)
	}

	bundle := busyboxBundle(t, sysinfoOpts("/bin/sysinfoprog probe 2000"))
	injectHook(t, bundle, d.mp, "--state-dir", d.stateDir, "--sysinfo")
	out, stderr, err := runcRun(t, bundle)
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, stderr)
	}
	t.Logf("neighbour:\n%s", out)
	slowest, err := strconv.Atoi(field(out, "slowest_ms"))
	if err != nil {
		t.Fatalf("no slowest_ms in the output: %v", err)
	}
	if slowest >= 9000 {
		t.Errorf("slowest sysinfo call of the neighbour took %d ms, want under 9s (a fallback waits the 10s timeout)", slowest)
	}
	// BYTES:CALLS for each totalram the neighbour's calls got.
	totals := field(out, "totalrams")
	if want := fmt.Sprintf("%d:2000", ctrRAM); totals != want {
		t.Errorf("the neighbour's 2,000 calls got totalram %s (bytes:calls), want all its own: %s", totals, want)
	}
	if strings.Contains(","+totals, fmt.Sprintf(",%d:", 96<<20)) {
		t.Errorf("the neighbour got the hostile container's figures: %s", totals)
	}
	// The hostile container is still served, and still its own figures.
	if !strings.Contains(readFile(t, d.logPath), "container registered") {
		t.Errorf("no registration logged")
	}
}

// hostSysinfoKB is the host's total memory as sysinfo(2) gives it, in kB.
func hostSysinfoKB(t *testing.T) uint64 {
	t.Helper()
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	return uint64(si.Totalram) * uint64(si.Unit) >> 10
}

// TestSysinfoSystemdFDStore plays systemd for sysinfo: it keeps every fd
// the daemon stores with FDSTORE=1 (the FUSE connection, the container's
// notification fd, the worker's slots), kills the supervisor (its worker
// follows) while a container calls sysinfo in a loop, and hands them all
// to a new daemon as systemd does after a restart. The loop waits across
// the gap and goes on: no ENOSYS, no call left hanging.
func TestSysinfoSystemdFDStore(t *testing.T) {
	sd := newFakeSystemd(t)
	// The longest --sysinfo-timeout: the last call's figures are the
	// container's on a loaded machine too (only a hang falls back).
	d1 := startDaemon(t, fusedBin, "", "--sysinfo-timeout", "10s")
	// runc would proxy NOTIFY_SOCKET to the container and wait for its
	// READY=1.
	os.Unsetenv("NOTIFY_SOCKET")
	c := runBundleDetached(t, d1.mp, d1.stateDir, sysinfoOpts("/bin/sysinfoprog loop /tmp"), "--sysinfo")
	waitSysinfoCalls(t, c, "start")

	sd.take(t, "lxcfs-fuse-", "lxcfs-sysinfo-0-", "lxcfs-sysinfo-slots")
	t.Logf("fd store: %v", sd.names())
	sd.kill(d1)
	sd.restart(t, d1, "--sysinfo-timeout", "10s")
	waitSysinfoCalls(t, c, "after the restart with the fd store")
	out := c.stopLoop(t, "unit=")
	if got := field(out, "totalram"); got != strconv.Itoa(ctrRAM) {
		t.Errorf("last totalram = %s, want the container's %d", got, ctrRAM)
	}
	t.Logf("calls %s, of which with other figures: %s", field(out, "calls"), field(out, "not_container"))
}

// TestSysinfoWorkerKilledMidAnswer: the worker takes a container's
// sysinfo call and is killed before answering it (made to stall for the
// test, with a timeout longer than the test's wait). The kernel would keep
// that call waiting for an answer nobody will send; the supervisor finds
// it in the dead worker's slots and lets it run (the host's figures). It
// fails when the recovery is removed.
func TestSysinfoWorkerKilledMidAnswer(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "stall")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LXCFS_FUSED_TEST_STALL_SYSINFO", marker)
	d := startDaemon(t, fusedBin, "", "--sysinfo-timeout", "10s")
	// busybox free, not the Go program: the Go runtime's own signals can
	// interrupt a waiting call, which the kernel then sends again.
	c := runBundleDetached(t, d.mp, d.stateDir, sysinfoOpts("free; echo free=done; sleep 600"), "--sysinfo")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(marker); os.IsNotExist(err) {
			break // the worker took the call
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not take the container's call within 20s\n%s", c.output(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, w, _ := fusedState(t, d)
	unix.Kill(w, unix.SIGKILL)
	waitOutput(t, c, func(out string) bool { return strings.Contains(out, "free=done") })
	if out := c.output(t); !strings.Contains(out, "Mem:") {
		t.Errorf("busybox free failed: %s", out)
	}
	if !strings.Contains(waitLog(t, d, "calls the dead worker had taken continued"), "calls the dead worker had taken continued") {
		t.Errorf("the supervisor did not report the recovered call")
	}
}

// TestSysinfoWorkerKilledTakingCall: the worker takes busybox free's call
// from the kernel and is killed before it records the call's id (the
// stall switch holds it there). The supervisor finds the call anyway, as
// the first id after the last one the worker recorded that the kernel
// holds as taken, and continues it: free prints the host's figures
// instead of waiting until it is signalled. Without that search free
// waits and the test fails.
func TestSysinfoWorkerKilledTakingCall(t *testing.T) {
	taken := filepath.Join(t.TempDir(), "taken")
	t.Setenv("LXCFS_FUSED_TEST_STALL_SYSINFO_TAKEN", taken)
	d := startDaemon(t, fusedBin, "", "--sysinfo-timeout", "10s")
	// The first free's call is recorded (the search starts after it);
	// the second is the one the worker dies taking.
	c := runBundleDetached(t, d.mp, d.stateDir, sysinfoOpts("free; echo first=done; while [ ! -e /tmp/go ]; do sleep 1; done; free; echo free=done; sleep 600"), "--sysinfo")
	waitOutput(t, c, func(out string) bool { return strings.Contains(out, "first=done") })
	if err := os.WriteFile(taken, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle, "rootfs/tmp/go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(taken); os.IsNotExist(err) {
			break // the worker took the call and stopped there
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not take the container's second call within 30s\n%s", c.output(t))
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, w, _ := fusedState(t, d)
	unix.Kill(w, unix.SIGKILL)
	waitOutput(t, c, func(out string) bool { return strings.Contains(out, "free=done") })
	if out := c.output(t); strings.Count(out, "Mem:") != 2 {
		t.Errorf("busybox free failed: %s", out)
	}
	if !strings.Contains(waitLog(t, d, "calls the dead worker had taken continued"), "calls the dead worker had taken continued") {
		t.Errorf("the supervisor did not report the recovered call")
	}
}

// hostTotalRAM is the host's sysinfo(2) totalram in bytes, as the test
// programs print it.
func hostTotalRAM(t *testing.T) string {
	t.Helper()
	var host unix.Sysinfo_t
	if err := unix.Sysinfo(&host); err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(uint64(host.Totalram)*uint64(host.Unit), 10)
}
