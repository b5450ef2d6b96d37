package cgroup

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/cgroups/fscommon"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// The parsers below take file contents and touch nothing else, so they can
// be fuzzed. Line-oriented ones skip malformed lines (a kernel adding a field
// or key must not blank a container's view) but fail when a file has content
// and not one line of it parses, which means we are reading the wrong thing.

var (
	errEmpty       = errors.New("empty file")
	errNoValidLine = errors.New("no parsable line")
)

// v1Unlimited is the threshold at or above which a v1 limit means "none":
// the kernel reports PAGE_COUNTER_MAX in bytes, 9223372036854771712 with 4 KiB
// pages and a little less with larger pages; no real limit comes near 2^62.
const v1Unlimited = 1 << 62

// parseUintValue parses a single-number cgroup file, "max" meaning no limit.
// Unlike fscommon.ParseUint it rejects negative numbers: those are tolerated
// for counters hit by kernel accounting bugs, but a negative limit is garbage.
func parseUintValue(s string) (uint64, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return 0, errEmpty
	case "max":
		return math.MaxUint64, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, err
	}
	return v, nil
}

// nsDuration converts a nanosecond counter, saturating instead of wrapping
// negative for counters beyond 292 years.
func nsDuration(ns uint64) time.Duration {
	if ns > math.MaxInt64 {
		return math.MaxInt64
	}
	return time.Duration(ns)
}

// usDuration converts a microsecond counter, saturating likewise.
func usDuration(us uint64) time.Duration {
	if us > math.MaxInt64/uint64(time.Microsecond) {
		return math.MaxInt64
	}
	return time.Duration(us) * time.Microsecond
}

// forEachLine calls fn for each non-blank line (trimmed) and reports whether
// there was any.
func forEachLine(s string, fn func(line string)) (nonBlank bool) {
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		nonBlank = true
		fn(line)
	}
	return nonBlank
}

// parseMemStat reads memory.stat. On v1 it takes the hierarchical total_*
// keys, which include the descendants' pages, as a container's view must.
func parseMemStat(s string, v2 bool) (view.MemStat, error) {
	var st view.MemStat
	var parsed, haveSlab bool
	nonBlank := forEachLine(s, func(line string) {
		key, v, err := fscommon.ParseKeyValue(line)
		if err != nil {
			return
		}
		parsed = true
		if !v2 {
			var ok bool
			if key, ok = strings.CutPrefix(key, "total_"); !ok {
				return
			}
		}
		switch key {
		case "active_anon":
			st.ActiveAnon = v
		case "inactive_anon":
			st.InactiveAnon = v
		case "active_file":
			st.ActiveFile = v
		case "inactive_file":
			st.InactiveFile = v
		case "unevictable":
			st.Unevictable = v
		case "shmem":
			st.Shmem = v
		}
		if v2 {
			switch key {
			case "file":
				st.Cache = v
			case "file_mapped":
				st.Mapped = v
			case "slab":
				st.Slab, haveSlab = v, true
			case "slab_reclaimable":
				st.SlabReclaimable = v
			case "slab_unreclaimable":
				st.SlabUnreclaimable = v
			}
		} else {
			switch key {
			case "cache":
				st.Cache = v
			case "mapped_file":
				st.Mapped = v
			}
		}
	})
	if !nonBlank {
		return view.MemStat{}, errEmpty
	}
	if !parsed {
		return view.MemStat{}, errNoValidLine
	}
	if v2 {
		st.HasSlab = true
		// Kernels before 5.9 have only the two halves.
		if !haveSlab {
			st.Slab = st.SlabReclaimable + st.SlabUnreclaimable
		}
	}
	return st, nil
}

// parseCPUMax reads v2 cpu.max ("max 100000", "50000 100000") into CPUs
// (quota/period); 0 means no quota.
func parseCPUMax(s string) (float64, error) {
	fields := strings.Fields(s)
	if len(fields) == 0 || len(fields) > 2 {
		return 0, fmt.Errorf("want \"QUOTA PERIOD\", got %q", strings.TrimSpace(s))
	}
	if fields[0] == "max" {
		return 0, nil
	}
	quota, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("quota: %w", err)
	}
	if len(fields) < 2 {
		return 0, fmt.Errorf("want \"QUOTA PERIOD\", got %q", strings.TrimSpace(s))
	}
	period, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("period: %w", err)
	}
	return quotaCPUs(quota, period)
}

