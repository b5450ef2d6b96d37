package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// daemon is a running lxcfs-fused (its supervisor) started by a test.
type daemon struct {
	mp, stateDir, logPath string
	cmd                   *exec.Cmd
	// stoppedByTest: the test killed or stopped the daemon on purpose, so
	// cleanup does not judge how it ended.
	stoppedByTest bool
	exited        chan struct{} // closed when the supervisor exited
	exitErr       error
}

// stop sends SIGTERM and waits for the supervisor to exit.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.stoppedByTest = true
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("lxcfs-fused still running 30s after SIGTERM")
	}
}

// startFused starts lxcfs-fused on a fresh mountpoint, waits until it
// serves, and stops it (checking it unmounted and exited 0) at cleanup. Its
// log is printed when the test fails.
func startFused(t *testing.T, args ...string) string {
	t.Helper()
	return startDaemon(t, fusedBin, "", args...).mp
}

// startDaemon is startFused with the binary, the mountpoint (fresh when
// empty) and the state directory (private) of the test's choosing.
func startDaemon(t *testing.T, bin, mp string, args ...string) *daemon {
	t.Helper()
	requireRoot(t)
	dir := t.TempDir()
	if mp == "" {
		mp = filepath.Join(dir, "lxcfs")
	}
	d := &daemon{mp: mp, stateDir: filepath.Join(dir, "state"), logPath: filepath.Join(dir, "fused.log")}
	for i, a := range args {
		if a == "--state-dir" && i+1 < len(args) {
			d.stateDir = args[i+1]
		}
	}
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(bin, append([]string{"--mountpoint", mp, "--state-dir", d.stateDir, "--log-level", "debug"}, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	d.exited = make(chan struct{})
	go func() { d.exitErr = d.cmd.Wait(); logFile.Close(); close(d.exited) }()

	t.Cleanup(func() {
		defer func() {
			if t.Failed() {
				b, _ := os.ReadFile(d.logPath)
				t.Logf("lxcfs-fused log:\n%s", b)
			}
		}()
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
			if d.exitErr != nil && !d.stoppedByTest {
				t.Errorf("lxcfs-fused did not exit cleanly on SIGTERM: %v", d.exitErr)
			}
		case <-time.After(30 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
			t.Errorf("lxcfs-fused still running 30s after SIGTERM")
		}
		if isMounted(t, mp) {
			if !d.stoppedByTest {
				t.Errorf("%s still mounted after the daemon stopped", mp)
			}
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	})

	waitServing(t, "lxcfs-fused", mp, d.logPath, d.exited, &d.exitErr)
	// Tests that read the state or run upgrade and status next need it
	// written, which can come after the mount first answers.
	fusedState(t, d)
	// The containers' own connection is attached once the first is
	// served: containers started before get their files from the first.
	if own := ownMountpoint(t, d); own != "" {
		for deadline := time.Now().Add(30 * time.Second); !isMounted(t, own); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the containers' own connection was not mounted at %s within 30s", own)
			}
		}
	}
	return d
}

// ownMountpoint is where the daemon serves the containers' own files on a
// connection of their own (--own-connection), "" when it does not.
func ownMountpoint(t *testing.T, d *daemon) string {
	t.Helper()
	var s struct {
		Own string `json:"own_mountpoint"`
	}
	b, err := os.ReadFile(filepath.Join(d.stateDir, "fused.json"))
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	if err != nil {
		t.Fatalf("read daemon state: %v", err)
	}
	return s.Own
}

// requireOwnConnection fails the test unless the container's /proc/meminfo
// is served by the daemon's own connection (FUSE no-open): its device is
// the own mount's, not the first mount's.
func requireOwnConnection(t *testing.T, d *daemon, pid int) {
	t.Helper()
	own := ownMountpoint(t, d)
	if own == "" {
		t.Fatalf("the daemon serves no connection of the containers' own (fused.json has no own_mountpoint)")
	}
	var a, b unix.Stat_t
	if err := unix.Stat(own, &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/root/proc/meminfo", pid), &b); err != nil {
		t.Fatal(err)
	}
	if a.Dev != b.Dev {
		t.Fatalf("the container's /proc/meminfo is on device %d:%d, not the own connection's %d:%d (%s)",
			unix.Major(b.Dev), unix.Minor(b.Dev), unix.Major(a.Dev), unix.Minor(a.Dev), own)
	}
}

// waitLog waits up to a minute for the daemon's log to hold want, and
// returns the log as it then is. Processes log after what they did, so a
// test that saw the effect may read the log before the line is there.
func waitLog(t *testing.T, d *daemon, want string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		log := readFile(t, d.logPath)
		if strings.Contains(log, want) || time.Now().After(deadline) {
			return log
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitServing waits up to 30s for a daemon to answer on mp, failing the test
// with the daemon's log if it exits first (exitErr is read after exited closes).
func waitServing(t *testing.T, name, mp, logPath string, exited <-chan struct{}, exitErr *error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if isMounted(t, mp) {
			if _, err := os.ReadFile(filepath.Join(mp, "proc/meminfo")); err == nil {
				return
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s exited before serving: %v\n%s", name, *exitErr, b)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not serve %s within 30s", name, mp)
}

// isMounted says whether path is a mount point in this mount namespace.
func isMounted(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == path {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// v1Cgroup is a cgroup made for one test: in each named v1 hierarchy, or on
// a pure cgroup v2 host (make test-vm) the one v2 directory, where set
// translates the v1 settings the tests use.
type v1Cgroup struct {
	name  string
	ctrls []string
	v2    bool
}

// newV1Cgroup creates /sys/fs/cgroup/<ctrl>/<name> for each controller (v2:
// /sys/fs/cgroup/<name>) and removes them at cleanup (after the test's
// processes are gone).
func newV1Cgroup(t *testing.T, ctrls ...string) *v1Cgroup {
	t.Helper()
	cg := &v1Cgroup{name: "lxcfs-oci-test-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e9, 10), ctrls: ctrls}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err != nil {
		enabled, v2err := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
		if v2err != nil {
			t.Skipf("needs cgroup v1 controllers or cgroup v2 at /sys/fs/cgroup: %v; %v", err, v2err)
		}
		for _, c := range ctrls {
			if c = v2Controller(c); !contains(strings.Fields(string(enabled)), c) {
				t.Skipf("needs the %s controller enabled in /sys/fs/cgroup/cgroup.subtree_control (has %q)", c, strings.TrimSpace(string(enabled)))
			}
		}
		cg.v2, cg.ctrls = true, []string{"unified"}
	}
	for _, c := range cg.ctrls {
		if err := os.Mkdir(cg.dir(c), 0o755); err != nil {
			t.Fatalf("create cgroup: %v", err)
		}
	}
	t.Cleanup(func() {
		for _, c := range cg.ctrls {
			// A just-killed task may linger for a moment.
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
				if err := os.Remove(cg.dir(c)); err == nil || errors.Is(err, os.ErrNotExist) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	if contains(ctrls, "cpuset") && !cg.v2 {
		// A v1 cpuset takes no task until it has CPUs and memory nodes.
		cg.set(t, "cpuset", "cpuset.mems", readTrim(t, "/sys/fs/cgroup/cpuset/cpuset.mems"))
		cg.set(t, "cpuset", "cpuset.cpus", readTrim(t, "/sys/fs/cgroup/cpuset/cpuset.cpus"))
	}
	return cg
}

// v2Controller is the v2 controller doing what a v1 hierarchy did.
func v2Controller(v1 string) string {
	if v1 == "cpuacct" {
		return "cpu"
	}
	return v1
}

func (cg *v1Cgroup) dir(ctrl string) string {
	if cg.v2 {
		return filepath.Join("/sys/fs/cgroup", cg.name)
	}
	return filepath.Join("/sys/fs/cgroup", ctrl, cg.name)
}

func (cg *v1Cgroup) set(t *testing.T, ctrl, file, value string) {
	t.Helper()
	if cg.v2 {
		switch file {
		case "memory.limit_in_bytes":
			file = "memory.max"
		case "cpu.cfs_quota_us":
			// The tests keep v1's default period.
			file, value = "cpu.max", value+" 100000"
		case "cpuset.cpus", "cpuset.mems":
		default:
			t.Fatalf("no cgroup v2 equivalent of %s known to the tests", file)
		}
	}
	if err := os.WriteFile(filepath.Join(cg.dir(ctrl), file), []byte(value), 0o644); err != nil {
		t.Fatalf("set %s/%s to %s: %v", ctrl, file, value, err)
	}
}

// enterScript is shell that moves itself into the cgroup, to prefix a command.
func (cg *v1Cgroup) enterScript() string {
	var b strings.Builder
	for _, c := range cg.ctrls {
		b.WriteString("echo $$ > " + filepath.Join(cg.dir(c), "cgroup.procs") + " && ")
	}
	return b.String()
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(bytes.TrimSpace(b))
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
