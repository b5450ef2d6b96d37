package content

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// ErrHost says pid is not in a container of its own: sysinfo is the host's.
var ErrHost = errors.New("not in a container of its own")

// ErrGone says the container registered is not the one at that pid any
// more (its init exited, and the pid may belong to someone else).
var ErrGone = errors.New("the container's init has exited")

// Sysinfo computes sysinfo(2) for the container whose init is initPid,
// started startTicks after boot, from the figures its meminfo, swaps,
// uptime and loadavg are rendered from (see view.ContainerSysinfo); host is
// the host's own answer. The start time pins the container: a pid reused
// by another container's process resolves to that container, and is
// refused. An error means the caller should let the real syscall run.
func (f *Files) Sysinfo(initPid int, startTicks uint64, host view.Sysinfo) (view.Sysinfo, error) {
	c, err := f.Callers.Resolve(initPid)
	if err != nil {
		return host, err
	}
	if c == nil {
		return host, ErrHost
	}
	if c.InitPid != initPid || c.StartTicks != startTicks {
		return host, ErrGone
	}
	g := f.group(c)
	bp := hostBufs.Get().(*[]byte)
	defer hostBufs.Put(bp)
	meminfo, err := f.readHost(Meminfo, (*bp)[:0])
	*bp = meminfo[:0]
	if err != nil {
		return host, fmt.Errorf("read host meminfo: %w", err)
	}
	memory := g.Memory
	if !view.ShowsSwap(meminfo) {
		memory = g.MemoryWithoutSwap
	}
	m, err := memory()
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			f.Callers.Forget(c) // as for a render: its cgroup went away
		}
		return host, err
	}
	since := f.Now() - time.Duration(c.StartTicks)*time.Second/time.Duration(f.ClockTck)
	var load view.LoadAvg
	hasLoad := false
	if f.Load != nil {
		load, hasLoad = f.Load.Load(c, g)
	}
	return view.ContainerSysinfo(host, meminfo, m, since, load, hasLoad), nil
}
