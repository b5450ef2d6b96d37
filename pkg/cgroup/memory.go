package cgroup

import (
	"fmt"
	"math"
	"path/filepath"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/expiring"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// Memory returns the group's memory figures. Limits are the smallest along
// the path to the hierarchy root, since a parent's limit binds its children;
// "no limit" is math.MaxUint64 on both versions (v1's huge sentinel is
// normalised).
func (g *Group) Memory() (view.Memory, error) {
	return g.memory(true)
}

// MemoryWithoutSwap is Memory without the swap figures (SwapAccounting
// false), one cgroup file fewer, for a host without swap, where a
// container's swap figures are all 0 whatever its cgroup says
// (view.ShowsSwap).
func (g *Group) MemoryWithoutSwap() (view.Memory, error) {
	return g.memory(false)
}

func (g *Group) memory(swap bool) (view.Memory, error) {
	c, err := g.need(ctrlMemory)
	if err != nil {
		return view.Memory{}, fmt.Errorf("memory: %w", err)
	}
	lim, err := g.memLimits(c)
	if err != nil {
		return view.Memory{}, err
	}
	readStat := func() (view.MemStat, error) { return g.memStat(c) }
	if !swap {
		lim.swapSelf = false // as if the group had no swap files
	}
	if g.v2 {
		return memoryV2(c, lim, readStat)
	}
	return memoryV1(c, lim, readStat)
}

// memStat reads the group's memory.stat, or reuses the last one read while
// it is younger than the group's stat max age (WithStatMaxAge).
func (g *Group) memStat(c ctrlDir) (view.MemStat, error) {
	sc := g.stats
	if sc == nil {
		return readMemStat(c, g.v2)
	}
	return sc.Get(struct{}{}, g.h.Now(), g.statAge, func() (view.MemStat, error) { return readMemStat(c, g.v2) })
}

func readMemStat(c ctrlDir, v2 bool) (view.MemStat, error) {
	var st view.MemStat
	err := c.read("memory.stat", func(s string) error {
		var err error
		if st, err = parseMemStat(s, v2); err != nil {
			return fmt.Errorf("parse %s: %w", filepath.Join(c.dir, "memory.stat"), err)
		}
		return nil
	})
	return st, err
}

// memLimits are the settings Memory needs, cached by WithLimitCache.
type memLimits struct {
	limit      uint64 // smallest memory.max / memory.limit_in_bytes up the tree
	found      bool   // some level had the limit file
	swapLimit  uint64 // smallest memory.swap.max / memory.memsw.limit_in_bytes
	swapSelf   bool   // the group's own directory has the swap limit file
	swappiness uint64 // v1, read when swapSelf
	hasSwappy  bool
}

func (g *Group) memLimits(c ctrlDir) (memLimits, error) {
	return cachedLimit(g, func(lc *limitCache) *expiring.Cache[struct{}, memLimits] { return &lc.mem }, func() (memLimits, error) {
		return readMemLimits(c, g.v2)
	})
}

func readMemLimits(c ctrlDir, v2 bool) (memLimits, error) {
	limitFile, swapFile := "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"
	if v2 {
		limitFile, swapFile = "memory.max", "memory.swap.max"
	}
	var l memLimits
	var err error
	if l.limit, l.found, _, err = minUintUp(c, limitFile); err != nil {
		return l, err
	}
	// Without swap accounting (CONFIG_MEMCG_SWAP off, or swapaccount=0)
	// the swap files do not exist.
	if l.swapLimit, _, l.swapSelf, err = minUintUp(c, swapFile); err != nil {
		return l, err
	}
	if v2 || !l.swapSelf {
		return l, nil
	}
	// With swappiness 0 the kernel will not swap the group out any
	// further (see memoryV1).
	l.swappiness, err = c.readUint("memory.swappiness")
	switch {
	case err == nil:
		l.hasSwappy = true
	case !isNotExist(err):
		return l, err
	}
	return l, nil
}

func memoryV2(c ctrlDir, lim memLimits, readStat func() (view.MemStat, error)) (view.Memory, error) {
	var m view.Memory
	var err error
	m.Limit = math.MaxUint64
	if lim.found {
		m.Limit = lim.limit
	}
	if m.Usage, err = c.readUint("memory.current"); err != nil {
		return m, err
	}
	if m.Stat, err = readStat(); err != nil {
		return m, err
	}
	if !lim.swapSelf {
		return m, nil
	}
	swapUsage, err := c.readUint("memory.swap.current")
	if err != nil {
		if isNotExist(err) {
			return m, nil
		}
		return m, err
	}
	m.SwapAccounting, m.SwapLimit, m.SwapUsage = true, lim.swapLimit, swapUsage
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

func memoryV1(c ctrlDir, lim memLimits, readStat func() (view.MemStat, error)) (view.Memory, error) {
	var m view.Memory
	var err error
	m.Limit = math.MaxUint64
	if lim.found {
		m.Limit = normV1(lim.limit)
	}
	if m.Usage, err = c.readUint("memory.usage_in_bytes"); err != nil {
		return m, err
	}
	if m.Stat, err = readStat(); err != nil {
		return m, err
	}

	// memsw ("memory+swap") files exist only with swap accounting on.
	if !lim.swapSelf {
		return m, nil
	}
	memswUsage, err := c.readUint("memory.memsw.usage_in_bytes")
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
	switch memswLimit := normV1(lim.swapLimit); {
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
	if lim.hasSwappy && lim.swappiness == 0 {
		m.SwapLimit = m.SwapUsage
	}
	return m, nil
}

// MemStatValues reads the group's memory.stat afresh (never the copy kept
// for WithStatMaxAge: its event counters are what /proc/vmstat shows, and a
// reader computing rates wants them current), every key and value. On v1
// only the hierarchical total_* keys are kept, without the prefix.
func (g *Group) MemStatValues() (view.CgroupMemStat, error) {
	c, err := g.need(ctrlMemory)
	if err != nil {
		return view.CgroupMemStat{}, fmt.Errorf("memory: %w", err)
	}
	st := view.CgroupMemStat{V2: g.v2}
	err = c.read("memory.stat", func(s string) error {
		vals, perr := parseMemStatValues(s, g.v2)
		if perr != nil {
			return fmt.Errorf("parse %s: %w", filepath.Join(c.dir, "memory.stat"), perr)
		}
		st.Values = vals
		return nil
	})
	return st, err
}
