// Package view renders the container-aware versions of /proc and /sys files.
//
// Every function here is pure: it takes the host's file bytes and figures read
// from a container's cgroups (the types below) and returns the bytes the
// container should see. Those rendering host-sized files append to a dst
// slice (as strconv's Append functions do), so a caller answering thousands
// of reads a second can render into buffers it reuses. Nothing here touches the file system, FUSE or cgroups,
// so the arithmetic is table-tested from fixtures without root.
package view

import "time"

// Memory holds a container's memory figures in bytes. Limits are already the
// smallest along the cgroup path to the root; "no limit" is math.MaxUint64 (or
// any value at least the host's total), so min(limit, host) needs no special case.
type Memory struct {
	Limit uint64 // v2 memory.max, v1 memory.limit_in_bytes
	Usage uint64 // v2 memory.current, v1 memory.usage_in_bytes
	Stat  MemStat

	// SwapAccounting is false when the kernel keeps no swap figures for the
	// cgroup (v1 without memsw files, v2 without memory.swap.*): both swap
	// lines then read 0.
	SwapAccounting bool
	SwapLimit      uint64 // swap the container may use (v2 memory.swap.max; v1 memsw limit - memory limit)
	SwapUsage      uint64 // v2 memory.swap.current; v1 memsw usage - memory usage
}

// MemStat holds memory.stat figures, normalised across cgroup versions (v1
// takes the hierarchical total_* keys).
type MemStat struct {
	ActiveAnon   uint64
	InactiveAnon uint64
	ActiveFile   uint64
	InactiveFile uint64
	Unevictable  uint64
	Shmem        uint64
	Cache        uint64 // v2 file, v1 total_cache
	Mapped       uint64 // v2 file_mapped, v1 total_mapped_file

	// HasSlab is true on v2, where memory.stat reports slab figures; on v1
	// the host's Slab lines are passed through.
	HasSlab           bool
	Slab              uint64
	SlabReclaimable   uint64
	SlabUnreclaimable uint64
}

// CPUTime is CPU time split as the kernel accounts it.
type CPUTime struct {
	User   time.Duration
	System time.Duration
}

// Total is user plus system time.
func (t CPUTime) Total() time.Duration { return t.User + t.System }

// CPUUsage is a cgroup's CPU time. v1 (cpuacct.usage_all) gives it per host
// CPU; v2 (cpu.stat) gives only the cgroup's total, which the renderer spreads
// over the visible CPUs.
type CPUUsage struct {
	PerCPU map[int]CPUTime // v1: host CPU id -> time; nil on v2
	Total  CPUTime         // v2 cpu.stat user_usec/system_usec; on v1 the sum of PerCPU
}

// LoadAvg is a container's load average as the sampler computed it.
type LoadAvg struct {
	Load1, Load5, Load15 float64
	Running, Total       int
	LastPid              int
}

// IOStat is one block device's I/O counters for a cgroup (v2 io.stat, v1
// blkio.throttle.io_service_bytes_recursive / io_serviced_recursive).
type IOStat struct {
	Major, Minor uint32
	ReadBytes    uint64
	WriteBytes   uint64
	ReadIOs      uint64
	WriteIOs     uint64
	DiscardBytes uint64
	DiscardIOs   uint64
}
