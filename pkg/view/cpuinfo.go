package view

import (
	"bytes"
	"slices"
)

// AppendCpuinfo appends to dst /proc/cpuinfo showing only the blocks of the
// host CPU ids in cpus, with their host ids: the ids sched_getaffinity,
// /proc/stat and /sys/devices/system/cpu give the same CPUs (see Online).
//
// A block starts at a "processor : N" line and runs to the next blank line
// (included) or the next such line. Lines outside any block pass through: the
// arm "Hardware"/"Revision" trailer, the old arm64 "Processor : <model>" header
// and formats we do not know (s390's "processor 0: ..." lines). Nil or empty
// cpus return the host file unchanged: a container cannot run on no CPU, so
// that can only be a caller without an answer.
func AppendCpuinfo(dst, host []byte, cpus []int) []byte {
	if len(cpus) == 0 {
		return append(dst, host...)
	}
	cpus = sortedUniqueView(cpus)
	out := slices.Grow(dst, len(host))
	inBlock, keep := false, false
	var stack [64]int
	kept, maxKept := stack[:0], -1
	for rest := host; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		if id, _, _, ok := processorLine(line); ok {
			inBlock = true
			_, keep = slices.BinarySearch(cpus, id)
			// A corrupt file repeating an id must not show extra CPUs;
			// ids come ascending from the kernel, so the scan is rare.
			if keep && id <= maxKept && slices.Contains(kept, id) {
				keep = false
			}
			if keep {
				kept = append(kept, id)
				maxKept = max(maxKept, id)
				out = append(out, line...)
			}
			continue
		}
		if !inBlock || keep {
			out = append(out, line...)
		}
		if len(trimEOL(line)) == 0 {
			inBlock = false
		}
	}
	return out
}

// processorLine recognises "processor<blanks>:<blanks>N" and returns N and
// where it starts and ends. The key is case-sensitive: old arm kernels print a
// "Processor : <model name>" line that is not a block.
func processorLine(line []byte) (id, valStart, valEnd int, ok bool) {
	const key = "processor"
	if !bytes.HasPrefix(line, []byte(key)) {
		return 0, 0, 0, false
	}
	i := skipBlanks(line, len(key))
	if i >= len(line) || line[i] != ':' {
		return 0, 0, 0, false
	}
	valStart = skipBlanks(line, i+1)
	end := skipDigits(line, valStart)
	if end == valStart || len(bytes.TrimSpace(line[end:])) != 0 {
		return 0, 0, 0, false
	}
	v, ok := parseUint(line[valStart:end])
	if !ok || v >= MaxCPUs {
		return 0, 0, 0, false
	}
	return int(v), valStart, end, true
}
