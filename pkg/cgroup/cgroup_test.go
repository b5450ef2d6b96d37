package cgroup

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/cgroups"

	"github.com/lxcfs-oci/lxcfs-oci/internal/fakeclock"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

func TestMain(m *testing.M) {
	// The fixture trees are plain files; without TestMode cgroups.ReadFile
	// refuses anything not on cgroupfs.
	cgroups.TestMode = true
	os.Exit(m.Run())
}

const (
	v1Root   = "testdata/v1"
	v2Root   = "testdata/v2"
	procRoot = "testdata/proc"
	unl      = math.MaxUint64
)

// v1Group is a v1 group with every controller at path, as /proc/PID/cgroup
// shows a container on a hybrid host.
func v1Group(t testing.TB, root, path string) *Group {
	t.Helper()
	h := &Hierarchy{Root: root, ProcRoot: procRoot}
	paths := map[string]string{"": path}
	for _, c := range []string{"memory", "cpu", "cpuacct", "cpuset", "blkio", "pids", "name=systemd"} {
		paths[c] = path
	}
	return h.ForPaths(paths)
}

func v2Group(t testing.TB, root, path string) *Group {
	t.Helper()
	h := &Hierarchy{Root: root, V2: true, ProcRoot: procRoot}
	return h.ForPaths(map[string]string{"": path})
}

// damagedGroup is ctr1's group over a copy of the v1 or v2 fixture tree in
// which file (relative to the tree) holds content, or is removed.
func damagedGroup(t *testing.T, v2 bool, file, content string, remove bool) *Group {
	t.Helper()
	src, group := v1Root, "/machine/ctr1"
	if v2 {
		src, group = v2Root, "/machine.slice/ctr1"
	}
	root := copyTree(t, src)
	path := filepath.Join(root, file)
	if remove {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	} else {
		writeFile(t, path, content)
	}
	if v2 {
		return v2Group(t, root, group)
	}
	return v1Group(t, root, group)
}

// copyTree copies a fixture tree so a test can damage it.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dst
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		root   string
		wantV2 bool
	}{
		{v1Root, false},
		{v2Root, true},
		{v2Root + "/", true},
	} {
		h, err := Detect(tc.root)
		if err != nil {
			t.Fatalf("Detect(%q): %v", tc.root, err)
		}
		if h.V2 != tc.wantV2 || h.Root != filepath.Clean(tc.root) {
			t.Errorf("Detect(%q) = %+v, want V2=%v", tc.root, h, tc.wantV2)
		}
	}

	// A directory named cgroup.controllers is no v2 marker.
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "cgroup.controllers"), 0o755); err != nil {
		t.Fatal(err)
	}
	if h, err := Detect(dir); err != nil || h.V2 {
		t.Errorf("Detect(dir with cgroup.controllers dir) = %+v, %v; want v1", h, err)
	}

	_, err := Detect(filepath.Join(t.TempDir(), "missing"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Detect(missing) error = %v, want ErrNotExist naming the path", err)
	}

	if h, err := Detect(""); err != nil || h.Root != DefaultRoot {
		t.Errorf("Detect(\"\") = %+v, %v; want root %s", h, err, DefaultRoot)
	}
}

func TestForPid(t *testing.T) {
	h1 := &Hierarchy{Root: v1Root, ProcRoot: procRoot}
	g, err := h1.ForPid(1234)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"memory":  "testdata/v1/memory/machine/ctr1",
		"cpu":     "testdata/v1/cpu/machine/ctr1",
		"cpuacct": "testdata/v1/cpuacct/machine/ctr1",
		"cpuset":  "testdata/v1/cpuset/machine/ctr1",
		"blkio":   "testdata/v1/blkio/machine/ctr1",
		"pids":    "testdata/v1/pids/machine/ctr1",
		"":        "testdata/v1/unified/machine/ctr1",
		"freezer": "",
	}
	for c, dir := range want {
		if got := g.Dir(c); got != dir {
			t.Errorf("v1 Dir(%q) = %q, want %q", c, got, dir)
		}
	}
	if g.V2() {
		t.Error("v1 group reports V2")
	}

	h2 := &Hierarchy{Root: v2Root, V2: true, ProcRoot: procRoot}
	g, err = h2.ForPid(4321)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"", "memory", "cpu", "cpuset", "blkio"} {
		if got, want := g.Dir(c), "testdata/v2/machine.slice/ctr1"; got != want {
			t.Errorf("v2 Dir(%q) = %q, want %q", c, got, want)
		}
	}

	for _, tc := range []struct {
		pid      int
		notExist bool
		inErr    string
	}{
		{pid: 99999, notExist: true, inErr: "testdata/proc/99999/cgroup"},
		{pid: 666, inErr: "testdata/proc/666/cgroup"},
		{pid: 0, inErr: "invalid pid"},
		{pid: -5, inErr: "invalid pid"},
	} {
		_, err := h2.ForPid(tc.pid)
		if err == nil || !strings.Contains(err.Error(), tc.inErr) || errors.Is(err, fs.ErrNotExist) != tc.notExist {
			t.Errorf("ForPid(%d) error = %v, want one containing %q (ErrNotExist %v)", tc.pid, err, tc.inErr, tc.notExist)
		}
	}
}

// TestUncleanRoot: a hand-written Root with a trailing slash must still stop
// the walk at the root (a v2 root has no memory.max, so a walk that escaped
// it would find nothing wrong but read outside the tree).
func TestUncleanRoot(t *testing.T) {
	g := (&Hierarchy{Root: v2Root + "/", V2: true}).ForPaths(map[string]string{"": "/machine.slice/ctr1"})
	var seen []string
	err := walkUp(g.unified, func(l level) (bool, error) {
		seen = append(seen, l.dir)
		return false, nil
	})
	want := []string{"testdata/v2/machine.slice/ctr1", "testdata/v2/machine.slice", "testdata/v2"}
	if err != nil || !reflect.DeepEqual(seen, want) {
		t.Errorf("walkUp visited %v, %v; want %v", seen, err, want)
	}
}

