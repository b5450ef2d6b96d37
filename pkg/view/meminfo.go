package view

import (
	"bytes"
	"slices"
	"strconv"
)

// kernelValueWidth is the field width the kernel pads /proc/meminfo values to
// (show_val_kb prints "%8lu"); larger values push the column to the right.
const kernelValueWidth = 8

// AppendMeminfo appends /proc/meminfo for a container, rendered from the
// host's file, to dst.
//
// The lines LXCFS virtualises are recomputed from m, in kB:
//
//	MemTotal     min(Limit, host MemTotal)
//	MemFree      MemTotal - min(Usage, MemTotal)  (0, not a wrap, when over the limit)
//	MemAvailable min(MemTotal, MemFree + active_file + inactive_file [+ slab_reclaimable])
//	Buffers, SwapCached 0; Cached = Stat.Cache; Mapped = Stat.Mapped
//	Active/Inactive = anon + file; the (anon)/(file) lines, Unevictable, Shmem from Stat
//	AnonPages    active_anon + inactive_anon - shmem, floored at 0
//	Slab, SReclaimable, SUnreclaim from Stat on v2 (Stat.HasSlab), 0 on v1
//	SwapTotal, SwapFree as Swaps reports them (see swapFigures)
//
// Every other line, and every line that does not parse, is copied byte for
// byte in the host's order. Sums saturate and differences floor at 0, so no
// input wraps around. Without a readable host MemTotal the host file is
// returned unchanged: nothing sensible can be capped against it.
func AppendMeminfo(dst, host []byte, m Memory) []byte {
	hostTotal, ok := meminfoValue(host, "MemTotal")
	if !ok {
		return append(dst, host...)
	}
	hostSwap, _ := meminfoValue(host, "SwapTotal")
	v := computeMem(hostTotal, hostSwap, m)

	// Lines kept as they are go out in runs (host[copied:] up to the next
	// replaced line), and a line's number is only parsed once its key is
	// known to be replaced: this runs on every read of the file.
	out := slices.Grow(dst, len(host)+64)
	copied := 0
	for off := 0; off < len(host); {
		at := off
		line, _ := nextLine(host[off:])
		off += len(line)
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		val, replace := v.lookup(line[:colon])
		if !replace {
			continue
		}
		start := skipBlanks(line, colon+1)
		end := skipDigits(line, start)
		if end == start {
			continue
		}
		out = append(out, host[copied:at]...)
		out = appendMeminfoValue(out, line, colon, start, end, val)
		copied = off
	}
	return append(out, host[copied:]...)
}

// memValues holds the rendered figures, in kB.
type memValues struct {
	total, free, avail, cached                         uint64
	active, inactive                                   uint64
	activeAnon, inactiveAnon, activeFile, inactiveFile uint64
	unevictable, shmem, anon, mapped                   uint64
	hasSlab                                            bool
	slab, sreclaimable, sunreclaim                     uint64
	swapTotal, swapFree                                uint64
}

func computeMem(hostTotalKB, hostSwapKB uint64, m Memory) memValues {
	s := m.Stat
	var v memValues
	v.total = min(m.Limit>>10, hostTotalKB)
	// Usage above the limit happens transiently (and with nested limits read
	// at different moments); clamp so MemFree reads 0 instead of wrapping.
	v.free = v.total - min(m.Usage>>10, v.total)
	reclaimable := satAdd(s.ActiveFile, s.InactiveFile)
	if s.HasSlab {
		reclaimable = satAdd(reclaimable, s.SlabReclaimable)
	}
	v.avail = min(v.total, satAdd(v.free, reclaimable>>10))
	v.cached = s.Cache >> 10
	v.active = satAdd(s.ActiveAnon, s.ActiveFile) >> 10
	v.inactive = satAdd(s.InactiveAnon, s.InactiveFile) >> 10
	v.activeAnon = s.ActiveAnon >> 10
	v.inactiveAnon = s.InactiveAnon >> 10
	v.activeFile = s.ActiveFile >> 10
	v.inactiveFile = s.InactiveFile >> 10
	v.unevictable = s.Unevictable >> 10
	v.shmem = s.Shmem >> 10
	v.anon = satSub(satAdd(s.ActiveAnon, s.InactiveAnon), s.Shmem) >> 10
	v.mapped = s.Mapped >> 10
	v.hasSlab = s.HasSlab
	v.slab = s.Slab >> 10
	v.sreclaimable = s.SlabReclaimable >> 10
	v.sunreclaim = s.SlabUnreclaimable >> 10
	v.swapTotal, v.swapFree = swapFigures(hostSwapKB, m)
	return v
}

