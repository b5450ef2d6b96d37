package integration

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// toolsScript runs, in a container with the host's /usr, the tools people
// count CPUs and read memory counters with, one key=value a line.
const toolsScript = `echo "lscpu=$(lscpu | grep '^CPU(s):' | tr -s ' ' | cut -d' ' -f2)"
echo "lscpu_online=$(lscpu | grep '^On-line CPU(s) list:' | tr -s ' ' | cut -d' ' -f4)"
echo "conf=$(getconf _NPROCESSORS_CONF)"
echo "onln=$(getconf _NPROCESSORS_ONLN)"
echo "nproc=$(nproc)"
echo "python=$(python3 -c 'import os; print(os.cpu_count())')"
echo "mpstat=$(mpstat | head -1 | grep -o '([0-9]* CPU)')"
echo "sar=$(sar.sysstat 1 1 | head -1 | grep -o '([0-9]* CPU)')"
echo "cpudirs=$(cd /sys/devices/system/cpu && echo cpu[0-9]*)"
echo "possible=$(cat /sys/devices/system/cpu/possible)"
echo "present=$(cat /sys/devices/system/cpu/present)"
echo "offline=$(cat /sys/devices/system/cpu/offline)"
echo "core_id=$(cat /sys/devices/system/cpu/cpu0/topology/core_id)"
echo "vmstat_total=$(vmstat -s | grep 'K total memory' | tr -s ' ' | cut -d' ' -f2)"
echo "pgfault0=$(grep '^pgfault ' /proc/vmstat | cut -d' ' -f2)"
echo "anon=$(grep '^nr_anon_pages ' /proc/vmstat | cut -d' ' -f2)"
python3 -c 'import mmap; m = mmap.mmap(-1, 8 << 20); m.madvise(mmap.MADV_NOHUGEPAGE); m.write(b"x" * (8 << 20))'
echo "pgfault1=$(grep '^pgfault ' /proc/vmstat | cut -d' ' -f2)"
`