func TestForPathsTraversal(t *testing.T) {
	g := v2Group(t, v2Root, "/../../../etc")
	if got, want := g.Dir(""), "testdata/v2/etc"; got != want {
		t.Errorf("Dir = %q, want %q (kept under the root)", got, want)
	}
}

func TestMemory(t *testing.T) {
	v1Ctr1Stat := view.MemStat{
		ActiveAnon: 125829120, InactiveAnon: 8388608,
		ActiveFile: 62914560, InactiveFile: 41943040,
		Shmem: 4194304, Cache: 104857600, Mapped: 20971520,
	}
	v1CommonStat := view.MemStat{
		ActiveAnon: 1560576, InactiveAnon: 3780608,
		ActiveFile: 65048576, InactiveFile: 64638976, Unevictable: 12554240,
		Shmem: 9084928, Cache: 138772480, Mapped: 11055104,
	}
	for _, tc := range []struct {
		name string
		g    *Group
		want view.Memory
	}{
		{
			name: "v1 limit set on parent, memsw limit on parent",
			g:    v1Group(t, v1Root, "/machine/ctr1"),
			want: view.Memory{
				Limit: 1 << 30, Usage: 256 << 20, Stat: v1Ctr1Stat,
				SwapAccounting: true, SwapLimit: 1 << 30, SwapUsage: 32 << 20,
			},
		},
		{
			name: "v1 own limit smaller than parent, usage over limit",
			g:    v1Group(t, v1Root, "/machine/ctr-tight"),
			want: view.Memory{
				Limit: 100 << 20, Usage: 120 << 20, Stat: v1CommonStat,
				SwapAccounting: true, SwapLimit: 0, SwapUsage: 0,
			},
		},
		{
			name: "v1 without swap accounting",
			g:    v1Group(t, v1Root, "/machine/ctr-noswap"),
			want: view.Memory{Limit: 1 << 30, Usage: 50 << 20, Stat: v1CommonStat},
		},
		{
			name: "v1 swappiness 0 caps swap at what is used",
			g:    v1Group(t, v1Root, "/machine/ctr-swappiness0"),
			want: view.Memory{
				Limit: 1 << 30, Usage: 256 << 20, Stat: v1CommonStat,
				SwapAccounting: true, SwapLimit: 4 << 20, SwapUsage: 4 << 20,
			},
		},
		{
			name: "v1 unlimited everywhere",
			g:    v1Group(t, v1Root, "/free/ctr2"),
			want: view.Memory{
				Limit: unl, Usage: 1 << 20, Stat: v1CommonStat,
				SwapAccounting: true, SwapLimit: unl, SwapUsage: 64 << 10,
			},
		},
		{
			name: "v1 root group",
			g:    v1Group(t, v1Root, "/"),
			want: view.Memory{
				Limit: unl, Usage: 1474560000, Stat: v1CommonStat,
				SwapAccounting: true, SwapLimit: unl, SwapUsage: 0,
			},
		},
		{
			name: "v2 max locally, limits on parent",
			g:    v2Group(t, v2Root, "/machine.slice/ctr1"),
			want: view.Memory{
				Limit: 1 << 30, Usage: 256 << 20,
				Stat: view.MemStat{
					ActiveAnon: 96468992, InactiveAnon: 8388608,
					ActiveFile: 94371840, InactiveFile: 62914560, Unevictable: 4096,
					Shmem: 4194304, Cache: 157286400, Mapped: 20971520,
					HasSlab: true, Slab: 8388608, SlabReclaimable: 6291456, SlabUnreclaimable: 2097152,
				},
				SwapAccounting: true, SwapLimit: 512 << 20, SwapUsage: 16 << 20,
			},
		},
		{
			name: "v2 usage over own limit, no swap files",
			g:    v2Group(t, v2Root, "/machine.slice/ctr2"),
			want: view.Memory{
				Limit: 100 << 20, Usage: 120 << 20,
				Stat: view.MemStat{
					ActiveAnon: 100000000, ActiveFile: 15829120, InactiveFile: 10000000,
					Cache: 25829120, HasSlab: true,
				},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.g.Memory()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Memory() =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestMemoryV2Unlimited(t *testing.T) {
	root := copyTree(t, v2Root)
	writeFile(t, filepath.Join(root, "machine.slice/memory.max"), "max\n")
	writeFile(t, filepath.Join(root, "machine.slice/memory.swap.max"), "max\n")
	m, err := v2Group(t, root, "/machine.slice/ctr1").Memory()
	if err != nil {
		t.Fatal(err)
	}
	if m.Limit != unl || m.SwapLimit != unl || !m.SwapAccounting {
		t.Errorf("Limit %d SwapLimit %d SwapAccounting %v; want MaxUint64, MaxUint64, true", m.Limit, m.SwapLimit, m.SwapAccounting)
	}
}

// TestMemoryV2OldSlab covers kernels before 5.9, whose memory.stat has no
// "slab" key, only its two halves.
func TestMemoryV2OldSlab(t *testing.T) {
	st, err := parseMemStat("slab_reclaimable 100\nslab_unreclaimable 20\nfile 5\n", true)
	if err != nil {
		t.Fatal(err)
	}
	want := view.MemStat{HasSlab: true, Slab: 120, SlabReclaimable: 100, SlabUnreclaimable: 20, Cache: 5}
	if st != want {
		t.Errorf("got %+v, want %+v", st, want)
	}
}

func TestMemoryErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		v2       bool
		file     string // relative to the tree root; content replaces it
		content  string
		remove   bool
		inErr    string
		notExist bool
	}{
		{name: "v1 garbage limit on parent", file: "memory/machine/memory.limit_in_bytes", content: "lots\n", inErr: "memory/machine/memory.limit_in_bytes"},
		{name: "v1 negative limit", file: "memory/machine/ctr1/memory.limit_in_bytes", content: "-1\n", inErr: "memory.limit_in_bytes"},
		{name: "v1 empty usage", file: "memory/machine/ctr1/memory.usage_in_bytes", content: "", inErr: "memory.usage_in_bytes: empty"},
		{name: "v1 missing usage", file: "memory/machine/ctr1/memory.usage_in_bytes", remove: true, inErr: "memory.usage_in_bytes", notExist: true},
		{name: "v1 unparsable stat", file: "memory/machine/ctr1/memory.stat", content: "what\nis\nthis\n", inErr: "memory.stat: no parsable line"},
		{name: "v1 empty stat", file: "memory/machine/ctr1/memory.stat", content: "\n", inErr: "memory.stat: empty"},
		{name: "v1 garbage memsw", file: "memory/machine/memory.memsw.limit_in_bytes", content: "x", inErr: "memory.memsw.limit_in_bytes"},
		{name: "v1 garbage swappiness", file: "memory/machine/ctr1/memory.swappiness", content: "high", inErr: "memory.swappiness"},
		{name: "v2 garbage max", v2: true, file: "machine.slice/memory.max", content: "1G\n", inErr: "machine.slice/memory.max"},
		{name: "v2 garbage current", v2: true, file: "machine.slice/ctr1/memory.current", content: "\x00\xff", inErr: "memory.current"},
		{name: "v2 garbage swap.max", v2: true, file: "machine.slice/memory.swap.max", content: "none", inErr: "memory.swap.max"},
		{name: "v2 missing stat", v2: true, file: "machine.slice/ctr1/memory.stat", remove: true, inErr: "memory.stat", notExist: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := damagedGroup(t, tc.v2, tc.file, tc.content, tc.remove)
			_, err := g.Memory()
			if err == nil {
				t.Fatal("Memory() succeeded on a damaged tree")
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.inErr) {
				t.Errorf("error %q does not mention %q", err, tc.inErr)
			}
			if errors.Is(err, fs.ErrNotExist) != tc.notExist {
				t.Errorf("error %q: errors.Is(ErrNotExist) = %v, want %v", err, !tc.notExist, tc.notExist)
			}
		})
	}
}

// TestRemovedCgroup: a container that went away must not read as
// "unlimited" just because no level had the limit file.
func TestRemovedCgroup(t *testing.T) {
	h := &Hierarchy{Root: v2Root, V2: true, ProcRoot: procRoot}
	g, err := h.ForPid(777) // 0::/machine.slice/gone
	if err != nil {
		t.Fatal(err)
	}
	v1g := v1Group(t, v1Root, "/machine/gone")
	calls := map[string]func(g *Group) error{
		"Memory":    func(g *Group) error { _, err := g.Memory(); return err },
		"CPUSet":    func(g *Group) error { _, err := g.CPUSet(); return err },
		"QuotaCPUs": func(g *Group) error { _, err := g.QuotaCPUs(); return err },
		"CPUUsage":  func(g *Group) error { _, err := g.CPUUsage(); return err },
		"CPUTime":   func(g *Group) error { _, err := g.CPUTime(); return err },
		"IO":        func(g *Group) error { _, err := g.IO(); return err },
		"Pressure":  func(g *Group) error { _, err := g.Pressure("cpu"); return err },
		"Procs":     func(g *Group) error { _, err := g.Procs(); return err },
	}
	for name, call := range calls {
		for ver, g := range map[string]*Group{"v2": g, "v1": v1g} {
			err := call(g)
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "gone") {
				t.Errorf("%s %s() on a removed cgroup: error %v, want ErrNotExist naming the dir", ver, name, err)
			}
		}
	}
}

