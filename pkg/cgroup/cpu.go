package cgroup

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/expiring"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// CPUSet returns the group's effective cpuset, sorted. An empty cpuset file
// means "inherit" (a v1 child created without clone_children, a v2 group
// with cpuset.cpus unset), so the walk goes up until a level names CPUs.
// It returns nil when there is no cpuset controller or no level has a list.
//
// The returned slice may be shared with other callers: do not modify it.
func (g *Group) CPUSet() ([]int, error) {
	return cachedLimit(g, func(lc *limitCache) *expiring.Cache[struct{}, []int] { return &lc.cpuset }, g.readCPUSet)
}

func (g *Group) readCPUSet() ([]int, error) {
	c := g.ctrl(ctrlCPUSet)
	if !c.ok() {
		return nil, nil
	}
	// v1 calls the effective list cpuset.effective_cpus; v2 calls it
	// cpuset.cpus.effective. Both fall back to the configured list.
	files := []string{"cpuset.effective_cpus", "cpuset.cpus"}
	if g.v2 {
		files = []string{"cpuset.cpus.effective", "cpuset.cpus"}
	}
	var cpus []int
	err := walkUp(c, func(l level) (bool, error) {
		for _, f := range files {
			s, err := l.read(f)
			if err != nil {
				if isNotExist(err) {
					continue
				}
				return true, err
			}
			if strings.TrimSpace(s) == "" {
				continue
			}
			list, err := view.ParseCPUList(s)
			if err != nil {
				return true, fmt.Errorf("parse %s: %w", filepath.Join(l.dir, f), err)
			}
			cpus = list
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return nil, err
	}
	return cpus, nil
}

// QuotaCPUs returns the group's CFS bandwidth limit in CPUs (quota/period),
// the smallest along the path to the root since a parent's quota caps its
// children. 0 means no quota, as does a missing cpu controller.
func (g *Group) QuotaCPUs() (float64, error) {
	return cachedLimit(g, func(lc *limitCache) *expiring.Cache[struct{}, float64] { return &lc.quota }, g.readQuotaCPUs)
}

func (g *Group) readQuotaCPUs() (float64, error) {
	c := g.ctrl(ctrlCPU)
	if !c.ok() {
		return 0, nil
	}
	var best float64
	err := walkUp(c, func(l level) (bool, error) {
		q, err := levelQuota(l, g.v2)
		if err != nil {
			return true, err
		}
		if q > 0 && (best == 0 || q < best) {
			best = q
		}
		return false, nil
	})
	if err != nil {
		return 0, err
	}
	return best, nil
}

// dirQuota reads one level's quota in CPUs; 0 when it sets none or lacks the
// files (the v2 root has no cpu.max).
func levelQuota(l level, v2 bool) (float64, error) {
	dir := l.dir
	if v2 {
		s, err := l.read("cpu.max")
		if err != nil {
			if isNotExist(err) {
				return 0, nil
			}
			return 0, err
		}
		q, err := parseCPUMax(s)
		if err != nil {
			return 0, fmt.Errorf("parse %s: %w", filepath.Join(dir, "cpu.max"), err)
		}
		return q, nil
	}
	s, err := l.read("cpu.cfs_quota_us")
	if err != nil {
		if isNotExist(err) {
			return 0, nil
		}
		return 0, err
	}
	quota, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", filepath.Join(dir, "cpu.cfs_quota_us"), err)
	}
	if quota < 0 { // -1: no quota
		return 0, nil
	}
	period, err := l.readUint("cpu.cfs_period_us")
	if err != nil {
		return 0, err
	}
	q, err := quotaCPUs(uint64(quota), period)
	if err != nil {
		return 0, fmt.Errorf("quota in %s: %w", dir, err)
	}
	return q, nil
}

// CPUUsage returns the group's CPU time. v1 gives it per host CPU from
// cpuacct.usage_all (else cpuacct.usage_percpu, all counted as user; else
// the cpuacct.usage total). v2 has only totals (cpu.stat), so PerCPU is nil.
func (g *Group) CPUUsage() (view.CPUUsage, error) {
	if g.v2 {
		c, err := g.need(ctrlCPU)
		if err != nil {
			return view.CPUUsage{}, fmt.Errorf("cpu usage: %w", err)
		}
		usage, user, system, err := readCPUStat(c)
		if err != nil {
			return view.CPUUsage{}, err
		}
		if user+system == 0 {
			// Keep the total even if the split is missing.
			user = usage
		}
		return view.CPUUsage{Total: view.CPUTime{User: user, System: system}}, nil
	}

	c, err := g.need(ctrlCPUAcct)
	if err != nil {
		return view.CPUUsage{}, fmt.Errorf("cpu usage: %w", err)
	}
	for _, f := range []struct {
		name  string
		parse func(string) (map[int]view.CPUTime, error)
	}{
		{"cpuacct.usage_all", parseUsageAll},
		{"cpuacct.usage_percpu", parseUsagePercpu},
	} {
		var per map[int]view.CPUTime
		err := c.read(f.name, func(s string) error {
			var err error
			if per, err = f.parse(s); err != nil {
				return fmt.Errorf("parse %s: %w", filepath.Join(c.dir, f.name), err)
			}
			return nil
		})
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return view.CPUUsage{}, err
		}
		return view.CPUUsage{PerCPU: per, Total: sumCPU(per)}, nil
	}
	ns, err := c.readUint("cpuacct.usage")
	if err != nil {
		return view.CPUUsage{}, err
	}
	return view.CPUUsage{Total: view.CPUTime{User: nsDuration(ns)}}, nil
}

// CPUTime returns the group's total CPU time (v1 cpuacct.usage, v2 cpu.stat
// usage_usec), which uptime's idle figure subtracts.
func (g *Group) CPUTime() (time.Duration, error) {
	if g.v2 {
		c, err := g.need(ctrlCPU)
		if err != nil {
			return 0, fmt.Errorf("cpu time: %w", err)
		}
		usage, _, _, err := readCPUStat(c)
		return usage, err
	}
	c, err := g.need(ctrlCPUAcct)
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	ns, err := c.readUint("cpuacct.usage")
	if err != nil {
		return 0, err
	}
	return nsDuration(ns), nil
}

func readCPUStat(c ctrlDir) (usage, user, system time.Duration, err error) {
	err = c.read("cpu.stat", func(s string) error {
		var err error
		if usage, user, system, err = parseCPUStat(s); err != nil {
			return fmt.Errorf("parse %s: %w", filepath.Join(c.dir, "cpu.stat"), err)
		}
		return nil
	})
	if err != nil {
		return 0, 0, 0, err
	}
	return usage, user, system, nil
}
