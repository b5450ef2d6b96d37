package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeContainer starts a process in a mount namespace of its own (a
// container's init, minus the rest) and returns its pid; it is killed at
// cleanup, which also drops its namespace and every mount in it.
func fakeContainer(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, "unshare", "--mount", "--propagation", "private", "sleep", "120")
	if err := cmd.Start(); err != nil {
		cancel()
		t.Skipf("needs unshare(1) from util-linux: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	pid := cmd.Process.Pid
	own, _ := os.Readlink("/proc/self/ns/mnt")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if ns, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/mnt"); err == nil && ns != own {
			// unshare has switched namespaces; wait for the exec of sleep.
			if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) == "sleep" {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("unshare did not enter a new mount namespace within 30s")
	return 0
}

// hostileBundle is a bundle whose rootfs has regular files standing in for
// the targets (as procfs would give), so the hook has something to cover.
func hostileBundle(t *testing.T) (bundle, rootfs string) {
	t.Helper()
	bundle = t.TempDir()
	rootfs = filepath.Join(bundle, "rootfs")
	fillHostileRootfs(t, rootfs)
	cfg := `{"ociVersion":"1.2.0","root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/"}}`
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle, rootfs
}

func fillHostileRootfs(t *testing.T, rootfs string) {
	t.Helper()
	for _, f := range []string{"proc/meminfo", "proc/cpuinfo", "proc/uptime", "sys/devices/system/cpu/online"} {
		p := filepath.Join(rootfs, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("container's own\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// hostDir is a directory standing for a sensitive host path a hostile bundle
// points at.
func hostDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "host")
	for _, f := range []string{"meminfo", "proc/meminfo", "passwd"} {
		p := filepath.Join(d, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("host secret\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// spareIDs is how many container IDs the daemon keeps ready
// (cmd/lxcfs-fused).
const spareIDs = 4

// hostileStateDir is the state directory runHook gives the hook: the
// daemon's, when the test delegates create-runtime to it; empty, a private
// one (the hook runs it itself).
var hostileStateDir string

// hostileRan holds the pids runHook ran the hook for, hostileDaemon is
// the daemon a delegating test runs, and hostileDelegated counts the runs
// it took a spare for.
var (
	hostileRan       = map[int]bool{}
	hostileDaemon    *daemon
	hostileDelegated int
)

// runHook runs lxcfs-hook create-runtime directly with a state on stdin.
func runHook(t *testing.T, root, bundle string, pid int) (string, error) {
	t.Helper()
	stateDir := hostileStateDir
	if stateDir == "" {
		stateDir = t.TempDir()
	}
	state, _ := json.Marshal(map[string]any{
		"ociVersion": "1.2.0", "id": "hostile", "status": "creating", "pid": pid, "bundle": bundle,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The daemon runs create-runtime for a live pid it has not registered
	// (a second run is the hook's to serve again), given a spare ready:
	// each run takes one, made ready again in the background.
	want := hostileStateDir != "" && unix.Kill(pid, 0) == nil && !hostileRan[pid]
	hostileRan[pid] = true
	if want {
		hostileDelegated++
		waitSpares(t, hostileDaemon, spareIDs+hostileDelegated-1)
	}
	cmd := exec.CommandContext(ctx, hookBin, "--lxcfs-root", root, "--always", "--log-file", "-", "--state-dir", stateDir, "create-runtime")
	cmd.Stdin = bytes.NewReader(state)
	out, err := cmd.CombinedOutput()
	if delegated := strings.Contains(string(out), "run_by=lxcfs-fused"); delegated != want {
		t.Errorf("create-runtime run by the daemon: %v, want %v:\n%s", delegated, want, out)
	}
	return string(out), err
}

// TestHookHostile: bundles and pids that would have the views mounted
// outside the container are refused, whether the hook runs create-runtime
// itself or the daemon runs it for the hook (delegated): the same checks
// run in either process.
func TestHookHostile(t *testing.T) {
	for _, delegated := range []bool{false, true} {
		t.Run(map[bool]string{false: "in the hook", true: "delegated"}[delegated], func(t *testing.T) {
			d := startDaemon(t, fusedBin, "")
			hostileStateDir = ""
			hostileRan, hostileDaemon, hostileDelegated = map[int]bool{}, d, 0
			if delegated {
				hostileStateDir = d.stateDir
			}
			defer func() { hostileStateDir = "" }()
			testHookHostile(t, d.mp)
		})
	}
}

func testHookHostile(t *testing.T, root string) {
	before := mountPoints(t, "self")
	defer sameMounts(t, before)

	t.Run("host pid", func(t *testing.T) {
		bundle, _ := hostileBundle(t)
		out, err := runHook(t, root, bundle, os.Getpid())
		if err == nil || !strings.Contains(out, "shares the hook's own mount namespace") {
			t.Errorf("hook with a host pid: err=%v\n%s", err, out)
		}
		// The test binary's parent (go test) is another host process.
		out, err = runHook(t, root, bundle, os.Getppid())
		if err == nil || !strings.Contains(out, "shares the hook's own mount namespace") {
			t.Errorf("hook with the parent's pid: err=%v\n%s", err, out)
		}
	})

	t.Run("exited pid", func(t *testing.T) {
		bundle, _ := hostileBundle(t)
		cmd := exec.Command("true")
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		out, err := runHook(t, root, bundle, cmd.Process.Pid)
		if err == nil || !strings.Contains(out, "does not exist") {
			t.Errorf("hook with an exited pid: err=%v\n%s", err, out)
		}
	})

	t.Run("rootfs symlink to host dir", func(t *testing.T) {
		bundle, rootfs := hostileBundle(t)
		host := hostDir(t)
		os.RemoveAll(rootfs)
		if err := os.Symlink(host, rootfs); err != nil {
			t.Fatal(err)
		}
		pid := fakeContainer(t)
		nsBefore := mountPoints(t, strconv.Itoa(pid))
		out, err := runHook(t, root, bundle, pid)
		if err == nil || !strings.Contains(out, "is a symlink") {
			t.Errorf("symlinked rootfs: err=%v\n%s", err, out)
		}
		sameMountsIn(t, strconv.Itoa(pid), nsBefore)
	})

	t.Run("proc symlink to host path", func(t *testing.T) {
		bundle, rootfs := hostileBundle(t)
		host := hostDir(t)
		os.RemoveAll(filepath.Join(rootfs, "proc"))
		// Absolute: resolved inside the rootfs it names ROOTFS/<host>, which
		// does not exist, so the targets are skipped.
		if err := os.Symlink(filepath.Join(host, "proc"), filepath.Join(rootfs, "proc")); err != nil {
			t.Fatal(err)
		}
		pid := fakeContainer(t)
		out, err := runHook(t, root, bundle, pid)
		if err != nil {
			t.Errorf("hook failed: %v\n%s", err, out)
		}
		if !strings.Contains(out, "target=/proc/meminfo") || !strings.Contains(out, "does not exist") {
			t.Errorf("skip of /proc/meminfo not reported:\n%s", out)
		}
		for _, mp := range mountPoints(t, strconv.Itoa(pid)) {
			if strings.HasPrefix(mp, host) {
				t.Errorf("mounted over the host path %s", mp)
			}
		}
		// The sysfs target is genuine and served.
		if !strings.Contains(out, "mounted=/sys/devices/system/cpu") {
			t.Errorf("CPU directory not mounted:\n%s", out)
		}

		// Relative, climbing out with "..": clamped to the rootfs too.
		bundle2, rootfs2 := hostileBundle(t)
		os.RemoveAll(filepath.Join(rootfs2, "proc"))
		rel, _ := filepath.Rel(rootfs2, filepath.Join(host, "proc"))
		if err := os.Symlink(rel, filepath.Join(rootfs2, "proc")); err != nil {
			t.Fatal(err)
		}
		out, err = runHook(t, root, bundle2, pid)
		if err != nil {
			t.Errorf("hook failed: %v\n%s", err, out)
		}
		for _, mp := range mountPoints(t, strconv.Itoa(pid)) {
			if strings.HasPrefix(mp, host) {
				t.Errorf("relative symlink: mounted over the host path %s", mp)
			}
		}
		if b, _ := os.ReadFile(filepath.Join(host, "proc/meminfo")); string(b) != "host secret\n" {
			t.Errorf("host file changed: %q", b)
		}
	})

	t.Run("target symlink", func(t *testing.T) {
		bundle, rootfs := hostileBundle(t)
		host := hostDir(t)
		// Sorted first among the targets, so nothing is mounted before it.
		os.Remove(filepath.Join(rootfs, "proc/cpuinfo"))
		if err := os.Symlink(filepath.Join(host, "passwd"), filepath.Join(rootfs, "proc/cpuinfo")); err != nil {
			t.Fatal(err)
		}
		pid := fakeContainer(t)
		nsBefore := mountPoints(t, strconv.Itoa(pid))
		out, err := runHook(t, root, bundle, pid)
		if err == nil || !strings.Contains(out, "target /proc/cpuinfo is a symlink") {
			t.Errorf("symlinked target: err=%v\n%s", err, out)
		}
		sameMountsIn(t, strconv.Itoa(pid), nsBefore)
	})

	t.Run("target of another type", func(t *testing.T) {
		bundle, rootfs := hostileBundle(t)
		os.Remove(filepath.Join(rootfs, "proc/cpuinfo"))
		os.Mkdir(filepath.Join(rootfs, "proc/cpuinfo"), 0o755)
		pid := fakeContainer(t)
		out, err := runHook(t, root, bundle, pid)
		if err == nil || !strings.Contains(out, "not a regular file") {
			t.Errorf("directory target: err=%v\n%s", err, out)
		}
	})

	t.Run("rootfs on a tmpfs", func(t *testing.T) {
		// A rootfs lying on a tmpfs (a bundle under a tmpfs /tmp, with
		// no /sys mounted) makes the CPU directory a tmpfs directory,
		// yet no runtime masked it: the view still goes there.
		bundle, rootfs := hostileBundle(t)
		if err := unix.Mount("tmpfs", rootfs, "tmpfs", 0, "mode=0755"); err != nil {
			t.Fatalf("mount a tmpfs on the rootfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(rootfs, unix.MNT_DETACH) })
		fillHostileRootfs(t, rootfs)
		pid := fakeContainer(t)
		out, err := runHook(t, root, bundle, pid)
		var mounted []string
		for _, f := range strings.Fields(out) {
			if v, ok := strings.CutPrefix(f, "mounted="); ok {
				mounted = strings.Split(v, ",")
			}
		}
		if err != nil || !contains(mounted, "/sys/devices/system/cpu") {
			t.Errorf("CPU directory on a tmpfs rootfs not mounted: %v\n%s", err, out)
		}
	})

	t.Run("genuine", func(t *testing.T) {
		// The same setup without tricks mounts, in the container's
		// namespace only.
		bundle, rootfs := hostileBundle(t)
		pid := fakeContainer(t)
		out, err := runHook(t, root, bundle, pid)
		if err != nil || !strings.Contains(out, "views mounted") {
			t.Fatalf("hook: %v\n%s", err, out)
		}
		found := false
		for _, mp := range mountPoints(t, strconv.Itoa(pid)) {
			found = found || mp == filepath.Join(rootfs, "proc/meminfo")
		}
		if !found {
			t.Errorf("no mount at %s in the container's namespace", filepath.Join(rootfs, "proc/meminfo"))
		}
		// Twice (prestart and createRuntime both listing the hook) stacks nothing.
		out, err = runHook(t, root, bundle, pid)
		if err != nil || !strings.Contains(out, "already a FUSE file") {
			t.Errorf("second run: %v\n%s", err, out)
		}
	})

	t.Run("genuine on procfs", func(t *testing.T) {
		// The runtime's own /proc, a procfs: its targets are attached by
		// name (pkg/mountns), and a second run must still see the views
		// the first left there rather than stack more.
		bundle, rootfs := hostileBundle(t)
		proc := filepath.Join(rootfs, "proc")
		if err := os.RemoveAll(proc); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(proc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("proc", proc, "proc", 0, ""); err != nil {
			t.Fatalf("mount a procfs in the rootfs: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(proc, unix.MNT_DETACH) })
		pid := fakeContainer(t)
		out, err := runHook(t, root, bundle, pid)
		if err != nil || !strings.Contains(out, "views mounted") {
			t.Fatalf("hook: %v\n%s", err, out)
		}
		views := func() (n int) {
			for _, mp := range mountPoints(t, strconv.Itoa(pid)) {
				if mp == filepath.Join(proc, "meminfo") {
					n++
				}
			}
			return n
		}
		if n := views(); n != 1 {
			t.Errorf("%d mounts at %s in the container's namespace, want 1", n, filepath.Join(proc, "meminfo"))
		}
		out, err = runHook(t, root, bundle, pid)
		if err != nil || !strings.Contains(out, "already a FUSE file") {
			t.Errorf("second run: %v\n%s", err, out)
		}
		if n := views(); n != 1 {
			t.Errorf("after a second run, %d mounts at %s, want 1", n, filepath.Join(proc, "meminfo"))
		}
	})
}