// TestHookRuncCPUTools: in a runc container with cpuset 0 and 64 MiB, every
// tool counts the container's one CPU, the CPU directory holds that CPU's
// host directory alone, and /proc/vmstat's counters are the container's.
func TestHookRuncCPUTools(t *testing.T) {
	for _, tool := range []string{"/usr/bin/lscpu", "/usr/bin/getconf", "/usr/bin/mpstat", "/usr/bin/sar.sysstat", "/usr/bin/python3", "/usr/bin/vmstat"} {
		if _, err := os.Stat(tool); err != nil {
			t.Skipf("needs %s (scripts/install-deps.sh installs it): %v", tool, err)
		}
	}
	root := startViews(t)
	bundle := busyboxBundle(t, bundleOpts{script: toolsScript, limits: true, hostUsr: true})
	injectHook(t, bundle, root)
	// Read before the container starts: the host's counter only grows, so
	// a container shown the host's file would read more than this.
	hostFaults := vmstatField(t, readFile(t, "/proc/vmstat"), "pgfault")
	out, stderr, err := runcRun(t, bundle)
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, stderr)
	}
	t.Logf("container:\n%s", out)
	for key, want := range map[string]string{
		"lscpu": "1", "lscpu_online": "0", "conf": "1", "onln": "1", "nproc": "1", "python": "1",
		"mpstat": "(1 CPU)", "sar": "(1 CPU)",
		"cpudirs": "cpu0", "possible": "0", "present": "0", "offline": "",
		"vmstat_total": "65536",
	} {
		if got := field(out, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	if got, want := field(out, "core_id"), readTrim(t, "/sys/devices/system/cpu/cpu0/topology/core_id"); got != want {
		t.Errorf("cpu0/topology/core_id = %q, want the host's %q", got, want)
	}

	// The host's counter counts every fault since boot; the container's
	// only its own, and grows by at least the 2048 pages python wrote.
	before, after := atou(t, field(out, "pgfault0")), atou(t, field(out, "pgfault1"))
	if before == 0 || before >= hostFaults {
		t.Errorf("container pgfault %d, want its own count: above 0 and below the host's %d", before, hostFaults)
	}
	// The 8 MiB are mapped with MADV_NOHUGEPAGE: with transparent huge
	// pages always on (Debian's kernels) a 2 MiB page takes one fault.
	if after < before+2048 {
		t.Errorf("container pgfault went %d -> %d over writing 8 MiB, want at least 2048 more", before, after)
	}
	if anon := atou(t, field(out, "anon")); anon*4096 > 64<<20 {
		t.Errorf("nr_anon_pages = %d pages, more than the 64 MiB limit: the host's figure", anon)
	}
}

// TestHookRuncCPUDirMasked: a runtime that masks or write-protects the CPU
// directory keeps its say: the container starts, masked shows nothing, and
// read-only still shows the view. runc masks after the hook ran; a tmpfs
// already over the directory when the hook runs is skipped.
func TestHookRuncCPUDirMasked(t *testing.T) {
	root := startViews(t)
	for _, tc := range []struct {
		key, want string
	}{
		{"maskedPaths", ""},
		{"readonlyPaths", "0"},
		{"tmpfs", ""},
	} {
		t.Run(tc.key, func(t *testing.T) {
			bundle := busyboxBundle(t, bundleOpts{script: `echo "online=$(cat /sys/devices/system/cpu/online 2>/dev/null)"
echo "entries=$(ls /sys/devices/system/cpu | grep -c '^cpu[0-9]')"`, limits: true})
			editConfig(t, bundle, func(c map[string]any) {
				if tc.key == "tmpfs" {
					c["mounts"] = append(c["mounts"].([]any), map[string]any{
						"destination": "/sys/devices/system/cpu", "type": "tmpfs", "source": "tmpfs", "options": []any{"ro"},
					})
					return
				}
				linux := c["linux"].(map[string]any)
				paths, _ := linux[tc.key].([]any)
				linux[tc.key] = append(paths, "/sys/devices/system/cpu")
			})
			logPath := injectHook(t, bundle, root)
			out, stderr, err := runcRun(t, bundle)
			if err != nil {
				t.Fatalf("runc run: %v\n%s", err, stderr)
			}
			if got := field(out, "online"); got != tc.want {
				t.Errorf("online = %q, want %q\n%s", got, tc.want, out)
			}
			wantEntries := "1"
			if tc.want == "" {
				wantEntries = "0"
			}
			if log := readHookLog(t, logPath); tc.key == "tmpfs" && !strings.Contains(log, "masked by the runtime") {
				t.Errorf("hook log does not report the masked directory skipped:\n%s", log)
			}
			if got := field(out, "entries"); got != wantEntries {
				t.Errorf("cpuN entries = %q, want %s", got, wantEntries)
			}
		})
	}
}

func vmstatField(t *testing.T, vmstat, name string) uint64 {
	t.Helper()
	for line := range strings.SplitSeq(vmstat, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return atou(t, v)
		}
	}
	t.Fatalf("no %s line in vmstat", name)
	return 0
}

func atou(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return v
}

// TestReliabilityCPUDirAcrossWorkerKill: a reader holding a pass-through
// file and directory of the CPU directory open keeps reading them after the
// worker that handed them out is killed: the new worker knows the node IDs
// the kernel holds.
func TestReliabilityCPUDirAcrossWorkerKill(t *testing.T) {
	d := startDaemon(t, fusedBin, "")
	topo := filepath.Join(d.mp, "sys/devices/system/cpu/cpu0/topology")
	want := readTrim(t, "/sys/devices/system/cpu/cpu0/topology/core_id")
	f, err := os.Open(filepath.Join(topo, "core_id"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir, err := os.Open(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()

	_, worker, _ := fusedState(t, d)
	if err := syscall.Kill(worker, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitWorker(t, d, worker)

	buf := make([]byte, 64)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		t.Fatalf("read an open core_id after the worker was killed: %v", err)
	}
	if got := strings.TrimSpace(string(buf[:n])); got != want {
		t.Errorf("open core_id after the kill = %q, want %q", got, want)
	}
	fd, err := unix.Openat(int(dir.Fd()), "core_id", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open core_id in a held directory after the worker was killed: %v", err)
	}
	again := os.NewFile(uintptr(fd), "core_id")
	defer again.Close()
	b, err := io.ReadAll(again)
	if err != nil || strings.TrimSpace(string(b)) != want {
		t.Errorf("core_id opened after the kill = %q, %v; want %q", b, err, want)
	}
}