func quotaCPUs(quota, period uint64) (float64, error) {
	if period == 0 {
		return 0, errors.New("period is 0")
	}
	if quota == 0 {
		// The kernel refuses a zero quota; treating it as "no CPU" would
		// hide every CPU, so read it as garbage.
		return 0, errors.New("quota is 0")
	}
	return float64(quota) / float64(period), nil
}

// parseUsageAll reads v1 cpuacct.usage_all: a "cpu user system" header, then
// "ID USER_NS SYSTEM_NS" per host CPU.
func parseUsageAll(s string) (map[int]view.CPUTime, error) {
	out := make(map[int]view.CPUTime)
	nonBlank := forEachLine(s, func(line string) {
		f := strings.Fields(line)
		if len(f) != 3 {
			return
		}
		id, err1 := strconv.ParseUint(f[0], 10, 31)
		user, err2 := strconv.ParseUint(f[1], 10, 64)
		sys, err3 := strconv.ParseUint(f[2], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil || id >= view.MaxCPUs {
			return // the header, or damage
		}
		out[int(id)] = view.CPUTime{User: nsDuration(user), System: nsDuration(sys)}
	})
	if !nonBlank {
		return nil, errEmpty
	}
	if len(out) == 0 {
		return nil, errNoValidLine
	}
	return out, nil
}

// parseUsagePercpu reads v1 cpuacct.usage_percpu: one nanosecond total per
// possible CPU, in id order, on one line. It has no user/system split, so the
// time counts as user.
func parseUsagePercpu(s string) (map[int]view.CPUTime, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil, errEmpty
	}
	if len(f) > view.MaxCPUs {
		return nil, fmt.Errorf("%d cpus, more than %d", len(f), view.MaxCPUs)
	}
	out := make(map[int]view.CPUTime, len(f))
	for i, field := range f {
		v, err := strconv.ParseUint(field, 10, 64)
		if err != nil {
			// One bad number shifts every later CPU's id, so no
			// partial answer.
			return nil, fmt.Errorf("cpu %d: %w", i, err)
		}
		out[i] = view.CPUTime{User: nsDuration(v)}
	}
	return out, nil
}

// sumCPU adds up per-CPU times.
func sumCPU(per map[int]view.CPUTime) view.CPUTime {
	var t view.CPUTime
	for _, c := range per {
		t.User = satAdd(t.User, c.User)
		t.System = satAdd(t.System, c.System)
	}
	return t
}

func satAdd(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// parseCPUStat reads v2 cpu.stat's usage figures (microseconds).
func parseCPUStat(s string) (usage, user, system time.Duration, err error) {
	var haveUsage, parsed bool
	nonBlank := forEachLine(s, func(line string) {
		key, v, err := fscommon.ParseKeyValue(line)
		if err != nil {
			return
		}
		parsed = true
		switch key {
		case "usage_usec":
			usage, haveUsage = usDuration(v), true
		case "user_usec":
			user = usDuration(v)
		case "system_usec":
			system = usDuration(v)
		}
	})
	switch {
	case !nonBlank:
		return 0, 0, 0, errEmpty
	case !parsed:
		return 0, 0, 0, errNoValidLine
	case !haveUsage:
		return 0, 0, 0, errors.New("no usage_usec")
	}
	return usage, user, system, nil
}

type devNum struct{ major, minor uint32 }

func parseDev(s string) (devNum, bool) {
	maj, mnr, ok := strings.Cut(s, ":")
	if !ok {
		return devNum{}, false
	}
	ma, err1 := strconv.ParseUint(maj, 10, 32)
	mi, err2 := strconv.ParseUint(mnr, 10, 32)
	if err1 != nil || err2 != nil {
		return devNum{}, false
	}
	return devNum{uint32(ma), uint32(mi)}, true
}

// sortIOStats orders devices by number so output is stable across reads.
func sortIOStats(s []view.IOStat) {
	slices.SortFunc(s, func(a, b view.IOStat) int {
		return cmp.Or(cmp.Compare(a.Major, b.Major), cmp.Compare(a.Minor, b.Minor))
	})
}

// parseIOStat reads v2 io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N wios=N
// dbytes=N dios=N" per device, possibly with more keys from io controllers
// (cost.*, latency), which are ignored. An empty file means no I/O yet.
func parseIOStat(s string) ([]view.IOStat, error) {
	var out []view.IOStat
	nonBlank := forEachLine(s, func(line string) {
		f := strings.Fields(line)
		dev, ok := parseDev(f[0])
		if !ok {
			return
		}
		st := view.IOStat{Major: dev.major, Minor: dev.minor}
		for _, kv := range f[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return
			}
			var dst *uint64
			switch k {
			case "rbytes":
				dst = &st.ReadBytes
			case "wbytes":
				dst = &st.WriteBytes
			case "rios":
				dst = &st.ReadIOs
			case "wios":
				dst = &st.WriteIOs
			case "dbytes":
				dst = &st.DiscardBytes
			case "dios":
				dst = &st.DiscardIOs
			default:
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return
			}
			*dst = n
		}
		out = append(out, st)
	})
	if nonBlank && len(out) == 0 {
		return nil, errNoValidLine
	}
	sortIOStats(out)
	return out, nil
}