func TestNoController(t *testing.T) {
	h := &Hierarchy{Root: v1Root}
	g := h.ForPaths(map[string]string{"name=systemd": "/machine/ctr1"})
	if _, err := g.Memory(); !errors.Is(err, ErrNoController) || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Memory() without memory controller: %v, want ErrNoController", err)
	}
	if cpus, err := g.CPUSet(); cpus != nil || err != nil {
		t.Errorf("CPUSet() without cpuset controller = %v, %v; want nil, nil", cpus, err)
	}
	if q, err := g.QuotaCPUs(); q != 0 || err != nil {
		t.Errorf("QuotaCPUs() without cpu controller = %v, %v; want 0, nil", q, err)
	}
	for name, call := range map[string]func() error{
		"CPUUsage": func() error { _, err := g.CPUUsage(); return err },
		"CPUTime":  func() error { _, err := g.CPUTime(); return err },
		"IO":       func() error { _, err := g.IO(); return err },
		"Pressure": func() error { _, err := g.Pressure("io"); return err },
		"Procs":    func() error { _, err := g.Procs(); return err },
	} {
		if err := call(); !errors.Is(err, ErrNoController) {
			t.Errorf("%s() without controllers: %v, want ErrNoController", name, err)
		}
	}
	// A v2 map without the "" entry (e.g. a v1 map on a v2 host).
	g2 := (&Hierarchy{Root: v2Root, V2: true}).ForPaths(map[string]string{"memory": "/x"})
	if _, err := g2.Memory(); !errors.Is(err, ErrNoController) {
		t.Errorf("v2 Memory() without unified path: %v, want ErrNoController", err)
	}
}