// ShowsSwap reports whether a container's swap figures can show in meminfo
// rendered from hostMeminfo: not when the host has no swap (SwapTotal 0 or
// absent), since they are capped by the host's. A caller may then skip
// reading them.
func ShowsSwap(hostMeminfo []byte) bool {
	total, ok := meminfoValue(hostMeminfo, "SwapTotal")
	return ok && total > 0
}

// swapFigures returns the container's swap total and free space in kB,
// capped by the host's swap. Meminfo and Swaps share it so they agree.
func swapFigures(hostSwapKB uint64, m Memory) (total, free uint64) {
	if !m.SwapAccounting {
		return 0, 0
	}
	total = min(m.SwapLimit>>10, hostSwapKB)
	used := min(m.SwapUsage>>10, total)
	return total, total - used
}

func (v *memValues) lookup(key []byte) (uint64, bool) {
	switch string(key) { // no allocation: the compiler special-cases this form
	case "MemTotal":
		return v.total, true
	case "MemFree":
		return v.free, true
	case "MemAvailable":
		return v.avail, true
	case "Buffers", "SwapCached":
		return 0, true
	case "Cached":
		return v.cached, true
	case "Active":
		return v.active, true
	case "Inactive":
		return v.inactive, true
	case "Active(anon)":
		return v.activeAnon, true
	case "Inactive(anon)":
		return v.inactiveAnon, true
	case "Active(file)":
		return v.activeFile, true
	case "Inactive(file)":
		return v.inactiveFile, true
	case "Unevictable":
		return v.unevictable, true
	case "Shmem":
		return v.shmem, true
	case "AnonPages":
		return v.anon, true
	case "Mapped":
		return v.mapped, true
	// v1 has no slab figures per cgroup (v.slab... are 0): the host's are
	// larger than a small container's total, and busybox free, which counts
	// SReclaimable as cache, then printed a used memory that wrapped.
	case "Slab":
		return v.slab, true
	case "SReclaimable":
		return v.sreclaimable, true
	case "SUnreclaim":
		return v.sunreclaim, true
	case "SwapTotal":
		return v.swapTotal, true
	case "SwapFree":
		return v.swapFree, true
	}
	return 0, false
}

// meminfoLine splits "Key:   12345 kB\n" into the key and the byte offsets of
// the number. ok is false for lines without that shape.
func meminfoLine(line []byte) (key []byte, start, end int, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, 0, 0, false
	}
	start = skipBlanks(line, colon+1)
	end = skipDigits(line, start)
	if end == start {
		return nil, 0, 0, false
	}
	return line[:colon], start, end, true
}

// meminfoValue finds key's number in a meminfo-style file.
func meminfoValue(b []byte, key string) (uint64, bool) {
	for rest := b; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		k, start, end, ok := meminfoLine(line)
		if ok && string(k) == key {
			return parseUint(line[start:end])
		}
	}
	return 0, false
}

// appendMeminfoValue writes line with its number replaced, keeping the host's
// layout: the kernel pads the key to 16 columns and the value to 8, so the
// value stays right-aligned to where the host's column ends and, when longer,
// grows to the right as the kernel's would. Whatever followed the number
// (" kB\n") is kept.
func appendMeminfoValue(out, line []byte, colon, start, end int, val uint64) []byte {
	var num [20]byte
	digits := strconv.AppendUint(num[:0], val, 10)
	edge := end // right edge of the value column
	if end-start > kernelValueWidth {
		// The host's own value overflowed the column.
		edge = start + kernelValueWidth
	}
	pos := max(edge-len(digits), edge-kernelValueWidth, colon+2)
	out = append(out, line[:colon+1]...)
	out = appendSpaces(out, pos-(colon+1))
	out = append(out, digits...)
	return append(out, line[end:]...)
}
