package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const cgroupRoot = "/sys/fs/cgroup"

// benchControllers are the v1 hierarchies a benchmark container is placed
// in: what meminfo, swaps (memory), cpuinfo, stat, online (cpuset, cpuacct),
// uptime (cpuacct), diskstats (blkio) and CFS (cpu) read, for both daemons.
var benchControllers = []string{"memory", "cpuset", "cpu", "cpuacct", "blkio"}

// cgroup is one container's set of v1 cgroups, rel below each hierarchy.
type cgroup struct{ rel string }

func (c *cgroup) dir(ctrl string) string { return filepath.Join(cgroupRoot, ctrl, c.rel) }

// parentCgroup creates this run's parent cgroup (named after the driver's
// pid, so a later run can tell a leftover from a live run) in each hierarchy.
func (b *bench) parentCgroup() (string, error) {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "memory/memory.limit_in_bytes")); err != nil {
		return "", fmt.Errorf("the benchmark drives cgroup v1 hierarchies at %s (memory, cpuset, cpu, cpuacct, blkio): %w", cgroupRoot, err)
	}
	name := cgroupPrefix + strconv.Itoa(os.Getpid())
	for _, ctrl := range benchControllers {
		d := filepath.Join(cgroupRoot, ctrl, name)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("create cgroup %s: %w", d, err)
		}
		b.atExit(func() { rmdirRetry(d) })
		if ctrl == "cpuset" {
			// A v1 cpuset takes no task until it has CPUs and memory nodes.
			for _, f := range []string{"cpuset.mems", "cpuset.cpus"} {
				v, err := os.ReadFile(filepath.Join(cgroupRoot, "cpuset", f))
				if err != nil {
					return "", fmt.Errorf("read root %s: %w", f, err)
				}
				if err := writeCgroup(d, f, strings.TrimSpace(string(v))); err != nil {
					return "", err
				}
			}
		}
	}
	return name, nil
}

// newCgroup creates a container's cgroups below parent with a memory limit
// and a cpuset.
func (b *bench) newCgroup(parent, name string, memLimit uint64, cpus string) (*cgroup, error) {
	c := &cgroup{rel: filepath.Join(parent, name)}
	for _, ctrl := range benchControllers {
		d := c.dir(ctrl)
		if err := os.Mkdir(d, 0o755); err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", d, err)
		}
		b.atExit(func() { rmdirRetry(d) })
	}
	mems, err := os.ReadFile(filepath.Join(cgroupRoot, "cpuset", parent, "cpuset.mems"))
	if err != nil {
		return nil, fmt.Errorf("read cpuset.mems: %w", err)
	}
	for _, w := range []struct{ ctrl, file, val string }{
		{"cpuset", "cpuset.mems", strings.TrimSpace(string(mems))},
		{"cpuset", "cpuset.cpus", cpus},
		{"memory", "memory.limit_in_bytes", strconv.FormatUint(memLimit, 10)},
	} {
		if err := writeCgroup(c.dir(w.ctrl), w.file, w.val); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// join moves process pid (all its threads) into the cgroups.
func (c *cgroup) join(pid int) error {
	for _, ctrl := range benchControllers {
		if err := writeCgroup(c.dir(ctrl), "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

func writeCgroup(dir, file, val string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(val), 0o644); err != nil {
		return fmt.Errorf("set %s to %s: %w", filepath.Join(dir, file), val, err)
	}
	return nil
}

// rmdirRetry removes a cgroup, waiting briefly for killed tasks to be
// reaped out of it.
func rmdirRetry(d string) {
	for range 100 {
		if err := os.Remove(d); err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintf(os.Stderr, "lxcfs-bench: could not remove cgroup %s\n", d)
}