func TestCPUSet(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *Group
		want []int
	}{
		{"v1 empty walks up to parent's range list", v1Group(t, v1Root, "/machine/ctr1"), []int{0, 1, 2, 5}},
		{"v1 own single cpu", v1Group(t, v1Root, "/machine/ctr-tight"), []int{3}},
		{"v1 root", v1Group(t, v1Root, "/"), []int{0, 1, 2, 3, 4, 5, 6, 7}},
		{"v2 own effective", v2Group(t, v2Root, "/machine.slice/ctr1"), []int{0, 1, 2, 5}},
		{"v2 no cpuset files walks up", v2Group(t, v2Root, "/machine.slice/ctr2"), []int{0, 1, 2, 3, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.g.CPUSet()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("CPUSet() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCPUSetEdges(t *testing.T) {
	// v1 effective_cpus empty but cpuset.cpus set at the same level.
	root := copyTree(t, v1Root)
	writeFile(t, filepath.Join(root, "cpuset/machine/ctr-tight/cpuset.effective_cpus"), "\n")
	writeFile(t, filepath.Join(root, "cpuset/machine/ctr-tight/cpuset.cpus"), "4-6\n")
	got, err := v1Group(t, root, "/machine/ctr-tight").CPUSet()
	if err != nil || !reflect.DeepEqual(got, []int{4, 5, 6}) {
		t.Errorf("CPUSet() = %v, %v; want [4 5 6]", got, err)
	}

	// Empty all the way up: no restriction known.
	for _, d := range []string{"cpuset", "cpuset/machine", "cpuset/machine/ctr1"} {
		writeFile(t, filepath.Join(root, d, "cpuset.effective_cpus"), "\n")
		writeFile(t, filepath.Join(root, d, "cpuset.cpus"), "")
	}
	got, err = v1Group(t, root, "/machine/ctr1").CPUSet()
	if err != nil || got != nil {
		t.Errorf("CPUSet() with every level empty = %v, %v; want nil, nil", got, err)
	}

	writeFile(t, filepath.Join(root, "cpuset/machine/ctr1/cpuset.effective_cpus"), "0-x\n")
	_, err = v1Group(t, root, "/machine/ctr1").CPUSet()
	if err == nil || !strings.Contains(err.Error(), "cpuset/machine/ctr1/cpuset.effective_cpus") {
		t.Errorf("CPUSet() on garbage = %v, want error naming the file", err)
	}
}

func TestQuotaCPUs(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *Group
		want float64
	}{
		{"v1 own 0.5 under parent 1.5", v1Group(t, v1Root, "/machine/ctr1"), 0.5},
		{"v1 none (-1) under parent 1.5", v1Group(t, v1Root, "/machine/ctr-tight"), 1.5},
		{"v1 own 4 under parent 1.5: parent wins", v1Group(t, v1Root, "/machine/ctr-noswap"), 1.5},
		{"v1 own 2.5, none above", v1Group(t, v1Root, "/free/ctr2"), 2.5},
		{"v1 root: none", v1Group(t, v1Root, "/"), 0},
		{"v2 own 0.5 under parent 1.5", v2Group(t, v2Root, "/machine.slice/ctr1"), 0.5},
		{"v2 no cpu.max: parent's 1.5", v2Group(t, v2Root, "/machine.slice/ctr2"), 1.5},
		{"v2 root: none", v2Group(t, v2Root, "/"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.g.QuotaCPUs()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("QuotaCPUs() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestQuotaCPUsEdges(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v2      bool
		file    string
		content string
		want    float64
		inErr   string
	}{
		{name: "v2 max with period", v2: true, file: "machine.slice/ctr1/cpu.max", content: "max 100000\n", want: 1.5},
		{name: "v2 bare max", v2: true, file: "machine.slice/ctr1/cpu.max", content: "max\n", want: 1.5},
		{name: "v2 own quota under unlimited parent", v2: true, file: "machine.slice/cpu.max", content: "max 100000\n", want: 0.5},
		{name: "v2 garbage", v2: true, file: "machine.slice/ctr1/cpu.max", content: "half\n", inErr: "machine.slice/ctr1/cpu.max"},
		{name: "v2 empty", v2: true, file: "machine.slice/ctr1/cpu.max", content: "", inErr: "cpu.max"},
		{name: "v2 zero period", v2: true, file: "machine.slice/ctr1/cpu.max", content: "50000 0\n", inErr: "period is 0"},
		{name: "v2 three fields", v2: true, file: "machine.slice/ctr1/cpu.max", content: "1 2 3\n", inErr: "cpu.max"},
		{name: "v1 garbage quota", file: "cpu/machine/cpu.cfs_quota_us", content: "lots\n", inErr: "cpu/machine/cpu.cfs_quota_us"},
		{name: "v1 garbage period", file: "cpu/machine/ctr1/cpu.cfs_period_us", content: "\n", inErr: "cpu/machine/ctr1/cpu.cfs_period_us"},
		{name: "v1 zero period", file: "cpu/machine/ctr1/cpu.cfs_period_us", content: "0\n", inErr: "period is 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, group := v1Root, "/machine/ctr1"
			if tc.v2 {
				src, group = v2Root, "/machine.slice/ctr1"
			}
			root := copyTree(t, src)
			writeFile(t, filepath.Join(root, tc.file), tc.content)
			g := v1Group(t, root, group)
			if tc.v2 {
				g = v2Group(t, root, group)
			}
			got, err := g.QuotaCPUs()
			if tc.inErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.inErr) {
					t.Errorf("QuotaCPUs() = %v, %v; want error containing %q", got, err, tc.inErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("QuotaCPUs() = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestCPUUsage(t *testing.T) {
	sec := time.Second
	for _, tc := range []struct {
		name     string
		g        *Group
		want     view.CPUUsage
		wantTime time.Duration
	}{
		{
			name: "v1 usage_all",
			g:    v1Group(t, v1Root, "/machine/ctr1"),
			want: view.CPUUsage{
				PerCPU: map[int]view.CPUTime{
					0: {User: 2 * sec, System: sec / 2},
					1: {User: 3 * sec, System: sec / 2},
				},
				Total: view.CPUTime{User: 5 * sec, System: sec},
			},
			wantTime: 6 * sec,
		},
		{
			name: "v1 usage_percpu fallback counts as user",
			g:    v1Group(t, v1Root, "/machine/ctr-percpu"),
			want: view.CPUUsage{
				PerCPU: map[int]view.CPUTime{0: {User: sec}, 1: {User: sec / 2}},
				Total:  view.CPUTime{User: 3 * sec / 2},
			},
			wantTime: 3 * sec / 2,
		},
		{
			name:     "v1 usage only",
			g:        v1Group(t, v1Root, "/machine/ctr-tight"),
			want:     view.CPUUsage{Total: view.CPUTime{User: 750 * time.Millisecond}},
			wantTime: 750 * time.Millisecond,
		},
		{
			name:     "v2 cpu.stat",
			g:        v2Group(t, v2Root, "/machine.slice/ctr1"),
			want:     view.CPUUsage{Total: view.CPUTime{User: 24684707 * time.Microsecond, System: 17672243 * time.Microsecond}},
			wantTime: 42356951 * time.Microsecond,
		},
		{
			name:     "v2 root cpu.stat",
			g:        v2Group(t, v2Root, "/"),
			want:     view.CPUUsage{Total: view.CPUTime{User: 6000 * sec, System: 3000 * sec}},
			wantTime: 9000 * sec,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.g.CPUUsage()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("CPUUsage() = %+v, want %+v", got, tc.want)
			}
			d, err := tc.g.CPUTime()
			if err != nil {
				t.Fatal(err)
			}
			if d != tc.wantTime {
				t.Errorf("CPUTime() = %v, want %v", d, tc.wantTime)
			}
		})
	}
}

func TestCPUUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, content, inErr string
		v2                         bool
		timeToo                    bool // CPUTime reads the same file
	}{
		{name: "v1 garbage usage_all", file: "cpuacct/machine/ctr1/cpuacct.usage_all", content: "cpu user system\nzero one two\n", inErr: "cpuacct.usage_all: no parsable line"},
		{name: "v1 garbage percpu", file: "cpuacct/machine/ctr-percpu/cpuacct.usage_percpu", content: "1 two 3\n", inErr: "cpuacct.usage_percpu: cpu 1"},
		{name: "v1 garbage usage", file: "cpuacct/machine/ctr-tight/cpuacct.usage", content: "soon\n", inErr: "cpuacct.usage", timeToo: true},
		{name: "v2 empty cpu.stat", v2: true, file: "machine.slice/ctr1/cpu.stat", content: "", inErr: "cpu.stat: empty", timeToo: true},
		{name: "v2 cpu.stat without usage", v2: true, file: "machine.slice/ctr1/cpu.stat", content: "user_usec 5\n", inErr: "no usage_usec", timeToo: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := v1Root
			if tc.v2 {
				src = v2Root
			}
			root := copyTree(t, src)
			writeFile(t, filepath.Join(root, tc.file), tc.content)
			group := filepath.Dir(strings.TrimPrefix(tc.file, "cpuacct"))
			g := v1Group(t, root, group)
			if tc.v2 {
				g = v2Group(t, root, group)
			}
			if _, err := g.CPUUsage(); err == nil || !strings.Contains(err.Error(), tc.inErr) {
				t.Errorf("CPUUsage() error %v, want one containing %q", err, tc.inErr)
			}
			if _, err := g.CPUTime(); tc.timeToo && (err == nil || !strings.Contains(err.Error(), tc.inErr)) {
				t.Errorf("CPUTime() error %v, want one containing %q", err, tc.inErr)
			}
		})
	}
}

// TestCoMountedCPU lays cpu and cpuacct out as systemd hosts do: one
// "cpu,cpuacct" hierarchy with two symlinks to it.
func TestCoMountedCPU(t *testing.T) {
	root := copyTree(t, v1Root)
	both := filepath.Join(root, "cpu,cpuacct")
	if err := os.Rename(filepath.Join(root, "cpu"), both); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(both, os.DirFS(filepath.Join(root, "cpuacct"))); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "cpuacct")); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"cpu", "cpuacct"} {
		if err := os.Symlink("cpu,cpuacct", filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	h := &Hierarchy{Root: root}
	// ParseCgroupFile splits "2:cpu,cpuacct:/machine/ctr1" into two keys.
	g := h.ForPaths(map[string]string{"cpu": "/machine/ctr1", "cpuacct": "/machine/ctr1"})
	if q, err := g.QuotaCPUs(); err != nil || q != 0.5 {
		t.Errorf("QuotaCPUs() = %v, %v; want 0.5", q, err)
	}
	if d, err := g.CPUTime(); err != nil || d != 6*time.Second {
		t.Errorf("CPUTime() = %v, %v; want 6s", d, err)
	}
	if pids, err := g.Procs(); err != nil || !reflect.DeepEqual(pids, []int{1234, 1240}) {
		t.Errorf("Procs() = %v, %v; want [1234 1240]", pids, err)
	}
}

func TestIO(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *Group
		want []view.IOStat
	}{
		{
			name: "v1 throttle files, two devices",
			g:    v1Group(t, v1Root, "/machine/ctr1"),
			want: []view.IOStat{
				{Major: 8, Minor: 0, ReadBytes: 1048576, WriteBytes: 2097152, ReadIOs: 256, WriteIOs: 512, DiscardBytes: 65536, DiscardIOs: 4},
				{Major: 253, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, ReadIOs: 1, WriteIOs: 2},
			},
		},
		{
			name: "v1 empty throttle files fall back to bfq",
			g:    v1Group(t, v1Root, "/machine/ctr-tight"),
			want: []view.IOStat{{Major: 8, Minor: 16, ReadBytes: 8192, ReadIOs: 2}},
		},
		{
			name: "v1 no I/O",
			g:    v1Group(t, v1Root, "/machine/ctr-noswap"),
			want: []view.IOStat{},
		},
		{
			name: "v2 io.stat",
			g:    v2Group(t, v2Root, "/machine.slice/ctr1"),
			want: []view.IOStat{
				{Major: 8, Minor: 0, ReadBytes: 1048576, WriteBytes: 2097152, ReadIOs: 256, WriteIOs: 512, DiscardBytes: 65536, DiscardIOs: 4},
				{Major: 253, Minor: 0, ReadBytes: 4096, WriteBytes: 8192, ReadIOs: 1, WriteIOs: 2},
			},
		},
		{
			name: "v2 empty io.stat",
			g:    v2Group(t, v2Root, "/machine.slice/ctr2"),
			want: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.g.IO()
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
				t.Errorf("IO() =\n%+v\nwant\n%+v", got, tc.want)
			}
		})
	}
}

