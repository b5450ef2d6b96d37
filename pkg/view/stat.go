package view

import (
	"bytes"
	"slices"
	"strconv"
	"time"
)

// UserHZ is the tick rate /proc/stat reports in (USER_HZ, 100 on every Linux
// architecture the daemon runs on).
const UserHZ = 100

const tick = time.Second / UserHZ

// /proc/stat cpu fields, in order. The kernel has printed 10 since 2.6.33;
// older kernels print a prefix of them (4 on 2.4, 7 on 2.6.0, 8 on 2.6.11).
const (
	fUser = iota
	fNice
	fSystem
	fIdle
	fIowait
	fIrq
	fSoftirq
	fSteal
	fGuest
	fGuestNice
	numCPUFields
)

// minCPUFields is the fewest fields a cpu line can have (2.4 kernels).
const minCPUFields = 4

// elapsedFields is how many leading fields add up to a CPU's elapsed time:
// guest and guest_nice are already counted in user and nice, so adding them
// again (as a naive sum of all 10 would) overstates it.
const elapsedFields = fSteal + 1

type cpuLine struct {
	id     int
	nf     int // number of fields the host printed
	elapse uint64
	vals   [numCPUFields]uint64
}

// AppendStat appends to dst /proc/stat with one cpuN line per visible host
// CPU (ids in cpus), with its host id as cpuinfo and sysfs show it, and the
// aggregate "cpu" line as the sum of the lines shown. Each line keeps the host's number of
// fields (4 to 10). Other lines (intr, ctxt, btime, processes, procs_*,
// softirq) pass through unchanged.
//
// The container's user and system ticks come from u: per host CPU when
// u.PerCPU is set (cgroup v1), otherwise u.Total spread evenly over the shown
// CPUs with the remainder going to the first lines so the sums are exact
// (cgroup v2). Every other field is 0 except idle, which takes what is left of
// the host line's elapsed ticks, so each line's total still advances like the
// host's and tools computing percentages from deltas (top, mpstat) stay sane.
// A line's elapsed ticks are its user..steal fields: guest and guest_nice are
// already included in user and nice.
//
// Malformed host cpu lines are dropped, a missing aggregate line is supplied
// and a repeated cpuN line is shown once. Nil or empty cpus return the host
// file unchanged.
func AppendStat(dst, host []byte, cpus []int, u CPUUsage) []byte {
	if len(cpus) == 0 {
		return append(dst, host...)
	}
	cpus = sortedUniqueView(cpus)

	var stack [64]cpuLine
	shown := stack[:0]
	aggFields := 0
	maxID := -1
	var buf [numCPUFields + 2][]byte
	for rest := host; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		id, isCPU, agg := statCPUPrefix(line)
		if !isCPU {
			continue
		}
		cl, ok := parseCPULine(buf[:0], line)
		if !ok {
			continue
		}
		if agg {
			aggFields = cl.nf
			continue
		}
		if _, want := slices.BinarySearch(cpus, id); want && !hasCPU(shown, id, maxID) {
			cl.id = id
			shown = append(shown, cl)
			maxID = max(maxID, id)
		}
	}
	fillUsage(shown, u)

	var sum [numCPUFields]uint64
	maxFields := 0
	for i := range shown {
		maxFields = max(maxFields, shown[i].nf)
		for f := range shown[i].nf {
			sum[f] = satAdd(sum[f], shown[i].vals[f])
		}
	}
	if aggFields == 0 {
		aggFields = maxFields
	}

	out := slices.Grow(dst, len(host))
	wroteCPUs := false
	for rest := host; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		if _, isCPU, _ := statCPUPrefix(line); !isCPU {
			out = append(out, line...)
			continue
		}
		// All cpu lines are replaced by ours, written where the first was
		// (the host prints the aggregate first). A malformed host aggregate
		// is still replaced: top and friends need the "cpu" line.
		if wroteCPUs {
			continue
		}
		wroteCPUs = true
		if aggFields > 0 {
			out = append(out, "cpu "...)
			out = appendStatVals(out, sum[:aggFields])
		}
		for i := range shown {
			out = append(out, "cpu"...)
			out = strconv.AppendInt(out, int64(shown[i].id), 10)
			out = appendStatVals(out, shown[i].vals[:shown[i].nf])
		}
	}
	return out
}

// hasCPU guards against a corrupt host file listing a CPU twice, which would
// otherwise show the container more CPUs than it has.
func hasCPU(shown []cpuLine, id, maxID int) bool {
	if id > maxID {
		return false // the kernel lists CPUs in ascending order: O(1) then
	}
	for i := range shown {
		if shown[i].id == id {
			return true
		}
	}
	return false
}

// statCPUPrefix reports whether line is "cpu ..." (agg) or "cpuN ...".
func statCPUPrefix(line []byte) (id int, isCPU, agg bool) {
	if !bytes.HasPrefix(line, []byte("cpu")) || len(line) < 4 {
		return 0, false, false
	}
	if isBlank(line[3]) {
		return 0, true, true
	}
	end := skipDigits(line, 3)
	if end == 3 || end >= len(line) || !isBlank(line[end]) {
		return 0, false, false
	}
	v, ok := parseUint(line[3:end])
	if !ok || v >= MaxCPUs {
		return 0, false, false
	}
	return int(v), true, false
}

func parseCPULine(buf [][]byte, line []byte) (cpuLine, bool) {
	var cl cpuLine
	f := fields(buf, trimEOL(line))
	if len(f) < 1+minCPUFields || len(f) > 1+numCPUFields {
		return cl, false
	}
	cl.nf = len(f) - 1
	var host [numCPUFields]uint64
	for i, s := range f[1:] {
		v, ok := parseUint(s)
		if !ok {
			return cl, false
		}
		host[i] = v
	}
	for i := range min(cl.nf, elapsedFields) {
		cl.elapse = satAdd(cl.elapse, host[i])
	}
	return cl, true
}

// fillUsage sets each shown line's user, system and idle from the cgroup's
// CPU time; everything else stays 0.
func fillUsage(shown []cpuLine, u CPUUsage) {
	n := uint64(len(shown))
	if n == 0 {
		return
	}
	userTotal, sysTotal := toTicks(u.Total.User), toTicks(u.Total.System)
	for i := range shown {
		cl := &shown[i]
		var user, sys uint64
		if u.PerCPU != nil {
			t := u.PerCPU[cl.id]
			user, sys = toTicks(t.User), toTicks(t.System)
		} else {
			user, sys = userTotal/n, sysTotal/n
			if uint64(i) < userTotal%n {
				user++
			}
			if uint64(i) < sysTotal%n {
				sys++
			}
		}
		cl.vals[fUser] = user
		cl.vals[fSystem] = sys
		cl.vals[fIdle] = satSub(cl.elapse, satAdd(user, sys))
	}
}

func toTicks(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64(d / tick)
}

func appendStatVals(out []byte, vals []uint64) []byte {
	for _, v := range vals {
		out = append(out, ' ')
		out = strconv.AppendUint(out, v, 10)
	}
	return append(out, '\n')
}