// blkioCounts is one v1 blkio file's figures for a device.
type blkioCounts struct{ read, write, discard uint64 }

// parseBlkioFile reads a v1 blkio recursive stat file: "MAJ:MIN Read N",
// "... Write N", Sync, Async, Discard, "... Total N" per device and a final
// "Total N". An empty file, or just the "Total" line, means no I/O.
func parseBlkioFile(s string) (map[devNum]blkioCounts, error) {
	out := make(map[devNum]blkioCounts)
	var parsed bool
	nonBlank := forEachLine(s, func(line string) {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "Total" {
			if _, err := strconv.ParseUint(f[1], 10, 64); err == nil {
				parsed = true
			}
			return
		}
		if len(f) != 3 {
			return
		}
		dev, ok := parseDev(f[0])
		if !ok {
			return
		}
		v, err := fscommon.ParseUint(f[2], 10, 64)
		if err != nil {
			return
		}
		parsed = true
		c := out[dev]
		switch f[1] {
		case "Read":
			c.read = v
		case "Write":
			c.write = v
		case "Discard":
			c.discard = v
		}
		out[dev] = c
	})
	if nonBlank && !parsed {
		return nil, errNoValidLine
	}
	return out, nil
}

// mergeBlkio joins the bytes and ios files' figures per device.
func mergeBlkio(bytes, ios map[devNum]blkioCounts) []view.IOStat {
	devs := make(map[devNum]struct{}, len(bytes))
	for d := range bytes {
		devs[d] = struct{}{}
	}
	for d := range ios {
		devs[d] = struct{}{}
	}
	out := make([]view.IOStat, 0, len(devs))
	for d := range devs {
		b, n := bytes[d], ios[d]
		out = append(out, view.IOStat{
			Major: d.major, Minor: d.minor,
			ReadBytes: b.read, WriteBytes: b.write, DiscardBytes: b.discard,
			ReadIOs: n.read, WriteIOs: n.write, DiscardIOs: n.discard,
		})
	}
	sortIOStats(out)
	return out
}

// parseMemStatValues reads every "key value" line of memory.stat; on v1
// only the hierarchical total_* keys, named without the prefix.
func parseMemStatValues(s string, v2 bool) (map[string]uint64, error) {
	vals := make(map[string]uint64, 64)
	nonBlank := forEachLine(s, func(line string) {
		key, v, err := fscommon.ParseKeyValue(line)
		if err != nil {
			return
		}
		if !v2 {
			var ok bool
			if key, ok = strings.CutPrefix(key, "total_"); !ok {
				return
			}
		}
		vals[key] = v
	})
	if !nonBlank {
		return nil, errEmpty
	}
	if len(vals) == 0 {
		return nil, errNoValidLine
	}
	return vals, nil
}
