package integration

import (
	"strings"
	"testing"
)

const servedMemTotal = "MemTotal: 65536 kB"

// TestHookRuncLimits runs a limited busybox container with runc and the
// injected hook and checks the limits are what it sees.
func TestHookRuncLimits(t *testing.T) {
	root := startViews(t)
	before := mountPoints(t, "self")
	bundle := busyboxBundle(t, bundleOpts{script: viewScript, limits: true, hostUsr: true})
	logPath := injectHook(t, bundle, root)
	out, stderr, err := runcRun(t, bundle)
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, stderr)
	}
	t.Logf("container view:\n%s", out)
	if got := field(out, "memtotal"); got != servedMemTotal {
		t.Errorf("MemTotal = %q, want %q", got, servedMemTotal)
	}
	if got := field(out, "procs"); got != "1" {
		t.Errorf("processors in cpuinfo = %q, want 1", got)
	}
	if got := field(out, "online"); got != "0" {
		t.Errorf("cpu online = %q, want 0", got)
	}
	// busybox has no getconf; its nproc counts the affinity mask (cpuset).
	if got := field(out, "nproc"); got != "1" {
		t.Errorf("nproc = %q, want 1", got)
	}
	if up := atof(t, field(out, "uptime")); up > 30 {
		t.Errorf("uptime = %v s, want the container's (a few seconds)", up)
	}
	// glibc's getconf counts /sys/devices/system/cpu/online.
	if got := field(out, "getconf"); got != "1" {
		t.Errorf("getconf _NPROCESSORS_ONLN = %q, want 1", got)
	}
	// procps free reads /proc/meminfo; busybox free asks sysinfo(2), which
	// no file bind can change (its total stays the host's: logged only).
	if got := field(out, "procps_free"); got != "65536" {
		t.Errorf("procps free total = %q kB, want 65536", got)
	}
	t.Logf("busybox free (sysinfo, host figures): %s", field(out, "free"))
	if got := field(out, "meminfo_mount"); got != "1" {
		t.Errorf("/proc/meminfo mount count in the container = %q, want 1", got)
	}
	log := readHookLog(t, logPath)
	if !strings.Contains(log, "views mounted") || !strings.Contains(log, "container=lxcfs-hook-test-") {
		t.Errorf("hook log lacks the outcome with the container id:\n%s", log)
	}
	sameMounts(t, before)
}

func TestHookRuncReadOnlyRootfs(t *testing.T) {
	root := startViews(t)
	bundle := busyboxBundle(t, bundleOpts{script: viewScript + `echo "write=$( (echo x > /proc/meminfo) 2>/dev/null && echo ok || echo refused)"`, limits: true, readOnly: true})
	injectHook(t, bundle, root)
	out, stderr, err := runcRun(t, bundle)
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, stderr)
	}
	if got := field(out, "memtotal"); got != servedMemTotal {
		t.Errorf("MemTotal = %q, want %q\n%s", got, servedMemTotal, out)
	}
	if got := field(out, "write"); got != "refused" {
		t.Errorf("writing the view: %q, want refused", got)
	}
}

func TestHookRuncWithoutSys(t *testing.T) {
	root := startViews(t)
	bundle := busyboxBundle(t, bundleOpts{script: viewScript, limits: true, noSys: true})
	logPath := injectHook(t, bundle, root)
	out, stderr, err := runcRun(t, bundle)
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, stderr)
	}
	if got := field(out, "memtotal"); got != servedMemTotal {
		t.Errorf("MemTotal = %q, want %q", got, servedMemTotal)
	}
	if got := field(out, "online"); !strings.Contains(got, "No such file") {
		t.Errorf("online without /sys = %q, want missing", got)
	}
	log := readHookLog(t, logPath)
	if !strings.Contains(log, "target=/sys/devices/system/cpu") || !strings.Contains(log, "skipped") {
		t.Errorf("hook log does not report the skipped sysfs target:\n%s", log)
	}
}

