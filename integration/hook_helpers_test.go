package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startViews serves the views on a temporary mountpoint with our daemon.
func startViews(t *testing.T) string {
	t.Helper()
	return startFused(t)
}

// startLXCFS serves the views with the real LXCFS (Debian lxcfs), to show the
// hook does not depend on our daemon.
func startLXCFS(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	lxcfs, err := exec.LookPath("lxcfs")
	if err != nil {
		t.Skipf("needs the lxcfs binary (Debian package lxcfs): %v", err)
	}
	dir := t.TempDir()
	mp := filepath.Join(dir, "lxcfs")
	if err := os.Mkdir(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "lxcfs.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(lxcfs, "-p", filepath.Join(dir, "lxcfs.pid"), mp)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start lxcfs: %v", err)
	}
	exited := make(chan struct{})
	var exitErr error
	go func() { exitErr = cmd.Wait(); logFile.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if isMounted(t, mp) {
			unix.Unmount(mp, unix.MNT_DETACH)
		}
	})
	waitServing(t, "lxcfs", mp, logPath, exited, &exitErr)
	return mp
}

// bundleOpts shape a test container.
type bundleOpts struct {
	script      string // run by /bin/sh -c
	limits      bool   // 64 MiB, cpuset 0, quota 50000/100000
	readOnly    bool
	noSys       bool // drop the /sys mount
	hostUsr     bool // bind the host's /usr read-only: glibc getconf, procps free
	annotations map[string]string
	files       map[string]string // host file -> path in the rootfs, copied in
	memory      int               // memory limit with limits, bytes; 0: 64 MiB
	// prepare changes the bundle (runDetached) before the hook is injected.
	prepare []func(bundle string)
}

// busyboxBundle makes an OCI bundle under t.TempDir() whose rootfs holds the
// static busybox and its applet links.
func busyboxBundle(t *testing.T, o bundleOpts) string {
	t.Helper()
	requireRoot(t)
	for _, bin := range []string{"runc", ociRuntime(), "busybox"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s (Debian packages runc, crun, busybox-static): %v", bin, err)
		}
	}
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	makeBusyboxRootfs(t, rootfs)
	for from, to := range o.files {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rootfs, to), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runc", "spec", "--bundle", bundle)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("runc spec: %v\n%s", err, out)
	}
	editConfig(t, bundle, func(c map[string]any) {
		proc := c["process"].(map[string]any)
		proc["terminal"] = false
		proc["args"] = []any{"/bin/sh", "-c", o.script}
		c["root"] = map[string]any{"path": "rootfs", "readonly": o.readOnly}
		linux := c["linux"].(map[string]any)
		if o.limits {
			memory := 64 << 20
			if o.memory > 0 {
				memory = o.memory
			}
			linux["resources"] = map[string]any{
				"memory": map[string]any{"limit": memory},
				"cpu":    map[string]any{"cpus": "0", "quota": 50000, "period": 100000},
			}
		}
		if o.hostUsr {
			c["mounts"] = append(c["mounts"].([]any), map[string]any{
				"destination": "/usr", "type": "bind", "source": "/usr", "options": []any{"rbind", "ro"},
			})
			// The dynamic loader and libraries, through merged-/usr links.
			for _, l := range []string{"lib", "lib64"} {
				if _, err := os.Stat("/usr/" + l); err == nil {
					os.Symlink("usr/"+l, filepath.Join(rootfs, l))
				}
			}
		}
		if o.noSys {
			var kept []any
			for _, m := range c["mounts"].([]any) {
				if m.(map[string]any)["destination"] != "/sys" {
					kept = append(kept, m)
				}
			}
			c["mounts"] = kept
		}
		if len(o.annotations) > 0 {
			a := map[string]any{}
			for k, v := range o.annotations {
				a[k] = v
			}
			c["annotations"] = a
		}
	})
	return bundle
}

