package content

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/caller"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/cgroup"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
)

func TestMain(m *testing.M) {
	// The fixture trees are plain directories, not cgroupfs.
	cgroups.TestMode = true
	os.Exit(m.Run())
}

// fakeResolver stands for caller.Resolver: every pid is in one container
// (or the host when c is nil).
type fakeResolver struct {
	c      *caller.Container
	err    error
	forgot int
}

func (r *fakeResolver) Resolve(int) (*caller.Container, error) { return r.c, r.err }
func (r *fakeResolver) Lookup(uint32) (*caller.Container, error) {
	if r.c == nil && r.err == nil {
		return nil, errors.New("no such container")
	}
	return r.c, r.err
}
func (r *fakeResolver) Forget(*caller.Container) { r.forgot++ }

func files(t *testing.T, cgroupRoot string, r Resolver) *Files {
	t.Helper()
	h, err := cgroup.Detect(cgroupRoot)
	if err != nil {
		t.Fatal(err)
	}
	return &Files{
		ProcDir:  "testdata/host/proc",
		SysDir:   "testdata/host/sys",
		Cgroups:  h,
		Callers:  r,
		Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Now:      func() time.Duration { return 4000*time.Second + 500*time.Millisecond },
		ClockTck: 100,
	}
}

func ctr(path string) *caller.Container {
	// Started 3990s after boot: 10.5s before Now.
	return &caller.Container{ID: 7, NS: 1, InitPid: 4242, StartTicks: 399000, Cgroups: map[string]string{"": path}}
}

