package view

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func addFixtures(f *testing.F, names ...string) {
	for _, n := range names {
		f.Add(fixture(f, n))
	}
}

// meminfoNumbers parses "Key: N" lines of fuzz output leniently, splitting
// on spaces and tabs only, as the kernel writes them and Meminfo reads them
// (other bytes, such as a form feed, make a line Meminfo passes through).
func meminfoNumbers(b []byte) map[string]uint64 {
	m := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if f := strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' }); len(f) > 0 {
			if n, err := strconv.ParseUint(f[0], 10, 64); err == nil {
				if _, dup := m[k]; !dup {
					m[k] = n
				}
			}
		}
	}
	return m
}

func FuzzMeminfo(f *testing.F) {
	addFixtures(f, "meminfo", "meminfo-swap")
	f.Add([]byte("MemTotal: 1 kB\nMemFree: 99999999999999999999999 kB\nSwapTotal: 18446744073709551615 kB\n"))
	f.Fuzz(func(t *testing.T, host []byte) {
		ms := []Memory{
			{Limit: math.MaxUint64, Usage: math.MaxUint64, Stat: MemStat{ActiveFile: math.MaxUint64, InactiveFile: math.MaxUint64, HasSlab: true, SlabReclaimable: math.MaxUint64}},
			{Limit: 512 * miB, Usage: 100 * miB, Stat: baseStat, SwapAccounting: true, SwapLimit: math.MaxUint64, SwapUsage: 5 * miB},
		}
		for _, m := range ms {
			out := AppendMeminfo(nil, host, m)
			_ = AppendSwaps(nil, host, host, m)
			if bytes.Count(out, []byte("\n")) != bytes.Count(host, []byte("\n")) {
				t.Fatalf("line count changed: %q -> %q", host, out)
			}
			// Only check invariants on lines Meminfo itself wrote; the
			// fuzzer may hand it duplicate or odd keys.
			if _, ok := meminfoValue(host, "MemTotal"); !ok {
				if !bytes.Equal(out, host) {
					t.Fatalf("no MemTotal but output changed")
				}
				continue
			}
			v := meminfoNumbers(out)
			total, hasTotal := v["MemTotal"]
			if free, ok := v["MemFree"]; ok && hasTotal && free > total {
				t.Fatalf("MemFree %d > MemTotal %d in %q", free, total, out)
			}
			if avail, ok := v["MemAvailable"]; ok && hasTotal && avail > total {
				t.Fatalf("MemAvailable %d > MemTotal %d", avail, total)
			}
			if sf, ok := v["SwapFree"]; ok {
				if st, ok := v["SwapTotal"]; ok && sf > st {
					t.Fatalf("SwapFree %d > SwapTotal %d", sf, st)
				}
			}
		}
	})
}

func FuzzStat(f *testing.F) {
	addFixtures(f, "stat", "stat-4cpu", "stat-7fields", "stat-4fields")
	f.Add([]byte("cpu0 18446744073709551615 18446744073709551615 18446744073709551615 18446744073709551615\n"))
	f.Fuzz(func(t *testing.T, host []byte) {
		for _, u := range []CPUUsage{
			{Total: CPUTime{User: time.Hour, System: 7 * time.Millisecond}},
			{PerCPU: map[int]CPUTime{0: {User: math.MaxInt64, System: math.MaxInt64}, 2: {User: time.Second}}},
		} {
			out := AppendStat(nil, host, []int{0, 2}, u)
			// Every cpu line we wrote is well formed; the aggregate is the
			// (saturating) sum of the per-CPU lines.
			var agg []uint64
			var per [][]uint64
			for _, line := range strings.Split(string(out), "\n") {
				if _, isCPU, isAgg := statCPUPrefix([]byte(line + "\n")); !isCPU {
					continue
				} else {
					fs := strings.Fields(line)
					vals := make([]uint64, 0, len(fs)-1)
					for _, s := range fs[1:] {
						n, err := strconv.ParseUint(s, 10, 64)
						if err != nil {
							t.Fatalf("bad cpu line %q", line)
						}
						vals = append(vals, n)
					}
					if isAgg {
						agg = vals
					} else {
						per = append(per, vals)
					}
				}
			}
			if len(per) > 2 {
				t.Fatalf("%d cpu lines for 2 cpus", len(per))
			}
			for i := range agg {
				var s uint64
				for _, p := range per {
					if i < len(p) {
						s = satAdd(s, p[i])
					}
				}
				if s != agg[i] {
					t.Fatalf("aggregate field %d = %d, sum %d\n%s", i, agg[i], s, out)
				}
			}
		}
	})
}

func FuzzCpuinfo(f *testing.F) {
	addFixtures(f, "cpuinfo", "cpuinfo-4cpu", "cpuinfo-arm", "cpuinfo-arm64-old")
	f.Fuzz(func(t *testing.T, host []byte) {
		out := AppendCpuinfo(nil, host, []int{1, 3})
		var ids []int
		for rest := out; len(rest) > 0; {
			var line []byte
			line, rest = nextLine(rest)
			if id, _, _, ok := processorLine(line); ok {
				ids = append(ids, id)
			}
		}
		// The host's ids, as sched_getaffinity and sysfs name them, in the
		// host file's order: only visible ones, none twice.
		seen := map[int]bool{}
		for _, id := range ids {
			if id != 1 && id != 3 || seen[id] {
				t.Fatalf("processor ids %v: want 1 and 3 at most once each", ids)
			}
			seen[id] = true
		}
		// Blocks are dropped, never added to.
		if len(out) > len(host) {
			t.Fatalf("output grew: %d > %d", len(out), len(host))
		}
	})
}

func FuzzParseCPUList(f *testing.F) {
	for _, s := range []string{"0-2,5", "0", "", "\n", "0-65535", "1,1,1", "5-3", "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := ParseCPUList(s)
		if err != nil {
			return
		}
		if len(ids) > MaxCPUs || !isSortedUnique(ids) {
			t.Fatalf("bad result for %q: %d ids, sorted=%v", s, len(ids), isSortedUnique(ids))
		}
		back, err := ParseCPUList(FormatCPUList(ids))
		if err != nil || !slices.Equal(back, ids) {
			t.Fatalf("round trip of %q failed: %v %v", s, back, err)
		}
	})
}

func FuzzDiskstats(f *testing.F) {
	addFixtures(f, "diskstats", "diskstats-14", "diskstats-18")
	f.Fuzz(func(t *testing.T, host []byte) {
		out := AppendDiskstats(nil, host, testIO)
		for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			if line == "" {
				continue
			}
			fs := fields(nil, []byte(line))
			if len(fs) < 4 || len(fs) > 20 {
				t.Fatalf("bad line %q", line)
			}
		}
	})
}

func FuzzVmstat(f *testing.F) {
	addFixtures(f, "vmstat")
	f.Add([]byte("pgfault 18446744073709551616\nnr_dirty\n \n\x00 1\n"))
	st := CgroupMemStat{V2: true, Values: map[string]uint64{"pgfault": 7, "anon": 1 << 62, "kernel_stack": 1}}
	f.Fuzz(func(t *testing.T, host []byte) {
		out := AppendVmstat(nil, host, st, 4096)
		// Each host line gives one line: no line is added or dropped.
		if got, want := bytes.Count(out, []byte("\n")), bytes.Count(host, []byte("\n")); got < want || got > want+1 {
			t.Fatalf("%d lines out of %d", got, want)
		}
	})
}
