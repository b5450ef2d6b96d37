package view

import (
	"bytes"
	"slices"
	"strconv"
)

// CgroupMemStat is a cgroup's memory.stat as read: key to value. On v1 the
// keys are the hierarchical total_* ones with the prefix dropped, so that a
// container's figures include its sub-cgroups'.
type CgroupMemStat struct {
	V2     bool
	Values map[string]uint64
}

// vmstatUnit says how a memory.stat figure becomes a /proc/vmstat one.
type vmstatUnit uint8

const (
	unitCount vmstatUnit = iota // an event count, copied
	unitPages                   // bytes in memory.stat, pages in vmstat
	unitKB                      // bytes in memory.stat, kB in vmstat (nr_kernel_stack)
)

// vmstatSource names the memory.stat key a /proc/vmstat line comes from on
// each cgroup version ("" where that version has none).
type vmstatSource struct {
	v2, v1 string
	unit   vmstatUnit
}

// vmstatMap lists the /proc/vmstat lines a container's memory.stat answers,
// with the same meaning. The per-zone nr_zone_* lines sum to the node
// counters, which is all a cgroup has. Not here, so the host's: pgpgin and
// pgpgout (vmstat counts kB of block I/O, v1 memory.stat pages charged),
// the transparent huge page counts (vmstat counts huge pages, memory.stat
// bytes), allocation, NUMA and compaction counters, and nr_free_pages.
var vmstatMap = map[string]vmstatSource{
	"nr_anon_pages":           {"anon", "rss", unitPages},
	"nr_file_pages":           {"file", "cache", unitPages},
	"nr_mapped":               {"file_mapped", "mapped_file", unitPages},
	"nr_dirty":                {"file_dirty", "dirty", unitPages},
	"nr_writeback":            {"file_writeback", "writeback", unitPages},
	"nr_shmem":                {"shmem", "shmem", unitPages},
	"nr_swapcached":           {"swapcached", "swapcached", unitPages},
	"nr_inactive_anon":        {"inactive_anon", "inactive_anon", unitPages},
	"nr_active_anon":          {"active_anon", "active_anon", unitPages},
	"nr_inactive_file":        {"inactive_file", "inactive_file", unitPages},
	"nr_active_file":          {"active_file", "active_file", unitPages},
	"nr_unevictable":          {"unevictable", "unevictable", unitPages},
	"nr_zone_inactive_anon":   {"inactive_anon", "inactive_anon", unitPages},
	"nr_zone_active_anon":     {"active_anon", "active_anon", unitPages},
	"nr_zone_inactive_file":   {"inactive_file", "inactive_file", unitPages},
	"nr_zone_active_file":     {"active_file", "active_file", unitPages},
	"nr_zone_unevictable":     {"unevictable", "unevictable", unitPages},
	"nr_slab_reclaimable":     {"slab_reclaimable", "", unitPages},
	"nr_slab_unreclaimable":   {"slab_unreclaimable", "", unitPages},
	"nr_page_table_pages":     {"pagetables", "", unitPages},
	"nr_sec_page_table_pages": {"sec_pagetables", "", unitPages},
	"nr_kernel_stack":         {"kernel_stack", "", unitKB},

	"pgfault":    {"pgfault", "pgfault", unitCount},
	"pgmajfault": {"pgmajfault", "pgmajfault", unitCount},
	// Swap-ins and swap-outs are in memory.stat since Linux 6.12 (v2);
	// earlier kernels and v1 keep the host's lines.
	"pswpin":       {"pswpin", "", unitCount},
	"pswpout":      {"pswpout", "", unitCount},
	"pgrefill":     {"pgrefill", "", unitCount},
	"pgactivate":   {"pgactivate", "", unitCount},
	"pgdeactivate": {"pgdeactivate", "", unitCount},
	"pglazyfree":   {"pglazyfree", "", unitCount},
	"pglazyfreed":  {"pglazyfreed", "", unitCount},

	"pgscan_kswapd":      {"pgscan_kswapd", "", unitCount},
	"pgscan_direct":      {"pgscan_direct", "", unitCount},
	"pgscan_khugepaged":  {"pgscan_khugepaged", "", unitCount},
	"pgsteal_kswapd":     {"pgsteal_kswapd", "", unitCount},
	"pgsteal_direct":     {"pgsteal_direct", "", unitCount},
	"pgsteal_khugepaged": {"pgsteal_khugepaged", "", unitCount},
	"zswpin":             {"zswpin", "", unitCount},
	"zswpout":            {"zswpout", "", unitCount},

	"workingset_refault":       {"workingset_refault", "workingset_refault", unitCount},
	"workingset_refault_anon":  {"workingset_refault_anon", "workingset_refault_anon", unitCount},
	"workingset_refault_file":  {"workingset_refault_file", "workingset_refault_file", unitCount},
	"workingset_activate":      {"workingset_activate", "workingset_activate", unitCount},
	"workingset_activate_anon": {"workingset_activate_anon", "workingset_activate_anon", unitCount},
	"workingset_activate_file": {"workingset_activate_file", "workingset_activate_file", unitCount},
	"workingset_restore":       {"workingset_restore", "workingset_restore", unitCount},
	"workingset_restore_anon":  {"workingset_restore_anon", "workingset_restore_anon", unitCount},
	"workingset_restore_file":  {"workingset_restore_file", "workingset_restore_file", unitCount},
	"workingset_nodereclaim":   {"workingset_nodereclaim", "workingset_nodereclaim", unitCount},
}

// AppendVmstat appends to dst the host's /proc/vmstat with each line that
// the container's memory.stat answers (vmstatMap) replaced by the
// container's figure, in the host's order. Lines the cgroup has no figure
// for, and lines that do not parse as "name value", are the host's bytes.
// pageSize converts memory.stat's bytes to vmstat's pages.
func AppendVmstat(dst, host []byte, st CgroupMemStat, pageSize uint64) []byte {
	if pageSize == 0 {
		pageSize = 4096
	}
	out := slices.Grow(dst, len(host))
	for rest := host; len(rest) > 0; {
		var line []byte
		line, rest = nextLine(rest)
		name, _, ok := bytes.Cut(trimEOL(line), []byte{' '})
		if !ok {
			out = append(out, line...)
			continue
		}
		src, ok := vmstatMap[string(name)]
		key := src.v1
		if st.V2 {
			key = src.v2
		}
		v, have := st.Values[key]
		if !ok || key == "" || !have {
			out = append(out, line...)
			continue
		}
		switch src.unit {
		case unitPages:
			v /= pageSize
		case unitKB:
			v /= 1024
		}
		out = append(out, name...)
		out = append(out, ' ')
		out = strconv.AppendUint(out, v, 10)
		out = append(out, '\n')
	}
	return out
}
