package content

import (
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/caller"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/cgroup"
)

// BenchmarkRenderLive renders for a real container on this host (a sleep
// that is the init of its own pid namespace, in a memory cgroup with a
// limit), reading the real /proc and cgroup files as the daemon does per
// FUSE open. It needs root and cgroup v1's memory hierarchy or cgroup v2.
func BenchmarkRenderLive(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to create a cgroup and a pid namespace")
	}
	h, err := cgroup.Detect("")
	if err != nil {
		b.Skip(err)
	}
	parent := filepath.Join(h.Root, "memory")
	if h.V2 {
		parent = h.Root
	}
	dir := filepath.Join(parent, "lxcfs-oci-bench-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Skip(err)
	}
	limitFile := "memory.limit_in_bytes"
	if h.V2 {
		limitFile = "memory.max"
	}
	os.WriteFile(filepath.Join(dir, limitFile), []byte("1073741824"), 0o644)
	cmd := exec.Command("sleep", "3600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.Remove(dir)
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); os.Remove(dir) })
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		b.Fatal(err)
	}
	res, err := caller.NewResolver("/proc", "")
	if err != nil {
		b.Fatal(err)
	}
	defer res.Close()
	f := &Files{ProcDir: "/proc", SysDir: "/sys", Cgroups: h, Callers: res,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: BootTime, ClockTck: 100}
	for _, name := range []string{Meminfo, Stat, Cpuinfo, Uptime} {
		b.Run(filepath.Base(name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				out, err := f.Render(name, f.Identify(pid))
				if err != nil {
					b.Fatal(err)
				}
				f.Recycle(out) // as fusefs does once the file is closed
			}
		})
	}
	b.Run("resolve", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if c, err := res.Resolve(pid); err != nil || c == nil {
				b.Fatalf("resolve %d: %v, %v", pid, c, err)
			}
		}
	})
}