func host(t *testing.T, name string) string {
	t.Helper()
	f := &Files{ProcDir: "testdata/host/proc", SysDir: "testdata/host/sys"}
	dir, file := f.hostFile(name)
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func kB(t *testing.T, meminfo, key string) uint64 {
	t.Helper()
	for line := range strings.SplitSeq(meminfo, "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			n, err := strconv.ParseUint(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in:\n%s", key, meminfo)
	return 0
}

func TestList(t *testing.T) {
	f := files(t, "testdata/v2", &fakeResolver{})
	got := strings.Join(f.List(), " ")
	want := "proc/cpuinfo proc/diskstats proc/loadavg proc/meminfo proc/stat proc/swaps proc/uptime proc/vmstat sys/devices/system/cpu/online sys/devices/system/cpu/possible sys/devices/system/cpu/present sys/devices/system/cpu/offline proc/pressure/cpu"
	if got != want {
		t.Errorf("List() = %s\nwant     %s", got, want)
	}
}

// Host readers, unresolvable readers and containers whose cgroups are
// garbage all get the host's file, byte for byte.
func TestHostFallbacks(t *testing.T) {
	resolvers := map[string]*fakeResolver{
		"host":       {},
		"unresolved": {err: errors.New("process 99 exited")},
		"garbage":    {c: ctr("/garbage")},
		"removed":    {c: ctr("/pod/gone")},
	}
	for rname, r := range resolvers {
		f := files(t, "testdata/v2", r)
		for _, name := range []string{Meminfo, Swaps, Cpuinfo, Online, Possible, Present, Offline, Stat, Uptime, Diskstats, Loadavg, Vmstat} {
			if rname == "garbage" && name == Swaps {
				continue // garbage memory.max: covered by Meminfo; swaps reads the same figures
			}
			got, err := f.Render(name, f.Identify(4243))
			if err != nil {
				t.Fatalf("%s %s: %v", rname, name, err)
			}
			if string(got) != host(t, name) {
				t.Errorf("%s reader of %s: got a rewritten file, want the host's:\n%s", rname, name, got)
			}
		}
	}
	if resolvers["host"] != nil {
		if hide := files(t, "testdata/v2", resolvers["host"]).Hidden(CPUDir, 7); hide != nil {
			t.Errorf("a host reader gets a filter on the CPU directory: it must see every entry")
		}
	}
	if resolvers["removed"].forgot == 0 {
		t.Errorf("a container whose cgroup vanished was not forgotten, so it would never be looked up again")
	}
}

func TestContainerV2(t *testing.T) {
	f := files(t, "testdata/v2", &fakeResolver{c: ctr("/pod/ctr")})
	render := func(name string) string {
		t.Helper()
		b, err := f.Render(name, 7)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return string(b)
	}

	m := render(Meminfo)
	if got := kB(t, m, "MemTotal"); got != 131072 {
		t.Errorf("MemTotal = %d kB, want the parent's 128 MiB limit, 131072", got)
	}
	if got := kB(t, m, "MemFree"); got != 131072-32768 {
		t.Errorf("MemFree = %d kB, want 98304", got)
	}
	if got := kB(t, m, "Mapped"); got != 2048 {
		t.Errorf("Mapped = %d kB, want file_mapped 2048", got)
	}
	if got := kB(t, m, "SwapTotal"); got != 0 {
		t.Errorf("SwapTotal = %d with memory.swap.max 0", got)
	}

	if got := strings.Count(render(Cpuinfo), "processor"); got != 1 {
		t.Errorf("cpuinfo lists %d processors, want 1 (cpuset 1)", got)
	}
	for _, name := range []string{Online, Possible, Present} {
		if got := render(name); got != "1\n" {
			t.Errorf("%s = %q, want \"1\\n\" (cpuset 1, by its host id)", name, got)
		}
	}
	if got := render(Offline); got != "\n" {
		t.Errorf("offline = %q, want an empty list", got)
	}
	hidden := f.Hidden(CPUDir, 7)
	if hidden == nil {
		t.Fatal("no filter for the CPU directory")
	}
	for name, want := range map[string]bool{"cpu0": true, "cpu1": false, "cpu2": true, "cpufreq": false, "online": false} {
		if got := hidden(name); got != want {
			t.Errorf("%s hidden = %v, want %v", name, got, want)
		}
	}
	if f.HostDir(CPUDir) != "testdata/host/sys/devices/system/cpu" || f.HostDir("proc") != "" {
		t.Errorf("HostDir: %q, %q", f.HostDir(CPUDir), f.HostDir("proc"))
	}
	stat := render(Stat)
	var cpuLines []string
	for line := range strings.SplitSeq(stat, "\n") {
		if strings.HasPrefix(line, "cpu") {
			cpuLines = append(cpuLines, line)
		}
	}
	if len(cpuLines) != 2 || !strings.HasPrefix(cpuLines[1], "cpu1 200 0 100 ") {
		t.Errorf("stat cpu lines = %q, want cpu and cpu1 (cpuset 1, by its host id) with user 200 system 100 ticks (cpu.stat 2s/1s)", cpuLines)
	}
	if got := render(Uptime); got != "10.50 7.50\n" {
		t.Errorf("uptime = %q, want \"10.50 7.50\\n\" (10.5s since the init started, minus 3s of CPU)", got)
	}
	disk := render(Diskstats)
	if f := strings.Fields(disk); len(f) < 14 || f[2] != "vda" || f[3] != "256" || f[5] != "2048" || f[7] != "512" || f[9] != "4096" {
		t.Errorf("diskstats = %q, want one vda line with 256 reads, 2048 sectors read, 512 writes, 4096 sectors written", disk)
	}
	if got := render(pressurePrefix + "cpu"); !strings.HasPrefix(got, "some avg10=1.00") {
		t.Errorf("pressure/cpu = %q, want the cgroup's cpu.pressure", got)
	}
	wantVmstat := "nr_anon_pages 5120\nnr_file_pages 2048\npgpgin 735013\npswpin 5\npgfault 4242\npgmajfault 7\n"
	if got := render(Vmstat); got != wantVmstat {
		t.Errorf("vmstat = %q, want %q (memory.stat anon, file, pgfault, pgmajfault; the rest the host's)", got, wantVmstat)
	}
	if got := render(Loadavg); got != host(t, Loadavg) {
		t.Errorf("loadavg without a sampler = %q, want the host's", got)
	}
}

// TestMemStatMaxAge: with MemStatMaxAge a container's memory.stat figures
// (Mapped) are reused across renders while its usage (MemFree) is read for
// each; without it both are read for each.
func TestMemStatMaxAge(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/v2")); err != nil {
		t.Fatal(err)
	}
	reusing := files(t, root, &fakeResolver{c: ctr("/pod/ctr")})
	reusing.MemStatMaxAge = time.Hour
	plain := files(t, root, &fakeResolver{c: ctr("/pod/ctr")})
	meminfo := func(f *Files) string {
		t.Helper()
		b, err := f.Render(Meminfo, 7)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := kB(t, meminfo(reusing), "Mapped"); got != 2048 {
		t.Fatalf("Mapped = %d kB, want file_mapped 2048", got)
	}
	dir := filepath.Join(root, "pod/ctr")
	stat, err := os.ReadFile(filepath.Join(dir, "memory.stat"))
	if err != nil {
		t.Fatal(err)
	}
	stat = []byte(strings.Replace(string(stat), "file_mapped 2097152", "file_mapped 4194304", 1))
	if err := os.WriteFile(filepath.Join(dir, "memory.stat"), stat, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.current"), []byte("67108864\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	m := meminfo(reusing)
	if got := kB(t, m, "Mapped"); got != 2048 {
		t.Errorf("Mapped = %d kB within MemStatMaxAge, want the reused 2048", got)
	}
	if got := kB(t, m, "MemFree"); got != 131072-65536 {
		t.Errorf("MemFree = %d kB after usage grew to 64 MiB, want 65536: usage must be read for every render", got)
	}
	if got := kB(t, meminfo(plain), "Mapped"); got != 4096 {
		t.Errorf("Mapped = %d kB without MemStatMaxAge, want the new 4096", got)
	}
}

// TestMeminfoWithoutHostSwap: on a host without swap (the fixture's
// SwapTotal is 0) meminfo does not read the container's swap usage, whose
// figures could not show: garbage there leaves the container's view intact.
func TestMeminfoWithoutHostSwap(t *testing.T) {
	root := t.TempDir()
	if err := os.CopyFS(root, os.DirFS("testdata/v2")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "pod/ctr/memory.swap.current"), []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := files(t, root, &fakeResolver{c: ctr("/pod/ctr")})
	b, err := f.Render(Meminfo, 7)
	if err != nil {
		t.Fatal(err)
	}
	if got := kB(t, string(b), "MemTotal"); got != 131072 {
		t.Errorf("MemTotal = %d kB, want the container's 131072: the swap usage file was read", got)
	}
}

func TestCFS(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/v2")); err != nil {
		t.Fatal(err)
	}
	ctrDir := filepath.Join(dir, "pod/ctr")
	os.WriteFile(filepath.Join(ctrDir, "cpuset.cpus.effective"), []byte("0-1\n"), 0o644)
	os.WriteFile(filepath.Join(ctrDir, "cpu.max"), []byte("50000 100000\n"), 0o644)
	f := files(t, dir, &fakeResolver{c: ctr("/pod/ctr")})
	b, _ := f.Render(Online, 7)
	if string(b) != "0-1\n" {
		t.Errorf("online without CFS = %q, want the cpuset 0-1", b)
	}
	f.CFS = true
	b, _ = f.Render(Online, 7)
	if string(b) != "0\n" {
		t.Errorf("online with CFS and a 0.5 CPU quota = %q, want \"0\\n\"", b)
	}
}

// The fallback, given when a render outlives the daemon's timeout, needs no
// cgroup: even with the container's cgroup files wedged (a FIFO nobody
// writes) it returns the host's file at once.
func TestFallback(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/v2")); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "pod/ctr/memory.current")
	os.Remove(fifo)
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	f := files(t, dir, &fakeResolver{c: ctr("/pod/ctr")})
	for _, name := range []string{Meminfo, Online, Stat} {
		b, err := f.Fallback(name)
		if err != nil || string(b) != host(t, name) {
			t.Errorf("Fallback(%s) = %q, %v; want the host's file", name, b, err)
		}
	}
}

// TestCPUDirAndVmstatTrees renders the CPU directory's files and vmstat for
// the v1 and v2 fixture trees of pkg/cgroup (cpuset 0-2,5, a half-CPU
// quota), on a host with CPUs 0-7 online: every file names the same CPUs,
// by host id, and only those cpuN entries are shown.
func TestCPUDirAndVmstatTrees(t *testing.T) {
	sys := t.TempDir()
	cpuDir := filepath.Join(sys, "devices/system/cpu")
	for name, content := range map[string]string{"online": "0-7\n", "possible": "0-15\n", "present": "0-7\n", "offline": "8-15\n"} {
		if err := os.MkdirAll(cpuDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cpuDir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	v1Paths := map[string]string{"": "/machine/ctr1"}
	for _, c := range []string{"memory", "cpu", "cpuacct", "cpuset"} {
		v1Paths[c] = "/machine/ctr1"
	}
	for _, tc := range []struct {
		name   string
		h      *cgroup.Hierarchy
		paths  map[string]string
		cfs    bool
		list   string
		hidden []string
		shown  []string
		vmstat string
	}{
		{
			name: "v1", h: &cgroup.Hierarchy{Root: "../cgroup/testdata/v1"}, paths: v1Paths,
			list: "0-2,5\n", hidden: []string{"cpu3", "cpu4", "cpu6", "cpu7"}, shown: []string{"cpu0", "cpu2", "cpu5", "cpufreq"},
			// total_rss 128 MiB, total_cache 100 MiB; v1 has no pswpin.
			vmstat: "nr_anon_pages 32768\nnr_file_pages 25600\npgpgin 735013\npswpin 5\npgfault 1334530\npgmajfault 728\n",
		},
		{
			name: "v1 CFS", h: &cgroup.Hierarchy{Root: "../cgroup/testdata/v1"}, paths: v1Paths, cfs: true,
			list: "0\n", hidden: []string{"cpu1", "cpu2", "cpu5"}, shown: []string{"cpu0"},
		},
		{
			name: "v2", h: &cgroup.Hierarchy{Root: "../cgroup/testdata/v2", V2: true}, paths: map[string]string{"": "/machine.slice/ctr1"},
			list: "0-2,5\n", hidden: []string{"cpu3", "cpu4"}, shown: []string{"cpu1", "cpu5", "vulnerabilities"},
			vmstat: "nr_anon_pages 25600\nnr_file_pages 38400\npgpgin 735013\npswpin 3\npgfault 38476\npgmajfault 12\n",
		},
		{
			name: "v2 CFS", h: &cgroup.Hierarchy{Root: "../cgroup/testdata/v2", V2: true}, paths: map[string]string{"": "/machine.slice/ctr1"}, cfs: true,
			list: "0\n", hidden: []string{"cpu1", "cpu5"}, shown: []string{"cpu0"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &caller.Container{NS: 1, InitPid: 4242, Cgroups: tc.paths}
			f := &Files{
				ProcDir: "testdata/host/proc", SysDir: sys, Cgroups: tc.h, CFS: tc.cfs,
				Callers: &fakeResolver{c: c}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				Now: func() time.Duration { return time.Hour }, ClockTck: 100,
			}
			render := func(name string) string {
				t.Helper()
				b, err := f.Render(name, 7)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				return string(b)
			}
			for _, name := range []string{Online, Possible, Present} {
				if got := render(name); got != tc.list {
					t.Errorf("%s = %q, want %q", name, got, tc.list)
				}
			}
			if got := render(Offline); got != "\n" {
				t.Errorf("offline = %q, want empty", got)
			}
			hidden := f.Hidden(CPUDir, 7)
			for _, name := range tc.hidden {
				if !hidden(name) {
					t.Errorf("%s shown, want hidden", name)
				}
			}
			for _, name := range tc.shown {
				if hidden(name) {
					t.Errorf("%s hidden, want shown", name)
				}
			}
			if tc.vmstat != "" {
				if got := render(Vmstat); got != tc.vmstat {
					t.Errorf("vmstat = %q, want %q", got, tc.vmstat)
				}
			}
		})
	}
}

// TestFallbackReasons: a reader whose container cannot be told, and a
// container gone by the time its file is read, count as unresolved
// fallbacks; garbage cgroup figures as view errors; a host reader as none.
func TestFallbackReasons(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    *fakeResolver
		who  func(f *Files) uint32
		want map[string]uint64
	}{
		{"unresolved at open", &fakeResolver{err: errors.New("process 99 exited")}, func(f *Files) uint32 { return f.Identify(7) }, map[string]uint64{"unresolved": 1}},
		{"gone at read", &fakeResolver{}, func(*Files) uint32 { return 5 }, map[string]uint64{"unresolved": 1}},
		{"garbage", &fakeResolver{c: ctr("/garbage")}, func(f *Files) uint32 { return f.Identify(7) }, map[string]uint64{"view_error": 1}},
		{"host", &fakeResolver{}, func(f *Files) uint32 { return f.Identify(7) }, map[string]uint64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := files(t, "testdata/v2", tc.r)
			st, err := stats.Create(stats.Path(t.TempDir()), []string{Meminfo})
			if err != nil {
				t.Fatal(err)
			}
			f.Stats = st
			if _, err := f.Render(Meminfo, tc.who(f)); err != nil {
				t.Fatal(err)
			}
			for _, fc := range st.Snapshot().Files {
				for reason, n := range fc.Fallbacks {
					if n != tc.want[reason] {
						t.Errorf("%s fallbacks %s = %d, want %d", fc.Name, reason, n, tc.want[reason])
					}
				}
			}
		})
	}
	if caller.Unresolved == 0 || caller.Unresolved <= caller.MaxID {
		t.Errorf("caller.Unresolved = %d: must be no container's ID and not the host's 0", caller.Unresolved)
	}
}
