package view

import (
	"bytes"
	"slices"
	"strconv"
)

// swapsHeader is the kernel's /proc/swaps header (mm/swapfile.c), used when
// the host's file does not start with one.
const swapsHeader = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"

// AppendSwaps appends /proc/swaps to dst: the host's header, then a single
// "none virtual" line carrying the container's swap total and use (kB) when
// that total is above zero. The host's own swap devices are never shown: their names and
// sizes are host details and their sum is not what the container may use.
//
// The host's swap size comes from hostMeminfo's SwapTotal, else from the sum
// of hostSwaps' Size column, so that Swaps and Meminfo agree.
func AppendSwaps(dst, hostSwaps, hostMeminfo []byte, m Memory) []byte {
	header, rest := nextLine(hostSwaps)
	if !bytes.HasPrefix(header, []byte("Filename")) {
		header, rest = []byte(swapsHeader), hostSwaps
	}
	out := append(slices.Grow(dst, 128), header...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}

	hostSwap, ok := meminfoValue(hostMeminfo, "SwapTotal")
	if !ok {
		hostSwap = sumSwapSizes(rest)
	}
	total, free := swapFigures(hostSwap, m)
	if total == 0 {
		return out
	}
	// Mimic the kernel's layout ("%-40s" name, then tab-separated columns with
	// an extra tab for values under 10^7) so the columns line up with the
	// header exactly as a host line would.
	out = append(out, "none"...)
	out = appendSpaces(out, 40-len("none"))
	out = append(out, "virtual\t\t"...)
	out = appendSwapCol(out, total)
	out = appendSwapCol(out, total-free)
	return append(out, "0\n"...)
}

func appendSwapCol(out []byte, v uint64) []byte {
	out = strconv.AppendUint(out, v, 10)
	out = append(out, '\t')
	if v < 10000000 {
		out = append(out, '\t')
	}
	return out
}

// sumSwapSizes adds the Size column (third field) of /proc/swaps body lines.
func sumSwapSizes(body []byte) uint64 {
	var sum uint64
	var buf [8][]byte
	for len(body) > 0 {
		var line []byte
		line, body = nextLine(body)
		f := fields(buf[:0], trimEOL(line))
		if len(f) < 3 {
			continue
		}
		if v, ok := parseUint(f[2]); ok {
			sum = satAdd(sum, v)
		}
	}
	return sum
}
