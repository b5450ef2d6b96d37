package integration

import (
	"context"
	"os"
	"os/exec"
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

// TestSysinfoRunc: in a runc container with a 64 MiB limit whose config
// inject --sysinfo edited, busybox free, glibc's sysconf(_SC_PHYS_PAGES)
// and a static Go program calling sysinfo(2) all get the container's
// memory and uptime; the same container without --sysinfo gets the
// host's, which is what the test would see without the feature.
func TestSysinfoRunc(t *testing.T) {
	d := startDaemon(t, fusedBin, "")
	var host unix.Sysinfo_t
	if err := unix.Sysinfo(&host); err != nil {
		t.Fatal(err)
	}
	hostRAM := strconv.FormatUint(uint64(host.Totalram)*uint64(host.Unit), 10)

	for _, tt := range []struct {
		name  string
		flags []string
		want  string // totalram
	}{
		{"with --sysinfo", []string{"--sysinfo"}, strconv.Itoa(ctrRAM)},
		{"without", nil, hostRAM},
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
// after each change the figures are the container's again.
func TestSysinfoAcrossWorkerKillAndUpgrade(t *testing.T) {
	d := startDaemon(t, fusedBin, "")
	c := runBundleDetached(t, d.mp, d.stateDir, sysinfoOpts("/bin/sysinfoprog loop /tmp"), "--sysinfo")
	waitSysinfoCalls(t, c, "start")

	_, w, _ := fusedState(t, d)
	unix.Kill(w, unix.SIGKILL)
	w = waitWorker(t, d, w)
	waitSysinfoCalls(t, c, "after a worker kill")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, fusedBin, "upgrade", "--state-dir", d.stateDir).CombinedOutput(); err != nil {
		t.Fatalf("upgrade: %v\n%s", err, out)
	}
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

// TestSysinfoHostileNeighbour: one container calls sysinfo from 32 threads
// without pause while another makes 2,000 calls. Each container's calls
// are taken one at a time by a goroutine of its own, so the hostile one
// queues behind itself; the other's calls wait only for the CPU and, for
// their figures, at most --sysinfo-timeout (500ms) before they run with
// the host's. The bound asserted is generous, to catch a hang, not to
// measure speed: no call of the neighbour takes 5s, and its figures are
// its own.
func TestSysinfoHostileNeighbour(t *testing.T) {
	d := startDaemon(t, fusedBin, "")
	hostile := runBundleDetached(t, d.mp, d.stateDir, sysinfoOpts("/bin/sysinfoprog hammer 32"), "--sysinfo")
	waitOutput(t, hostile, func(out string) bool { return strings.Contains(out, "hammering") })

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
	if slowest >= 5000 {
		t.Errorf("slowest sysinfo call of the neighbour took %d ms, want under 5s", slowest)
	}
	if got := field(out, "totalram"); got != strconv.Itoa(ctrRAM) {
		t.Errorf("neighbour's totalram = %s, want %d", got, ctrRAM)
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