func TestHookRuncOptIn(t *testing.T) {
	root := startViews(t)
	host := hostMemTotal(t)
	for _, tt := range []struct {
		name   string
		ann    map[string]string
		inject []string
		want   string
	}{
		{"not opted in", nil, []string{"--always=false"}, host},
		{"annotation", map[string]string{"io.lxcfs.enabled": "true"}, []string{"--always=false"}, servedMemTotal},
		{"pouch annotation", map[string]string{"io.kubernetes.lxcfs.enabled": "true"}, []string{"--always=false"}, servedMemTotal},
		{"opted out despite --always", map[string]string{"io.lxcfs.enabled": "false"}, nil, host},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bundle := busyboxBundle(t, bundleOpts{script: viewScript, limits: true, annotations: tt.ann})
			logPath := injectHook(t, bundle, root, tt.inject...)
			out, stderr, err := runcRun(t, bundle)
			if err != nil {
				t.Fatalf("runc run: %v\n%s", err, stderr)
			}
			if got := field(out, "memtotal"); got != tt.want {
				t.Errorf("MemTotal = %q, want %q", got, tt.want)
			}
			if tt.want == host && !strings.Contains(readHookLog(t, logPath), "container not served") {
				t.Errorf("hook log lacks the reason:\n%s", readHookLog(t, logPath))
			}
		})
	}
}

// TestHookRuncDaemonDown: nothing serves at the root. By default the
// container starts with the host's files and a warning; fail-closed stops it.
func TestHookRuncDaemonDown(t *testing.T) {
	requireRoot(t)
	root := t.TempDir() // no daemon: a plain directory
	host := hostMemTotal(t)

	bundle := busyboxBundle(t, bundleOpts{script: viewScript, limits: true})
	logPath := injectHook(t, bundle, root)
	out, stderr, err := runcRun(t, bundle)
	if err != nil {
		t.Fatalf("runc run (fail-open): %v\n%s", err, stderr)
	}
	if got := field(out, "memtotal"); got != host {
		t.Errorf("MemTotal = %q, want the host's %q", got, host)
	}
	if log := readHookLog(t, logPath); !strings.Contains(log, "views not served") || !strings.Contains(log, "level=WARN") {
		t.Errorf("no warning logged:\n%s", log)
	}

	for _, how := range []struct {
		name   string
		inject []string
		ann    map[string]string
	}{
		{"--fail-closed", []string{"--fail-closed"}, nil},
		{"io.lxcfs.required", nil, map[string]string{"io.lxcfs.required": "true"}},
	} {
		t.Run(how.name, func(t *testing.T) {
			bundle := busyboxBundle(t, bundleOpts{script: "echo started", limits: true, annotations: how.ann})
			logPath := injectHook(t, bundle, root, how.inject...)
			out, stderr, err := runcRun(t, bundle)
			if err == nil {
				t.Fatalf("container started with the daemon down and fail-closed: %s", out)
			}
			if strings.Contains(out, "started") {
				t.Errorf("container process ran: %q", out)
			}
			// crun reports only the hook's exit status; the hook's log
			// says why either way.
			if ociRuntime() == "runc" && !strings.Contains(stderr, "views not served") {
				t.Errorf("runc's error does not say why:\n%s", stderr)
			}
			if log := readHookLog(t, logPath); !strings.Contains(log, "views not served and required") {
				t.Errorf("hook log does not say why:\n%s", log)
			}
		})
	}
}

// TestHookLXCFSBackend points the same hook at a real LXCFS mount.
func TestHookLXCFSBackend(t *testing.T) {
	root := startLXCFS(t)
	bundle := busyboxBundle(t, bundleOpts{script: viewScript, limits: true})
	injectHook(t, bundle, root)
	out, stderr, err := runcRun(t, bundle)
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, stderr)
	}
	if got := field(out, "memtotal"); got != servedMemTotal {
		t.Errorf("MemTotal with LXCFS = %q, want %q\n%s", got, servedMemTotal, out)
	}
	if got := field(out, "online"); got != "0" {
		t.Errorf("online with LXCFS = %q, want 0", got)
	}
}
