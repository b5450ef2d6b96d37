package view

import (
	"slices"
	"strconv"
)

// Kernel /proc/diskstats counters after "major minor name": 11 until 4.18,
// 15 with the discard fields, 17 with the flush fields (5.5).
const (
	diskBaseCounters    = 11
	diskDiscardCounters = 15
	diskMaxCounters     = 17
	sectorSize          = 512
)

// AppendDiskstats appends to dst /proc/diskstats from the container's
// per-device I/O counters: one line per host device (in the host's order,
// with the host's major, minor and name) that the container did any I/O on. Only the
// counters a cgroup knows are filled (completed reads/writes/discards and
// their sectors); merges, times and in-flight are 0. Each line has as many
// fields as the host's line, so parsers written for the host kernel work.
//
// Devices the container never used are left out, so a container with no I/O
// at all (empty io) sees an empty file: listing every host device with zeros
// would leak the host's disk layout and suggest idle disks it cannot use.
func AppendDiskstats(dst, host []byte, io []IOStat) []byte {
	if len(io) == 0 {
		if dst == nil {
			return []byte{} // empty, not nil: nil reads as "no answer"
		}
		return dst
	}
	out := slices.Grow(dst, 128*len(io))
	var buf [3 + diskMaxCounters + 1][]byte
	for rest := host; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		f := fields(buf[:0], trimEOL(line))
		if len(f) < 4 || len(f) > 3+diskMaxCounters {
			continue
		}
		major, ok1 := parseUint(f[0])
		minor, ok2 := parseUint(f[1])
		if !ok1 || !ok2 || major > 0xffffffff || minor > 0xffffffff {
			continue
		}
		if !allNumeric(f[3:]) {
			continue // not a diskstats line; its field count means nothing
		}
		st, ok := findIO(io, uint32(major), uint32(minor))
		if !ok {
			continue
		}
		var c [diskMaxCounters]uint64
		c[0] = st.ReadIOs
		c[2] = st.ReadBytes / sectorSize
		c[4] = st.WriteIOs
		c[6] = st.WriteBytes / sectorSize
		c[11] = st.DiscardIOs
		c[13] = st.DiscardBytes / sectorSize
		out = appendDiskLine(out, uint32(major), uint32(minor), f[2], c[:len(f)-3])
	}
	return out
}

// findIO returns the counters for a device if it saw any I/O.
func findIO(io []IOStat, major, minor uint32) (IOStat, bool) {
	for _, s := range io {
		if s.Major == major && s.Minor == minor {
			if s.ReadBytes|s.WriteBytes|s.ReadIOs|s.WriteIOs|s.DiscardBytes|s.DiscardIOs == 0 {
				continue // a later duplicate entry may still carry figures
			}
			return s, true
		}
	}
	return IOStat{}, false
}

// appendDiskLine writes one line in the kernel's "%4d %7d %s %lu ..." layout.
func appendDiskLine(out []byte, major, minor uint32, name []byte, c []uint64) []byte {
	var num [20]byte
	d := strconv.AppendUint(num[:0], uint64(major), 10)
	out = appendSpaces(out, 4-len(d))
	out = append(out, d...)
	out = append(out, ' ')
	d = strconv.AppendUint(num[:0], uint64(minor), 10)
	out = appendSpaces(out, 7-len(d))
	out = append(out, d...)
	out = append(out, ' ')
	out = append(out, name...)
	for _, v := range c {
		out = append(out, ' ')
		out = strconv.AppendUint(out, v, 10)
	}
	return append(out, '\n')
}

func allNumeric(f [][]byte) bool {
	for _, s := range f {
		if _, ok := parseUint(s); !ok {
			return false
		}
	}
	return true
}
