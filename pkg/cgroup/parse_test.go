package cgroup

import (
	"errors"
	"math"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

func TestParseUintValue(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"536870912\n", 536870912, true},
		{"max\n", math.MaxUint64, true},
		{"9223372036854771712\n", 9223372036854771712, true},
		{"18446744073709551615", math.MaxUint64, true},
		{"18446744073709551616", 0, false},
		{"", 0, false},
		{"\n", 0, false},
		{"-1", 0, false},
		{"12 34", 0, false},
		{"0x10", 0, false},
	} {
		got, err := parseUintValue(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseUintValue(%q) = %d, %v; want %d (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseMemStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		v2   bool
		want view.MemStat
		err  error
	}{
		{
			name: "v1 takes only total_ keys",
			in:   "cache 1\nmapped_file 2\nshmem 3\ntotal_cache 10\ntotal_mapped_file 20\ntotal_shmem 30\ntotal_active_anon 40\ntotal_inactive_anon 50\ntotal_active_file 60\ntotal_inactive_file 70\ntotal_unevictable 80\n",
			want: view.MemStat{Cache: 10, Mapped: 20, Shmem: 30, ActiveAnon: 40, InactiveAnon: 50, ActiveFile: 60, InactiveFile: 70, Unevictable: 80},
		},
		{
			name: "v1 ignores v2 names and slab",
			in:   "total_file 5\ntotal_slab 6\ntotal_file_mapped 7\n",
			want: view.MemStat{},
		},
		{
			name: "v2 plain keys",
			in:   "anon 9\nfile 10\nfile_mapped 20\nshmem 30\nactive_anon 40\ninactive_anon 50\nactive_file 60\ninactive_file 70\nunevictable 80\nslab_reclaimable 5\nslab_unreclaimable 6\nslab 11\n",
			v2:   true,
			want: view.MemStat{Cache: 10, Mapped: 20, Shmem: 30, ActiveAnon: 40, InactiveAnon: 50, ActiveFile: 60, InactiveFile: 70, Unevictable: 80, HasSlab: true, Slab: 11, SlabReclaimable: 5, SlabUnreclaimable: 6},
		},
		{
			name: "v2 file_mapped is not file (no prefix matching)",
			in:   "file_mapped 20\nfile_dirty 3\nfile_writeback 4\nfile_thp 5\n",
			v2:   true,
			want: view.MemStat{Mapped: 20, HasSlab: true},
		},
		{
			name: "malformed lines skipped, negative counter reads 0",
			in:   "file 10\nbogus\nshmem x\n\nactive_anon -4096\nfile_mapped 1 2\n",
			v2:   true,
			want: view.MemStat{Cache: 10, HasSlab: true},
		},
		{name: "empty", in: "", err: errEmpty},
		{name: "blank lines", in: "\n \n", err: errEmpty},
		{name: "nothing parses", in: "a\nb c d\n", v2: true, err: errNoValidLine},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMemStat(tc.in, tc.v2)
			if !errors.Is(err, tc.err) || got != tc.want {
				t.Errorf("parseMemStat = %+v, %v; want %+v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestParseCPUMax(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"max 100000\n", 0, true},
		{"max\n", 0, true},
		{"50000 100000\n", 0.5, true},
		{"150000 100000\n", 1.5, true},
		{"100000 100000", 1, true},
		{"1000 1000000", 0.001, true},
		{"", 0, false},
		{"50000", 0, false},
		{"50000 0", 0, false},
		{"0 100000", 0, false},
		{"-1 100000", 0, false},
		{"50000 max", 0, false},
		{"1 2 3", 0, false},
	} {
		got, err := parseCPUMax(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseCPUMax(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseUsageAll(t *testing.T) {
	got, err := parseUsageAll("cpu user system\n0 100 200\n1 300 400\n\n3 5 6\nbad line\n4 x 1\n")
	want := map[int]view.CPUTime{0: {User: 100, System: 200}, 1: {User: 300, System: 400}, 3: {User: 5, System: 6}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseUsageAll = %v, %v; want %v", got, err, want)
	}
	if got := sumCPU(want); got != (view.CPUTime{User: 405, System: 606}) {
		t.Errorf("sumCPU = %+v", got)
	}
	for _, in := range []string{"", "cpu user system\n", "65536 1 1\n"} {
		if _, err := parseUsageAll(in); err == nil {
			t.Errorf("parseUsageAll(%q) succeeded", in)
		}
	}
	// Counters past 292 years saturate rather than go negative.
	got, err = parseUsageAll("0 18446744073709551615 1\n")
	if err != nil || got[0].User != math.MaxInt64 {
		t.Errorf("parseUsageAll(huge) = %v, %v", got, err)
	}
	if s := sumCPU(map[int]view.CPUTime{0: {User: math.MaxInt64}, 1: {User: 5}}); s.User != math.MaxInt64 {
		t.Errorf("sumCPU overflow = %v", s.User)
	}
}

func TestParseUsagePercpu(t *testing.T) {
	got, err := parseUsagePercpu("17366672624 26426440030 \n")
	want := map[int]view.CPUTime{0: {User: 17366672624}, 1: {User: 26426440030}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseUsagePercpu = %v, %v; want %v", got, err, want)
	}
	for _, in := range []string{"", " \n", "1 -2 3"} {
		if _, err := parseUsagePercpu(in); err == nil {
			t.Errorf("parseUsagePercpu(%q) succeeded", in)
		}
	}
}

func TestParseCPUStat(t *testing.T) {
	usage, user, sys, err := parseCPUStat("usage_usec 3\nuser_usec 2\nsystem_usec 1\nnr_periods 9\ncore_sched.force_idle_usec 0\n")
	if err != nil || usage != 3*time.Microsecond || user != 2*time.Microsecond || sys != time.Microsecond {
		t.Errorf("parseCPUStat = %v %v %v %v", usage, user, sys, err)
	}
	usage, _, _, err = parseCPUStat("usage_usec 18446744073709551615\n")
	if err != nil || usage != math.MaxInt64 {
		t.Errorf("parseCPUStat(huge) = %v, %v", usage, err)
	}
}

func TestParseIOStat(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []view.IOStat
		ok   bool
	}{
		{
			name: "kernel format, sorted by device",
			in:   "253:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n8:0 rbytes=1048576 wbytes=2097152 rios=256 wios=512 dbytes=65536 dios=4\n",
			want: []view.IOStat{
				{Major: 8, ReadBytes: 1048576, WriteBytes: 2097152, ReadIOs: 256, WriteIOs: 512, DiscardBytes: 65536, DiscardIOs: 4},
				{Major: 253, ReadBytes: 4096, WriteBytes: 8192, ReadIOs: 1, WriteIOs: 2},
			},
			ok: true,
		},
		{
			name: "iocost and iolatency keys ignored",
			in:   "8:16 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6 cost.vrate=100.00 cost.usage=1 use_delay=0 delay_nsec=0 depth=max avg_lat=0 win=0\n",
			want: []view.IOStat{{Major: 8, Minor: 16, ReadBytes: 1, WriteBytes: 2, ReadIOs: 3, WriteIOs: 4, DiscardBytes: 5, DiscardIOs: 6}},
			ok:   true,
		},
		{
			name: "pre-5.0 kernels without discard",
			in:   "259:0 rbytes=10 wbytes=20 rios=1 wios=2\n",
			want: []view.IOStat{{Major: 259, ReadBytes: 10, WriteBytes: 20, ReadIOs: 1, WriteIOs: 2}},
			ok:   true,
		},
		{
			name: "malformed lines skipped",
			in:   "sda rbytes=1\n8:x rbytes=1\n8:0 rbytes=abc\n8:0 rbytes\n9:1 rbytes=7\n",
			want: []view.IOStat{{Major: 9, Minor: 1, ReadBytes: 7}},
			ok:   true,
		},
		{name: "empty means no I/O", in: "", ok: true},
		{name: "device with no keys", in: "8:0\n", want: []view.IOStat{{Major: 8}}, ok: true},
		{name: "garbage", in: "hello world\n", ok: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseIOStat(tc.in)
			if (err == nil) != tc.ok || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseIOStat = %+v, %v; want %+v (ok %v)", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestParseBlkio(t *testing.T) {
	bytes, err := parseBlkioFile("8:0 Read 100\n8:0 Write 200\n8:0 Sync 300\n8:0 Async 0\n8:0 Discard 7\n8:0 Total 307\n8:16 Read 1\nTotal 308\n")
	if err != nil {
		t.Fatal(err)
	}
	ios, err := parseBlkioFile("8:0 Read 1\n8:0 Write 2\n8:0 Discard 3\n8:32 Write 9\nTotal 3\n")
	if err != nil {
		t.Fatal(err)
	}
	got := mergeBlkio(bytes, ios)
	want := []view.IOStat{
		{Major: 8, Minor: 0, ReadBytes: 100, WriteBytes: 200, DiscardBytes: 7, ReadIOs: 1, WriteIOs: 2, DiscardIOs: 3},
		{Major: 8, Minor: 16, ReadBytes: 1},
		{Major: 8, Minor: 32, WriteIOs: 9},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("mergeBlkio =\n%+v\nwant\n%+v", got, want)
	}
	for _, in := range []string{"", "Total 0\n"} {
		if m, err := parseBlkioFile(in); err != nil || len(m) != 0 {
			t.Errorf("parseBlkioFile(%q) = %v, %v; want empty", in, m, err)
		}
	}
	for _, in := range []string{"garbage\n", "Total x\n", "8:0 Read\n"} {
		if _, err := parseBlkioFile(in); err == nil {
			t.Errorf("parseBlkioFile(%q) succeeded", in)
		}
	}
}

func FuzzParseIOStat(f *testing.F) {
	for _, s := range []string{
		"8:0 rbytes=1048576 wbytes=2097152 rios=256 wios=512 dbytes=65536 dios=4\n253:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
		"8:16 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=5 dios=6 cost.vrate=100.00 use_delay=0\n",
		"", "8:0\n", "::: ==\n", "4294967295:4294967295 rbytes=18446744073709551615\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseIOStat(s)
		if err != nil {
			if got != nil {
				t.Errorf("error %v with result %v", err, got)
			}
			return
		}
		if !slices.IsSortedFunc(got, func(a, b view.IOStat) int {
			if a.Major != b.Major {
				return int(int64(a.Major) - int64(b.Major))
			}
			return int(int64(a.Minor) - int64(b.Minor))
		}) {
			t.Errorf("unsorted result %v", got)
		}
	})
}

func FuzzParseMemStat(f *testing.F) {
	for _, s := range []string{
		"cache 10911744\nrss 5001216\ntotal_cache 138772480\ntotal_mapped_file 11055104\ntotal_active_anon 1560576\n",
		"anon 40000000\nfile 900000000\nfile_mapped 30000000\nslab_reclaimable 1\nslab_unreclaimable 2\nslab 3\n",
		"", "\n\n", "a b c\n", "total_shmem -1\n", "slab_reclaimable 18446744073709551615\nslab_unreclaimable 18446744073709551615\n",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, s string, v2 bool) {
		// The raw reader behind /proc/vmstat takes the same files.
		if vals, err := parseMemStatValues(s, v2); (err == nil) == (len(vals) == 0) {
			t.Errorf("error %v with values %v", err, vals)
		}
		st, err := parseMemStat(s, v2)
		if err != nil {
			if st != (view.MemStat{}) {
				t.Errorf("error %v with result %+v", err, st)
			}
			return
		}
		if st.HasSlab != v2 {
			t.Errorf("HasSlab = %v for v2 = %v", st.HasSlab, v2)
		}
		if !v2 && (st.Slab != 0 || st.SlabReclaimable != 0 || st.SlabUnreclaimable != 0) {
			t.Errorf("v1 reported slab figures: %+v", st)
		}
	})
}

func FuzzParseUsageAll(f *testing.F) {
	for _, s := range []string{
		"cpu user system\n0 9832108661 6936068357\n1 14832599312 10696175348\n",
		"", "cpu user system\n", "0 1\n", "99999 1 1\n", "0 18446744073709551615 18446744073709551615\n1 18446744073709551615 1\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, parse := range []func(string) (map[int]view.CPUTime, error){parseUsageAll, parseUsagePercpu} {
			per, err := parse(s)
			if err != nil {
				continue
			}
			if len(per) == 0 {
				t.Errorf("no error and no CPUs for %q", s)
			}
			for id, c := range per {
				if id < 0 || id >= view.MaxCPUs || c.User < 0 || c.System < 0 {
					t.Errorf("bad entry %d: %+v", id, c)
				}
			}
			if tot := sumCPU(per); tot.User < 0 || tot.System < 0 {
				t.Errorf("negative total %+v", tot)
			}
		}
	})
}

func FuzzParseBlkio(f *testing.F) {
	for _, s := range [][2]string{
		{"8:0 Read 10485760\n8:0 Write 4194304\n8:0 Sync 8388608\n8:0 Async 6291456\n8:0 Discard 0\n8:0 Total 14680064\nTotal 14680064\n",
			"8:0 Read 2560\n8:0 Write 1024\n8:0 Total 3584\nTotal 3584\n"},
		{"Total 0\n", "Total 0\n"},
		{"", ""},
		{"8:0 Read -5\n", "x:y Write 1\n"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, bytesFile, iosFile string) {
		b, err1 := parseBlkioFile(bytesFile)
		n, err2 := parseBlkioFile(iosFile)
		if err1 != nil || err2 != nil {
			return
		}
		got := mergeBlkio(b, n)
		seen := make(map[devNum]bool, len(got))
		for _, s := range got {
			d := devNum{s.Major, s.Minor}
			if seen[d] {
				t.Errorf("device %v twice", d)
			}
			seen[d] = true
		}
		if len(got) != len(seen) || len(got) < max(len(b), len(n)) {
			t.Errorf("merge lost devices: %d from %d and %d", len(got), len(b), len(n))
		}
	})
}

func FuzzParseCPUMax(f *testing.F) {
	for _, s := range []string{"max 100000\n", "50000 100000\n", "150000 100000", "max", "", "0 0", "18446744073709551615 1", "1 18446744073709551615"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := parseCPUMax(s)
		if err != nil {
			return
		}
		if q < 0 || math.IsNaN(q) || math.IsInf(q, 0) {
			t.Errorf("parseCPUMax(%q) = %v", s, q)
		}
	})
}