func TestIOErrors(t *testing.T) {
	root := copyTree(t, v1Root)
	writeFile(t, filepath.Join(root, "blkio/machine/ctr1/blkio.throttle.io_serviced_recursive"), "garbage\n")
	_, err := v1Group(t, root, "/machine/ctr1").IO()
	if err == nil || !strings.Contains(err.Error(), "blkio/machine/ctr1/blkio.throttle.io_serviced_recursive") {
		t.Errorf("IO() on garbage blkio = %v, want error naming the file", err)
	}

	// No stat file at all (a blkio dir without the recursive files).
	if err := os.MkdirAll(filepath.Join(root, "blkio/bare"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = v1Group(t, root, "/bare").IO()
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "blkio.throttle.io_service_bytes_recursive") {
		t.Errorf("IO() without blkio files = %v, want ErrNotExist naming the throttle file", err)
	}

	root2 := copyTree(t, v2Root)
	writeFile(t, filepath.Join(root2, "machine.slice/ctr1/io.stat"), "sda all of it\n")
	_, err = v2Group(t, root2, "/machine.slice/ctr1").IO()
	if err == nil || !strings.Contains(err.Error(), "machine.slice/ctr1/io.stat: no parsable line") {
		t.Errorf("IO() on garbage io.stat = %v, want error naming the file", err)
	}
}

func TestPressure(t *testing.T) {
	const ctr1CPU = "some avg10=2.50 avg60=1.22 avg300=1.17 total=6108174\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
	for _, tc := range []struct {
		name, resource string
		g              *Group
		want           string // "" means absent
	}{
		{"v2 cpu", "cpu", v2Group(t, v2Root, "/machine.slice/ctr1"), ctr1CPU},
		{"v2 io", "io", v2Group(t, v2Root, "/machine.slice/ctr1"), "some avg10=0.10 avg60=1.22 avg300=1.17 total=6108174\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"},
		{"v2 memory absent", "memory", v2Group(t, v2Root, "/machine.slice/ctr2"), ""},
		{"hybrid cpu from unified", "cpu", v1Group(t, v1Root, "/machine/ctr1"), ctr1CPU},
		{"hybrid io absent", "io", v1Group(t, v1Root, "/machine/ctr1"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.g.Pressure(tc.resource)
			if tc.want == "" {
				if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), tc.resource+".pressure") {
					t.Errorf("Pressure(%q) = %q, %v; want ErrNotExist naming the file", tc.resource, got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("Pressure(%q) = %q, %v; want %q", tc.resource, got, err, tc.want)
			}
		})
	}
	g := v2Group(t, v2Root, "/machine.slice/ctr1")
	for _, bad := range []string{"", "irq", "../cpu", "cpu.pressure"} {
		if _, err := g.Pressure(bad); err == nil || errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Pressure(%q) = %v, want an unknown-resource error", bad, err)
		}
	}
	// A pure v1 host (no unified mount) has no "" entry.
	pure := (&Hierarchy{Root: v1Root}).ForPaths(map[string]string{"cpu": "/"})
	if _, err := pure.Pressure("cpu"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Pressure on pure v1 = %v, want ErrNotExist", err)
	}
}

