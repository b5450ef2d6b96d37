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
	"sync"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/caller"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/cgroup"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/expiring"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/reread"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
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
	Vmstat    = "proc/vmstat"
	CPUDir    = "sys/devices/system/cpu"
	Online    = CPUDir + "/online"
	Possible  = CPUDir + "/possible"
	Present   = CPUDir + "/present"
	Offline   = CPUDir + "/offline"

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
	// Lookup returns the container that Resolve (here or in another
	// process serving the same connection) gave the ID id, while it lives.
	Lookup(id uint32) (*caller.Container, error)
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
	Stats    *stats.Region        // counts host fallbacks; nil counts nothing

	// LimitTTL is how long a container's limits (memory and swap limits,
	// cpuset, CFS quota) and the host's online CPU list are reused before
	// they are read again: 0 means DefaultLimitTTL, a negative value reads
	// them on every render. Usage and time counters are read every time.
	LimitTTL time.Duration

	// HostMaxAge lets one read of a host file (/proc/meminfo, stat, ...)
	// serve the renders that follow it for this long; 0 reads it for every
	// render. The kernel updates these files more coarsely than a render
	// rate under load: /proc/stat and /proc/uptime count 10 ms ticks, and
	// /proc/meminfo's totals take in per-CPU deltas in batches (at least
	// every second), so a few milliseconds of reuse cannot be seen, while
	// it saves generating the file again for each of many containers.
	// A container's usage and time counters are always read afresh.
	HostMaxAge time.Duration

	// MemStatMaxAge lets one read of a container's memory.stat serve its
	// renders that follow for this long; 0 reads it for every render. The
	// kernel folds per-CPU changes into memory.stat only in batches (see
	// cgroup.Group.WithStatMaxAge), and generating it was the larger part
	// of a meminfo render for a container whose readers read in a loop.
	// Memory usage, the exact figure, is read on every render.
	MemStatMaxAge time.Duration

	// The host's files, kept open and re-read on every render: those the
	// kernel prints in one record, and the rest (see reread.OpenSingle).
	hostOnce   sync.Once
	hostSingle reread.Set
	hostMulti  reread.Set

	online expiring.Cache[struct{}, []int] // host's online CPUs
}

// DefaultLimitTTL bounds how stale a container's limits may be: a limit
// changed under a running container (docker update -m) shows within it.
// Reading them afresh meant walking every level up to the hierarchy root
// for every file and limit on every read, the larger part of a render.
const DefaultLimitTTL = time.Second

func (f *Files) limitTTL() time.Duration {
	if f.LimitTTL == 0 {
		return DefaultLimitTTL
	}
	return f.LimitTTL
}

// group returns c's cgroups, made once per container (caller.Container
// keeps them) with this Files' settings.
func (f *Files) group(c *caller.Container) *cgroup.Group {
	return c.Group(func() *cgroup.Group {
		g := f.Cgroups.ForPaths(c.Cgroups).WithOpenFiles()
		if ttl := f.limitTTL(); ttl > 0 {
			g = g.WithLimitCache(ttl)
		}
		return g.WithStatMaxAge(f.MemStatMaxAge)
	})
}

// List returns the files to serve on this host: the fixed set, plus the
// pressure files the host kernel has (PSI is optional).
func (f *Files) List() []string {
	out := []string{Cpuinfo, Diskstats, Loadavg, Meminfo, Stat, Swaps, Uptime, Vmstat, Online, Possible, Present, Offline}
	for _, r := range pressureResources {
		if _, err := os.Stat(filepath.Join(f.ProcDir, "pressure", r)); err == nil {
			out = append(out, pressurePrefix+r)
		}
	}
	return out
}

// hostFile maps a served name to the host file it virtualizes, as a
// directory and a name below it. Names are the clean constants above.
func (f *Files) hostFile(name string) (dir, file string) {
	if file, ok := strings.CutPrefix(name, "sys/"); ok {
		return f.SysDir, file
	}
	return f.ProcDir, strings.TrimPrefix(name, "proc/")
}

// readHost appends the host's file for name to buf.
func (f *Files) readHost(name string, buf []byte) ([]byte, error) {
	dir, file := f.hostFile(name)
	switch name {
	case Cpuinfo, Diskstats, Swaps, Vmstat:
		return f.hostMulti.ReadIn(dir, file, buf, f.HostMaxAge)
	}
	f.hostOnce.Do(func() { f.hostSingle.Single = true })
	return f.hostSingle.ReadIn(dir, file, buf, f.HostMaxAge)
}

