package cgroup

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// Memory returns the group's memory figures. Limits are the smallest along
// the path to the hierarchy root, since a parent's limit binds its children;
// "no limit" is math.MaxUint64 on both versions (v1's huge sentinel is
// normalised).
func (g *Group) Memory() (view.Memory, error) {
	c, err := g.need(ctrlMemory)
	if err != nil {
		return view.Memory{}, fmt.Errorf("memory: %w", err)
	}
	if g.v2 {
		return memoryV2(c)
	}
	return memoryV1(c)
}

func readMemStat(dir string, v2 bool) (view.MemStat, error) {
	s, err := readFile(dir, "memory.stat")
	if err != nil {
		return view.MemStat{}, err
	}
	st, err := parseMemStat(s, v2)
	if err != nil {
		return view.MemStat{}, fmt.Errorf("parse %s: %w", filepath.Join(dir, "memory.stat"), err)
	}
	return st, nil
}

func memoryV2(c ctrlDir) (view.Memory, error) {
	var m view.Memory
	limit, found, _, err := minUintUp(c, "memory.max")
	if err != nil {
		return m, err
	}
	m.Limit = math.MaxUint64
	if found {
		m.Limit = limit
	}
	if m.Usage, err = readUint(c.dir, "memory.current"); err != nil {
		return m, err
	}
	if m.Stat, err = readMemStat(c.dir, true); err != nil {
		return m, err
	}

	// Without swap accounting (CONFIG_MEMCG_SWAP off, or swapaccount=0)
	// the memory.swap.* files do not exist.
	swapLimit, _, self, err := minUintUp(c, "memory.swap.max")
	if err != nil {
		return m, err
	}
	if !self {
		return m, nil
	}
	swapUsage, err := readUint(c.dir, "memory.swap.current")
	if err != nil {
		if isNotExist(err) {
			return m, nil
		}
		return m, err
	}
	m.SwapAccounting, m.SwapLimit, m.SwapUsage = true, swapLimit, swapUsage
	return m, nil
}

// normV1 maps v1's "unlimited" sentinel (PAGE_COUNTER_MAX in bytes) to
// math.MaxUint64, so callers need no version-specific check.
func normV1(v uint64) uint64 {
	if v >= v1Unlimited {
		return math.MaxUint64
	}
	return v
}

func memoryV1(c ctrlDir) (view.Memory, error) {
	var m view.Memory
	limit, found, _, err := minUintUp(c, "memory.limit_in_bytes")
	if err != nil {
		return m, err
	}
	m.Limit = math.MaxUint64
	if found {
		m.Limit = normV1(limit)
	}
	if m.Usage, err = readUint(c.dir, "memory.usage_in_bytes"); err != nil {
		return m, err
	}
	if m.Stat, err = readMemStat(c.dir, false); err != nil {
		return m, err
	}

	// memsw ("memory+swap") files exist only with swap accounting on.
	memswLimit, _, self, err := minUintUp(c, "memory.memsw.limit_in_bytes")
	if err != nil {
		return m, err
	}
	if !self {
		return m, nil
	}
	memswUsage, err := readUint(c.dir, "memory.memsw.usage_in_bytes")
	if err != nil {
		if isNotExist(err) {
			return m, nil
		}
		return m, err
	}
	m.SwapAccounting = true
	// memsw counts memory plus swap, so the swap share is the difference.
	// An unlimited memsw leaves swap bounded only by the host, which the
	// caller applies.
	switch memswLimit = normV1(memswLimit); {
	case memswLimit == math.MaxUint64:
		m.SwapLimit = math.MaxUint64
	case memswLimit > m.Limit:
		m.SwapLimit = memswLimit - m.Limit
	}
	if memswUsage > m.Usage {
		m.SwapUsage = memswUsage - m.Usage
	}

	// With swappiness 0 the kernel will not swap the group out any
	// further, so the swap it may still use is what it already has.
	swappiness, err := readUint(c.dir, "memory.swappiness")
	switch {
	case err == nil && swappiness == 0:
		m.SwapLimit = m.SwapUsage
	case err != nil && !isNotExist(err):
		return m, err
	}
	return m, nil
}