func TestProcs(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    *Group
		want []int
	}{
		{"v1 from cpu", v1Group(t, v1Root, "/machine/ctr1"), []int{1234, 1240}},
		{"v1 from pids when no cpu", (&Hierarchy{Root: v1Root}).ForPaths(map[string]string{"pids": "/machine/ctr1"}), []int{1234, 1240}},
		{"v1 from memory when no cpu or pids", (&Hierarchy{Root: v1Root}).ForPaths(map[string]string{"memory": "/machine/ctr1"}), []int{1234, 1240}},
		{"v1 empty group", v1Group(t, v1Root, "/machine/ctr-tight"), nil},
		{"v2", v2Group(t, v2Root, "/machine.slice/ctr1"), []int{4321, 4330, 4331}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.g.Procs()
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Procs() = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	root := copyTree(t, v2Root)
	writeFile(t, filepath.Join(root, "machine.slice/ctr1/cgroup.procs"), "12\nabc\n")
	if _, err := v2Group(t, root, "/machine.slice/ctr1").Procs(); err == nil || !strings.Contains(err.Error(), "machine.slice/ctr1/cgroup.procs") {
		t.Errorf("Procs() on garbage = %v, want error naming the file", err)
	}
}

// TestLive reads this host's own cgroup. It needs root (cgroup files of
// other services may be unreadable otherwise) and a v1/hybrid or v2 mount.
func TestLive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("live cgroup test needs root")
	}
	h, err := Detect(DefaultRoot)
	if err != nil {
		t.Skipf("no cgroup file system at %s: %v", DefaultRoot, err)
	}
	if !h.V2 {
		if _, err := os.Stat(filepath.Join(DefaultRoot, "memory")); err != nil {
			t.Skipf("v1 host without a memory hierarchy: %v", err)
		}
	}
	g, err := h.ForPid(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.Memory()
	if errors.Is(err, fs.ErrNotExist) {
		// e.g. a v2 root cgroup, or a cgroup namespace hiding the path.
		t.Skipf("own memory cgroup not readable here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if m.Usage == 0 || m.Limit == 0 {
		t.Errorf("live Memory() = %+v, want Usage > 0 and Limit > 0", m)
	}
	t.Logf("live (v2=%v) memory dir %s: %+v", h.V2, g.Dir("memory"), m)
	online, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Fatal(err)
	}
	hostCPUs, err := view.ParseCPUList(string(online))
	if err != nil {
		t.Fatal(err)
	}
	isHostCPU := make(map[int]bool)
	for _, c := range hostCPUs {
		isHostCPU[c] = true
	}
	if cpus, err := g.CPUSet(); err != nil {
		t.Errorf("live CPUSet(): %v", err)
	} else if len(cpus) == 0 {
		t.Errorf("live CPUSet() is empty: this test process runs on some CPU")
	} else {
		for _, c := range cpus {
			if !isHostCPU[c] {
				t.Errorf("live CPUSet() = %v has CPU %d, not online on the host (%v)", cpus, c, hostCPUs)
			}
		}
	}
	if q, err := g.QuotaCPUs(); err != nil {
		t.Errorf("live QuotaCPUs(): %v", err)
	} else if q < 0 || math.IsNaN(q) || math.IsInf(q, 0) {
		t.Errorf("live QuotaCPUs() = %v, want 0 (none) or a positive number of CPUs", q)
	}
	// This process has run Go code by now, so its cgroup has used CPU time.
	if u, err := g.CPUUsage(); err != nil {
		t.Errorf("live CPUUsage(): %v", err)
	} else if u.Total.Total() == 0 {
		t.Errorf("live CPUUsage() = %+v: no CPU time used by the test's own cgroup", u)
	}
	if _, err := g.IO(); err != nil {
		t.Errorf("live IO(): %v", err)
	}
	if _, err := g.Pressure("cpu"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("live Pressure(cpu): %v", err)
	}
}

