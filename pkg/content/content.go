// Package content decides what each served file says to a given reader: it
// resolves the reader's container, reads the figures it needs from the
// container's cgroups and the host's file, and hands both to pkg/view. Any
// failure along the way gives the reader the host's file, never another
// container's.
package content

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/caller"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/cgroup"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
	"golang.org/x/sys/unix"
)

// The files served, as paths below the mount, and the host file each one
// stands for. The layout is LXCFS's, so existing mount scripts work.
const (
	Cpuinfo   = "proc/cpuinfo"
	Diskstats = "proc/diskstats"
	Loadavg   = "proc/loadavg"
	Meminfo   = "proc/meminfo"
	Stat      = "proc/stat"
	Swaps     = "proc/swaps"
	Uptime    = "proc/uptime"
	Online    = "sys/devices/system/cpu/online"

	pressurePrefix = "proc/pressure/"
)

var pressureResources = []string{"cpu", "io", "memory"}

// LoadSource gives a container's load average. The sampler in pkg/loadavg
// implements it; nil means loadavg is the host's.
type LoadSource interface {
	Load(c *caller.Container, g *cgroup.Group) (view.LoadAvg, bool)
}

// Resolver finds the container of a reading process; nil means the host.
// *caller.Resolver is the real one.
type Resolver interface {
	Resolve(pid int) (*caller.Container, error)
	// Forget drops what is cached about a container whose cgroups have
	// vanished (its init moved elsewhere), so the next read looks again.
	Forget(c *caller.Container)
}

// Files renders the served files. The zero value is not usable; set the
// fields, as cmd/lxcfs-fused does.
type Files struct {
	ProcDir  string // host /proc
	SysDir   string // host /sys
	Cgroups  *cgroup.Hierarchy
	Callers  Resolver
	CFS      bool       // count CPUs from the CPU quota too (--enable-cfs)
	Load     LoadSource // nil: host loadavg
	Log      *slog.Logger
	Now      func() time.Duration // CLOCK_BOOTTIME; tests override
	ClockTck uint64               // USER_HZ of /proc/PID/stat start times

	// Timeout bounds the container part of a render (cgroup reads, which
	// can hang on a wedged kernel file); past it the reader gets the host's
	// file. 0 waits forever.
	Timeout time.Duration

	inflight atomic.Int64 // container renders still running, stuck ones included
}

// maxInflight caps container renders in progress: when cgroup reads hang,
// the goroutines left behind stop growing and readers get host files at once.
const maxInflight = 256

// List returns the files to serve on this host: the fixed set, plus the
// pressure files the host kernel has (PSI is optional).
func (f *Files) List() []string {
	out := []string{Cpuinfo, Diskstats, Loadavg, Meminfo, Stat, Swaps, Uptime, Online}
	for _, r := range pressureResources {
		if _, err := os.Stat(filepath.Join(f.ProcDir, "pressure", r)); err == nil {
			out = append(out, pressurePrefix+r)
		}
	}
	return out
}

// hostPath maps a served name to the host file it virtualizes.
func (f *Files) hostPath(name string) string {
	if name == Online {
		return filepath.Join(f.SysDir, "devices/system/cpu/online")
	}
	rel, _ := filepath.Rel("proc", name)
	return filepath.Join(f.ProcDir, rel)
}

// Render implements fusefs.Renderer. An error means even the host file could
// not be read.
func (f *Files) Render(name string, pid int) ([]byte, error) {
	host, err := os.ReadFile(f.hostPath(name))
	if err != nil {
		return nil, fmt.Errorf("read host file for %s: %w", name, err)
	}
	c, err := f.Callers.Resolve(pid)
	if err != nil {
		// Readers that exit before their read is served land here; it is
		// routine, so not a warning.
		f.Log.Debug("reader not resolved; serving the host file", "file", name, "pid", pid, "err", err)
		return host, nil
	}
	if c == nil {
		return host, nil
	}
	g := f.Cgroups.ForPaths(c.Cgroups)
	out, err := f.bounded(name, host, c, g)
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, os.ErrNotExist) {
			// A cgroup removed mid-read, or a controller the host lacks.
			level = slog.LevelDebug
			f.Callers.Forget(c)
		}
		f.Log.Log(context.Background(), level, "container view failed; serving the host file",
			"file", name, "pid", pid, "init", c.InitPid, "err", err)
		return host, nil
	}
	return out, nil
}