// Identify implements fusefs.Renderer: the ID of pid's container, 0 (the
// host's view) for a host process, or caller.Unresolved (also the host's
// view, counted as a fallback) for a reader that cannot be resolved.
func (f *Files) Identify(pid int) uint32 {
	c, err := f.Callers.Resolve(pid)
	if err != nil {
		// Readers that exit before their open is served land here; it is
		// routine, so not a warning.
		f.Log.Debug("reader not resolved; serving the host file", "pid", pid, "err", err)
		return caller.Unresolved
	}
	if c == nil {
		return 0
	}
	return c.ID
}

// Alive implements fusefs.Scoper: whether container who (registered by the
// hook, or resolved from a reader) still runs.
func (f *Files) Alive(who uint32) bool {
	if f.Spare(who) {
		return true
	}
	_, err := f.Callers.Lookup(who)
	return err == nil
}

// Spare implements fusefs.Spares: whether who is an ID reserved ahead of
// registration (caller.Resolver.Reserve) that no container has yet.
func (f *Files) Spare(who uint32) bool {
	sp, ok := f.Callers.(interface{ Spare(uint32) bool })
	return ok && sp.Spare(who)
}

// Render implements fusefs.Renderer: name's content for the container who
// (an ID from Identify), or the host's for 0. An error means even the host
// file could not be read. The answer is rendered into a buffer that Recycle
// takes back.
func (f *Files) Render(name string, who uint32) ([]byte, error) {
	bp := hostBufs.Get().(*[]byte)
	host, err := f.readHost(name, (*bp)[:0])
	*bp = host[:0]
	if err != nil {
		hostBufs.Put(bp)
		return nil, fmt.Errorf("read host file for %s: %w", name, err)
	}
	op := outBufs.Get().(*[]byte)
	out := f.renderFor(name, who, host, (*op)[:0])
	hostBufs.Put(bp)
	return out, nil
}

// Recycle implements fusefs.Recycler: b, an answer of Render's that nothing
// reads any more, is rendered into again. Every read of a served file
// renders one, so without this each was new garbage, the larger part of
// the daemon's.
func (f *Files) Recycle(b []byte) {
	if cap(b) < minPooledOut || cap(b) > maxPooledOut {
		return // the pool keeps buffers a typical answer fits in
	}
	b = b[:0]
	outBufs.Put(&b)
}

// pageSize converts memory.stat's bytes to /proc/vmstat's pages.
var pageSize = uint64(os.Getpagesize())

// outBufs holds the buffers answers are rendered into (see Recycle).
var outBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

const (
	minPooledOut = 1 << 10
	maxPooledOut = 64 << 10
)

// Fallback implements fusefs.Fallbacker: the host's file, which needs no
// cgroup read, for a reader whose render outlived the daemon's timeout.
func (f *Files) Fallback(name string) ([]byte, error) {
	host, err := f.readHost(name, nil)
	if err != nil {
		return nil, fmt.Errorf("read host file for %s: %w", name, err)
	}
	return host, nil
}

// renderFor appends to dst name's content for the container who, from the
// host's.
func (f *Files) renderFor(name string, who uint32, host, dst []byte) []byte {
	if who == 0 {
		return append(dst, host...)
	}
	c, err := f.Callers.Lookup(who)
	if err != nil {
		// The container exited while a file of it stayed open (passed to
		// a host process, say): nobody else's figures, the host's.
		f.Log.Debug("container gone; serving the host file", "file", name, "id", who, "err", err)
		f.Stats.Fallback(name, stats.Unresolved)
		return append(dst, host...)
	}
	g := f.group(c)
	out, err := f.render(dst, name, host, c, g)
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, os.ErrNotExist) {
			// A cgroup removed mid-read, or a controller the host lacks.
			level = slog.LevelDebug
			f.Callers.Forget(c)
		}
		f.Log.Log(context.Background(), level, "container view failed; serving the host file",
			"file", name, "id", who, "init", c.InitPid, "err", err)
		f.Stats.Fallback(name, stats.ViewError)
		return append(dst, host...)
	}
	return out
}

// hostBufs holds the buffers host files are read into: every render reads
// one, and the answer is rendered into a buffer of its own (fusefs keeps it
// for the open file), so the host's copy need not outlive the render.
var hostBufs = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