func BenchmarkMemory(b *testing.B) {
	for _, bc := range []struct {
		name string
		g    *Group
	}{
		{"v1", v1Group(b, v1Root, "/machine/ctr1")},
		{"v2", v2Group(b, v2Root, "/machine.slice/ctr1")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.g.Memory(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLimitCache: a group made WithLimitCache reuses its limits for the TTL
// and then sees a changed limit, while usage is read on every call and a
// removed cgroup still fails at once. The clock is moved by hand, so every
// assertion holds however slow the machine.
func TestLimitCache(t *testing.T) {
	root := copyTree(t, v1Root)
	const ttl = 100 * time.Millisecond
	clock := fakeclock.New()
	h := &Hierarchy{Root: root, ProcRoot: procRoot, Clock: clock.Now}
	paths := map[string]string{"": "/machine/ctr1"}
	for _, c := range []string{"memory", "cpu", "cpuacct", "cpuset", "blkio", "pids", "name=systemd"} {
		paths[c] = "/machine/ctr1"
	}
	g := h.ForPaths(paths).WithLimitCache(ttl)
	before, err := g.Memory()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "memory/machine/ctr1")
	writeFile(t, filepath.Join(dir, "memory.limit_in_bytes"), "1048576\n")
	writeFile(t, filepath.Join(dir, "memory.usage_in_bytes"), "4096\n")
	clock.Add(ttl - time.Nanosecond)
	m, err := g.Memory()
	if err != nil {
		t.Fatal(err)
	}
	if m.Usage != 4096 {
		t.Errorf("usage = %d right after it changed, want 4096: counters must not be cached", m.Usage)
	}
	if m.Limit != before.Limit {
		t.Errorf("limit = %d within the TTL, want the cached %d", m.Limit, before.Limit)
	}
	clock.Add(time.Nanosecond)
	if m, err = g.Memory(); err != nil {
		t.Fatal(err)
	}
	if m.Limit != 1048576 {
		t.Errorf("limit = %d one TTL after it changed to 1 MiB, want 1048576", m.Limit)
	}

	// The cpuset is a limit too.
	cpus, err := g.CPUSet()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "cpuset/machine/ctr1/cpuset.effective_cpus"), "3\n")
	if got, err := g.CPUSet(); err != nil || !reflect.DeepEqual(got, cpus) {
		t.Errorf("cpuset within the TTL: %v, %v; want the cached %v", got, err, cpus)
	}
	clock.Add(ttl)
	if got, err := g.CPUSet(); err != nil || !reflect.DeepEqual(got, []int{3}) {
		t.Errorf("cpuset one TTL after it changed from %v to 3: %v, %v", cpus, got, err)
	}

	// Removal shows through the counters at once, cached limits or not.
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Memory(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Memory() of a removed cgroup with cached limits = %v, want ErrNotExist", err)
	}
}

// TestStatMaxAge: a group made WithStatMaxAge reuses memory.stat within the
// max age and reads it again after, on both versions, while usage is read on
// every call and a removed cgroup still fails at once.
func TestStatMaxAge(t *testing.T) {
	for _, tc := range []struct {
		name, root, path, dir, usage string
		v2                           bool
	}{
		{"v1", v1Root, "/machine/ctr1", "memory/machine/ctr1", "memory.usage_in_bytes", false},
		{"v2", v2Root, "/machine.slice/ctr1", "machine.slice/ctr1", "memory.current", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := copyTree(t, tc.root)
			group := func() *Group {
				if tc.v2 {
					return v2Group(t, root, tc.path)
				}
				return v1Group(t, root, tc.path)
			}
			cacheKey := "total_cache"
			if tc.v2 {
				cacheKey = "file"
			}
			dir := filepath.Join(root, tc.dir)
			memory := func(g *Group) view.Memory {
				t.Helper()
				m, err := g.Memory()
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			reused, expired, plain := group().WithStatMaxAge(time.Hour), group().WithStatMaxAge(time.Nanosecond), group()
			before := memory(reused).Stat.Cache
			memory(expired)
			writeFile(t, filepath.Join(dir, "memory.stat"), cacheKey+" 4096\n")
			writeFile(t, filepath.Join(dir, tc.usage), "8192\n")

			m := memory(reused)
			if m.Stat.Cache != before {
				t.Errorf("within the max age: cache %d, want the reused %d", m.Stat.Cache, before)
			}
			if m.Usage != 8192 {
				t.Errorf("within the max age: usage %d, want 8192: usage must be read on every call", m.Usage)
			}
			if got := memory(expired).Stat.Cache; got != 4096 {
				t.Errorf("past the max age: cache %d, want the new 4096", got)
			}
			if got := memory(plain).Stat.Cache; got != 4096 {
				t.Errorf("without a max age: cache %d, want 4096", got)
			}
			if same := group().WithStatMaxAge(0); same.stats != nil {
				t.Error("WithStatMaxAge(0) keeps a cache")
			}

			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
			if _, err := reused.Memory(); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Memory() of a removed cgroup with a reused memory.stat = %v, want ErrNotExist", err)
			}
		})
	}
}