// errTimeout marks a container render that took longer than Files.Timeout.
var errTimeout = errors.New("timed out reading the container's cgroups")

// bounded runs render within f.Timeout, leaving a stuck render behind.
func (f *Files) bounded(name string, host []byte, c *caller.Container, g *cgroup.Group) ([]byte, error) {
	if f.Timeout <= 0 {
		return f.render(name, host, c, g)
	}
	if f.inflight.Load() >= maxInflight {
		return nil, fmt.Errorf("%w: %d renders already stuck", errTimeout, maxInflight)
	}
	type result struct {
		out []byte
		err error
	}
	ch := make(chan result, 1)
	f.inflight.Add(1)
	go func() {
		defer f.inflight.Add(-1)
		out, err := f.render(name, host, c, g)
		ch <- result{out, err}
	}()
	t := time.NewTimer(f.Timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.out, r.err
	case <-t.C:
		return nil, fmt.Errorf("%w after %v", errTimeout, f.Timeout)
	}
}

func (f *Files) render(name string, host []byte, c *caller.Container, g *cgroup.Group) ([]byte, error) {
	switch name {
	case Meminfo:
		m, err := g.Memory()
		if err != nil {
			return nil, err
		}
		return view.Meminfo(host, m), nil
	case Swaps:
		m, err := g.Memory()
		if err != nil {
			return nil, err
		}
		meminfo, err := os.ReadFile(filepath.Join(f.ProcDir, "meminfo"))
		if err != nil {
			return nil, fmt.Errorf("read host meminfo: %w", err)
		}
		return view.Swaps(host, meminfo, m), nil
	case Cpuinfo:
		cpus, err := f.visibleCPUs(g)
		if err != nil {
			return nil, err
		}
		return view.Cpuinfo(host, cpus), nil
	case Online:
		cpus, err := f.visibleCPUs(g)
		if err != nil {
			return nil, err
		}
		if out := view.Online(cpus, f.CFS); out != nil {
			return out, nil
		}
		return host, nil
	case Stat:
		cpus, err := f.visibleCPUs(g)
		if err != nil {
			return nil, err
		}
		u, err := g.CPUUsage()
		if err != nil {
			return nil, err
		}
		return view.Stat(host, cpus, u), nil
	case Uptime:
		cpu, err := g.CPUTime()
		if err != nil {
			return nil, err
		}
		since := f.Now() - time.Duration(c.StartTicks)*time.Second/time.Duration(f.ClockTck)
		return view.Uptime(since, cpu), nil
	case Loadavg:
		if f.Load == nil {
			return host, nil
		}
		l, ok := f.Load.Load(c, g)
		if !ok {
			return host, nil
		}
		return view.Loadavg(l), nil
	case Diskstats:
		io, err := g.IO()
		if err != nil {
			return nil, err
		}
		return view.Diskstats(host, io), nil
	}
	if res, ok := strings.CutPrefix(name, pressurePrefix); ok {
		return g.Pressure(res)
	}
	return nil, fmt.Errorf("no view for %s", name)
}

// visibleCPUs is the host CPUs the container sees: its cpuset, trimmed to
// the CPU quota in the CFS view.
func (f *Files) visibleCPUs(g *cgroup.Group) ([]int, error) {
	onlinePath := filepath.Join(f.SysDir, "devices/system/cpu/online")
	b, err := os.ReadFile(onlinePath)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", onlinePath, err)
	}
	hostCPUs, err := view.ParseCPUList(string(b))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", onlinePath, err)
	}
	cpuset, err := g.CPUSet()
	if err != nil {
		return nil, err
	}
	var quota float64
	if f.CFS {
		if quota, err = g.QuotaCPUs(); err != nil {
			return nil, err
		}
	}
	return view.VisibleCPUs(cpuset, quota, hostCPUs, f.CFS), nil
}

// BootTime reads CLOCK_BOOTTIME, the clock /proc/uptime and process start
// times count from.
func BootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
