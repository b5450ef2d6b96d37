package view

import "time"

// Sysinfo is what sysinfo(2) returns, with memory in bytes (the kernel's
// mem_unit 1, which a 64-bit kernel always reports).
type Sysinfo struct {
	Uptime    int64     // seconds since boot, rounded up as the kernel does
	Loads     [3]uint64 // 1, 5 and 15 minute load, fixed point: 1<<16 is 1.0
	TotalRAM  uint64
	FreeRAM   uint64
	SharedRAM uint64
	BufferRAM uint64
	TotalSwap uint64
	FreeSwap  uint64
	Procs     uint16 // threads, as the kernel counts them for sysinfo
}

// sysinfoLoadShift is SI_LOAD_SHIFT: sysinfo's loads are fixed point with
// 16 fraction bits.
const sysinfoLoadShift = 16

// ContainerSysinfo is sysinfo(2) for a container, from the same figures and
// rules as its meminfo, swaps, uptime and loadavg, so every tool agrees:
// totalram, freeram and sharedram are meminfo's MemTotal, MemFree and Shmem,
// bufferram is 0 (as Buffers), the swap pair is SwapTotal and SwapFree,
// uptime is the seconds since the container's init started. With a load
// (hasLoad, the --enable-loadavg sampler) loads and procs are loadavg's;
// without one they are the host's, as loadavg is then. host is the host's
// own answer; hostMeminfo is /proc/meminfo, whose MemTotal and SwapTotal cap
// the container's as in meminfo. Without a readable MemTotal host is
// returned unchanged.
func ContainerSysinfo(host Sysinfo, hostMeminfo []byte, m Memory, sinceStart time.Duration, load LoadAvg, hasLoad bool) Sysinfo {
	hostTotal, ok := meminfoValue(hostMeminfo, "MemTotal")
	if !ok {
		return host
	}
	hostSwap, _ := meminfoValue(hostMeminfo, "SwapTotal")
	v := computeMem(hostTotal, hostSwap, m)
	out := host
	out.TotalRAM = v.total << 10
	out.FreeRAM = v.free << 10
	out.SharedRAM = v.shmem << 10
	out.BufferRAM = 0
	out.TotalSwap = v.swapTotal << 10
	out.FreeSwap = v.swapFree << 10
	up := max(sinceStart, 0)
	out.Uptime = int64(up / time.Second)
	if up%time.Second != 0 {
		out.Uptime++
	}
	if hasLoad {
		for i, l := range [3]float64{load.Load1, load.Load5, load.Load15} {
			out.Loads[i] = uint64(max(l, 0)*(1<<sysinfoLoadShift) + 0.5)
		}
		out.Procs = uint16(min(max(load.Total, 0), 1<<16-1))
	}
	return out
}