func makeBusyboxRootfs(t *testing.T, rootfs string) {
	t.Helper()
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Skipf("needs busybox-static: %v", err)
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bb, "--list").Output()
	if err != nil {
		t.Fatalf("busybox --list: %v", err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.Contains(applet, "/") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
}

func editConfig(t *testing.T, bundle string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	edit(c)
	data, err = json.MarshalIndent(c, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// injectHook adds our hook to the bundle with `lxcfs-hook inject`, logging to
// a file of the test; extra goes after the inject flags. It returns the log path.
func injectHook(t *testing.T, bundle, root string, extra ...string) string {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), "hook.log")
	// A private state dir: the tests' containers must not be recorded in
	// the host's /run/lxcfs-oci.
	args := append([]string{"inject", "--bundle", bundle, "--hook-path", hookBin, "--lxcfs-root", root, "--log-file", logPath,
		"--state-dir", filepath.Join(filepath.Dir(logPath), "state")}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, hookBin, args...).CombinedOutput(); err != nil {
		t.Fatalf("lxcfs-hook inject: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("hook log:\n%s", b)
		}
	})
	return logPath
}

var runcSeq int

// runcRun runs the bundle to completion with a private runc state root and
// returns its stdout and stderr. The container is deleted at cleanup.
func runcRun(t *testing.T, bundle string) (string, string, error) {
	t.Helper()
	runcSeq++
	id := fmt.Sprintf("lxcfs-hook-test-%d-%d", os.Getpid(), runcSeq)
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, ociRuntime(), "--root", state, "run", "--bundle", bundle, id)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		exec.CommandContext(ctx, ociRuntime(), "--root", state, "delete", "--force", id).Run()
	})
	return stdout.String(), stderr.String(), err
}

// mountPoints lists the mount points of a mount namespace, via a process in it.
func mountPoints(t *testing.T, pid string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var mps []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			mps = append(mps, unescapeMount(f[4]))
		}
	}
	sort.Strings(mps)
	return mps
}

// sameMounts fails the test when a host mount point appeared or went away
// since before. Mount points in other tests' temporary directories are not
// this test's doing: go test runs packages side by side, and pkg/fusefs
// mounts while the integration tests run. Call it from the test itself, not
// a subtest, so that its temporary directory is the test's.
func sameMounts(t *testing.T, before []string) {
	t.Helper()
	sameMountsIn(t, "self", before)
}

// sameMountsIn is sameMounts for the mount namespace of process pid.
// Changes under the temporary directory that other tests (run beside this
// one by go test, or in another checkout) make are not this test's.
func sameMountsIn(t *testing.T, pid string, before []string) {
	t.Helper()
	tmp := filepath.Clean(os.TempDir()) + "/"
	// t.TempDir's parent is this test's own, unlike its name, which a run
	// of the same test in another checkout shares.
	ours := filepath.Dir(t.TempDir()) + "/"
	counts := map[string]int{}
	for _, m := range before {
		counts[m]++
	}
	for _, m := range mountPoints(t, pid) {
		counts[m]--
	}
	for m, n := range counts {
		if n == 0 || (strings.HasPrefix(m, tmp) && !strings.HasPrefix(m, ours)) {
			continue
		}
		if n < 0 {
			t.Errorf("mount appeared during the test: %s", m)
		} else {
			t.Errorf("mount went away during the test: %s", m)
		}
	}
}

// hostMemTotal is the first line of the host's /proc/meminfo.
func hostMemTotal(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0]), " ")
}

// field returns the value after "key=" in the container's output lines.
func field(out, key string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(key) + `=(.*)$`).FindStringSubmatch(out)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

// readHookLog returns the hook log, for messages the runtime discarded.
func readHookLog(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// viewScript prints what the tests compare, one key=value a line.
const viewScript = `echo "memtotal=$(grep MemTotal /proc/meminfo | tr -s ' ')"
echo "procs=$(grep -c ^processor /proc/cpuinfo)"
echo "online=$(cat /sys/devices/system/cpu/online 2>&1)"
echo "nproc=$(nproc)"
echo "uptime=$(cut -d' ' -f1 /proc/uptime)"
echo "free=$(free | grep Mem: | tr -s ' ')"
echo "meminfo_mount=$(grep -c ' /proc/meminfo ' /proc/self/mountinfo)"
if [ -x /usr/bin/getconf ]; then echo "getconf=$(/usr/bin/getconf _NPROCESSORS_ONLN)"; fi
if [ -x /usr/bin/free ]; then echo "procps_free=$(/usr/bin/free -k | grep Mem: | tr -s ' ' | cut -d' ' -f2)"; fi
`

func atof(t *testing.T, s string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return f
}
