package view

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// MaxCPUs bounds the CPU ids ParseCPUList accepts. The kernel's NR_CPUS tops
// out at 8192 today; the cap exists so that a hostile or corrupt list such as
// "0-4294967295" cannot make us allocate gigabytes.
const MaxCPUs = 65536

var errCPURange = errors.New("cpu id out of range")

// ParseCPUList parses the kernel's cpu list format ("0-2,5", "0", "" for
// none), as found in cpuset.cpus and /sys/devices/system/cpu/online. Surrounding
// white space (the files end in a newline) is ignored. The result is sorted and
// free of duplicates; an empty list gives nil.
func ParseCPUList(s string) ([]int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	type span struct{ lo, hi int }
	// Collect ranges first and expand after merging, so overlapping ranges
	// such as "0-65535,0-65535" cost no more than one.
	spans := make([]span, 0, strings.Count(s, ",")+1)
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("parse cpu list %q: empty item", s)
		}
		loStr, hiStr, isRange := strings.Cut(item, "-")
		lo, err := parseCPUID(loStr)
		if err != nil {
			return nil, fmt.Errorf("parse cpu list %q: item %q: %w", s, item, err)
		}
		hi := lo
		if isRange {
			if hi, err = parseCPUID(hiStr); err != nil {
				return nil, fmt.Errorf("parse cpu list %q: item %q: %w", s, item, err)
			}
			if hi < lo {
				return nil, fmt.Errorf("parse cpu list %q: item %q: range end before start", s, item)
			}
		}
		spans = append(spans, span{lo, hi})
	}
	slices.SortFunc(spans, func(a, b span) int { return a.lo - b.lo })
	merged := spans[:1]
	for _, sp := range spans[1:] {
		last := &merged[len(merged)-1]
		if sp.lo <= last.hi+1 {
			last.hi = max(last.hi, sp.hi)
			continue
		}
		merged = append(merged, sp)
	}
	n := 0
	for _, sp := range merged {
		n += sp.hi - sp.lo + 1
	}
	out := make([]int, 0, n)
	for _, sp := range merged {
		for id := sp.lo; id <= sp.hi; id++ {
			out = append(out, id)
		}
	}
	return out, nil
}

func parseCPUID(s string) (int, error) {
	if s == "" {
		return 0, errors.New("missing cpu id")
	}
	// ParseUint rejects signs, so "-1" or "+1" cannot sneak in.
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("cpu id %q: %w", s, err)
	}
	if v >= MaxCPUs {
		return 0, fmt.Errorf("cpu id %d: %w (max %d)", v, errCPURange, MaxCPUs-1)
	}
	return int(v), nil
}

// FormatCPUList renders ids in the kernel's compact cpu list format
// ("0-2,5"). Unsorted or duplicated input is tolerated; negative ids are
// dropped. An empty list gives "".
func FormatCPUList(cpus []int) string {
	return string(appendCPUList(nil, cpus))
}

func appendCPUList(dst []byte, cpus []int) []byte {
	if !isSortedUnique(cpus) {
		cpus = sortedUnique(cpus)
	}
	for len(cpus) > 0 && cpus[0] < 0 {
		cpus = cpus[1:]
	}
	first := true
	for i := 0; i < len(cpus); {
		lo := cpus[i]
		j := i
		for j+1 < len(cpus) && cpus[j+1] == cpus[j]+1 {
			j++
		}
		i = j + 1
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = strconv.AppendInt(dst, int64(lo), 10)
		if hi := cpus[j]; hi != lo {
			dst = append(dst, '-')
			dst = strconv.AppendInt(dst, int64(hi), 10)
		}
	}
	return dst
}

func isSortedUnique(s []int) bool {
	for i := 1; i < len(s); i++ {
		if s[i] <= s[i-1] {
			return false
		}
	}
	return true
}

func sortedUnique(s []int) []int {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// VisibleCPUs decides which host CPUs a container sees.
//
// cpuset is the container's effective cpuset (nil or empty: no restriction,
// the host's CPUs). Ids the host does not list in hostCPUs (offline or absent
// CPUs) are dropped; an empty hostCPUs means the caller could not learn the
// host's list and skips that filter. With cfs set and a quota (quotaCPUs > 0,
// in CPUs, i.e. quota/period) the container sees only ceil(quotaCPUs) of them,
// at least one, the lowest ids first, which is LXCFS's --enable-cfs view.
// The result is sorted, deduplicated and never aliases the arguments.
func VisibleCPUs(cpuset []int, quotaCPUs float64, hostCPUs []int, cfs bool) []int {
	var set []int
	if len(cpuset) == 0 {
		set = sortedUnique(hostCPUs)
	} else {
		set = sortedUnique(cpuset)
		if len(hostCPUs) > 0 {
			host := sortedUnique(hostCPUs)
			set = slices.DeleteFunc(set, func(id int) bool {
				_, found := slices.BinarySearch(host, id)
				return !found
			})
		}
	}
	// NaN fails both comparisons below and so means "no quota" too.
	if cfs && quotaCPUs > 0 && quotaCPUs < float64(len(set)) {
		count := max(int(math.Ceil(quotaCPUs)), 1)
		set = set[:count]
	}
	if len(set) == 0 {
		return nil
	}
	return set
}

// Online renders /sys/devices/system/cpu/online (and possible, present)
// for the visible CPUs: their host ids as a list ("2-3"), the ids
// sched_getaffinity reports in the container, so a program pinning itself
// to the CPUs it reads here (taskset -c "$(cat online)") can. That holds in
// the CFS view too: the quota trims the list, it does not renumber it. An
// empty list returns nil so that the caller serves the host file instead
// of claiming the machine has no CPU.
func Online(cpus []int) []byte {
	if len(cpus) == 0 {
		return nil
	}
	out := appendCPUList(make([]byte, 0, 32), cpus)
	if len(out) == 0 { // only negative ids
		return nil
	}
	return append(out, '\n')
}

// CPUDirHidden reports whether the entry name of /sys/devices/system/cpu
// is hidden from a container that sees cpus: a cpuN directory of a CPU it
// does not see. Every other entry (cpufreq, cpuidle, vulnerabilities, ...)
// is the host's and shown. Nil cpus (no answer) hide nothing.
func CPUDirHidden(name string, cpus []int) bool {
	rest, ok := strings.CutPrefix(name, "cpu")
	if !ok || len(cpus) == 0 || rest == "" {
		return false
	}
	id, ok := parseUint([]byte(rest))
	if !ok || (len(rest) > 1 && rest[0] == '0') {
		return false // cpufreq, cpuidle, or a name the kernel never gives a CPU
	}
	_, visible := slices.BinarySearch(sortedUniqueView(cpus), int(min(id, MaxCPUs)))
	return !visible
}

// sortedUniqueView returns cpus itself when already sorted and unique (the
// usual case, no allocation), else a sorted, deduplicated copy.
func sortedUniqueView(cpus []int) []int {
	if isSortedUnique(cpus) {
		return cpus
	}
	return sortedUnique(cpus)
}