// render appends name's container view to dst. On error dst is not used.
func (f *Files) render(dst []byte, name string, host []byte, c *caller.Container, g *cgroup.Group) ([]byte, error) {
	switch name {
	case Meminfo:
		memory := g.Memory
		if !view.ShowsSwap(host) {
			memory = g.MemoryWithoutSwap // most Kubernetes nodes: one file fewer
		}
		m, err := memory()
		if err != nil {
			return nil, err
		}
		return view.AppendMeminfo(dst, host, m), nil
	case Swaps:
		m, err := g.Memory()
		if err != nil {
			return nil, err
		}
		bp := hostBufs.Get().(*[]byte)
		defer hostBufs.Put(bp)
		meminfo, err := f.readHost(Meminfo, (*bp)[:0])
		*bp = meminfo[:0]
		if err != nil {
			return nil, fmt.Errorf("read host meminfo: %w", err)
		}
		return view.AppendSwaps(dst, host, meminfo, m), nil
	case Cpuinfo:
		cpus, err := f.visibleCPUs(g)
		if err != nil {
			return nil, err
		}
		return view.AppendCpuinfo(dst, host, cpus), nil
	case Online, Possible, Present:
		// One list for the three: a container's CPUs are all there and
		// online, and tools size their tables from possible (glibc's
		// get_nprocs_conf, getconf _NPROCESSORS_CONF) or present (lscpu).
		cpus, err := f.visibleCPUs(g)
		if err != nil {
			return nil, err
		}
		if out := view.Online(cpus); out != nil {
			return append(dst, out...), nil
		}
		return append(dst, host...), nil
	case Offline:
		cpus, err := f.visibleCPUs(g)
		if err != nil {
			return nil, err
		}
		if len(cpus) > 0 {
			return append(dst, '\n'), nil // none of its CPUs is offline
		}
		return append(dst, host...), nil
	case Stat:
		cpus, err := f.visibleCPUs(g)
		if err != nil {
			return nil, err
		}
		u, err := g.CPUUsage()
		if err != nil {
			return nil, err
		}
		return view.AppendStat(dst, host, cpus, u), nil
	case Uptime:
		cpu, err := g.CPUTime()
		if err != nil {
			return nil, err
		}
		since := f.Now() - time.Duration(c.StartTicks)*time.Second/time.Duration(f.ClockTck)
		return append(dst, view.Uptime(since, cpu)...), nil
	case Loadavg:
		if f.Load == nil {
			return append(dst, host...), nil
		}
		l, ok := f.Load.Load(c, g)
		if !ok {
			return append(dst, host...), nil
		}
		return append(dst, view.Loadavg(l)...), nil
	case Vmstat:
		st, err := g.MemStatValues()
		if err != nil {
			return nil, err
		}
		return view.AppendVmstat(dst, host, st, pageSize), nil
	case Diskstats:
		io, err := g.IO()
		if err != nil {
			return nil, err
		}
		return view.AppendDiskstats(dst, host, io), nil
	}
	if res, ok := strings.CutPrefix(name, pressurePrefix); ok {
		p, err := g.Pressure(res)
		if err != nil {
			return nil, err
		}
		return append(dst, p...), nil
	}
	return nil, fmt.Errorf("no view for %s", name)
}

// HostDir implements fusefs.Passthrough: the served CPU directory also shows
// the host's /sys/devices/system/cpu entries (cpuN/, cpufreq, ...).
func (f *Files) HostDir(dir string) string {
	if dir == CPUDir {
		return filepath.Join(f.SysDir, "devices/system/cpu")
	}
	return ""
}

// Hidden implements fusefs.Passthrough: the cpuN directories of the CPUs a
// reader's container does not see (view.CPUDirHidden), named by the same
// decision as online and cpuinfo. A host reader, or one whose container's
// CPUs cannot be read, sees every host entry, as it sees the host's files.
func (f *Files) Hidden(dir string, who uint32) func(name string) bool {
	if dir != CPUDir || who == 0 {
		return nil
	}
	c, err := f.Callers.Lookup(who)
	if err != nil {
		return nil
	}
	cpus, err := f.visibleCPUs(f.group(c))
	if err != nil {
		f.Log.Debug("container CPUs not read; listing the host's CPU directories", "id", who, "init", c.InitPid, "err", err)
		return nil
	}
	return func(name string) bool { return view.CPUDirHidden(name, cpus) }
}

// visibleCPUs is the host CPUs the container sees: its cpuset, trimmed to
// the CPU quota in the CFS view.
func (f *Files) visibleCPUs(g *cgroup.Group) ([]int, error) {
	hostCPUs, err := f.hostCPUs()
	if err != nil {
		return nil, err
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

// hostCPUs returns the host's online CPUs, read at most once per LimitTTL:
// they change only on CPU hotplug. The slice is shared; do not modify it.
func (f *Files) hostCPUs() ([]int, error) {
	return f.online.Get(struct{}{}, f.Cgroups.Now(), f.limitTTL(), func() ([]int, error) {
		onlinePath := filepath.Join(f.SysDir, "devices/system/cpu/online")
		b, err := os.ReadFile(onlinePath)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", onlinePath, err)
		}
		cpus, err := view.ParseCPUList(string(b))
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", onlinePath, err)
		}
		return cpus, nil
	})
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