// TestMemoryWithoutSwap: the figures without swap skip the swap usage file
// (garbage there fails Memory, not MemoryWithoutSwap) and report no swap
// accounting, with every other figure the same.
func TestMemoryWithoutSwap(t *testing.T) {
	for _, tc := range []struct {
		name, root, path, swapUsage string
		v2                          bool
	}{
		{"v1", v1Root, "/machine/ctr1", "memory/machine/ctr1/memory.memsw.usage_in_bytes", false},
		{"v2", v2Root, "/machine.slice/ctr1", "machine.slice/ctr1/memory.swap.current", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := copyTree(t, tc.root)
			g := v1Group(t, root, tc.path)
			if tc.v2 {
				g = v2Group(t, root, tc.path)
			}
			full, err := g.Memory()
			if err != nil {
				t.Fatal(err)
			}
			if !full.SwapAccounting {
				t.Fatal("fixture has no swap accounting; the test needs it")
			}
			writeFile(t, filepath.Join(root, tc.swapUsage), "garbage\n")
			if _, err := g.Memory(); err == nil {
				t.Fatal("Memory() read garbage swap usage without an error")
			}
			m, err := g.MemoryWithoutSwap()
			if err != nil {
				t.Fatalf("MemoryWithoutSwap() read the swap usage file: %v", err)
			}
			want := full
			want.SwapAccounting, want.SwapLimit, want.SwapUsage = false, 0, 0
			if !reflect.DeepEqual(m, want) {
				t.Errorf("MemoryWithoutSwap() = %+v, want Memory() without swap: %+v", m, want)
			}
		})
	}
}

// TestAncestorLimitsShared: groups with limit caches share one read of
// their parents' limit files per TTL, so a parent's changed limit shows to
// every group within the TTL (plus the group's own), and a group without a
// cache sees it at once.
func TestAncestorLimitsShared(t *testing.T) {
	root := copyTree(t, v2Root)
	clock := fakeclock.New()
	h := &Hierarchy{Root: root, V2: true, ProcRoot: procRoot, Clock: clock.Now}
	const ttl = 200 * time.Millisecond
	ctr1 := map[string]string{"": "/machine.slice/ctr1"}
	limit := func(g *Group) uint64 {
		t.Helper()
		m, err := g.Memory()
		if err != nil {
			t.Fatal(err)
		}
		return m.Limit
	}
	if got := limit(h.ForPaths(ctr1).WithLimitCache(ttl)); got != 1<<30 {
		t.Fatalf("limit %d, want the parent's 1 GiB", got)
	}
	writeFile(t, filepath.Join(root, "machine.slice/memory.max"), "536870912\n")
	clock.Add(ttl - time.Nanosecond)
	if fresh := limit(h.ForPaths(ctr1).WithLimitCache(ttl)); fresh != 1<<30 {
		t.Errorf("a new group read the parent's limit again within the TTL (%d): the ancestors' files are not shared", fresh)
	}
	if got := limit(h.ForPaths(ctr1)); got != 512<<20 {
		t.Errorf("group without a limit cache: limit %d, want the parent's new 512 MiB", got)
	}
	clock.Add(time.Nanosecond)
	if got := limit(h.ForPaths(ctr1).WithLimitCache(ttl)); got != 512<<20 {
		t.Errorf("one TTL after the parent's limit changed: %d, want 512 MiB", got)
	}
}

func BenchmarkMemoryCached(b *testing.B) {
	for _, bc := range []struct {
		name string
		g    *Group
	}{
		{"v1", v1Group(b, v1Root, "/machine/ctr1").WithLimitCache(time.Hour)},
		{"v2", v2Group(b, v2Root, "/machine.slice/ctr1").WithLimitCache(time.Hour)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.g.Memory(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
