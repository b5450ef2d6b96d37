package caller

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkResolve resolves a process in another pid namespace: "cached" is
// the per-read path (namespace link, cache lookup, pidfd poll), "uncached"
// the first read of a container (parent walk to the init, pidfd_open, its
// stat and cgroup files). It needs root to create the namespace.
func BenchmarkResolve(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to create a pid namespace")
	}
	init, child := benchNamespace(b)
	r, err := NewResolver("/proc", "")
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	c, err := r.Resolve(child)
	if err != nil || c == nil || c.InitPid != init {
		b.Fatalf("resolve %d: %+v, %v; want init %d", child, c, err, init)
	}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := r.Resolve(child); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c, err := r.Resolve(child)
			if err != nil {
				b.Fatal(err)
			}
			r.Forget(c)
		}
	})
	b.Run("host", func(b *testing.B) {
		b.ReportAllocs()
		self := os.Getpid()
		for b.Loop() {
			if _, err := r.Resolve(self); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchNamespace starts sh as the init of a new pid namespace with one child
// (sleep) and returns both host pids.
func benchNamespace(b *testing.B) (init, child int) {
	b.Helper()
	cmd := exec.Command("sh", "-c", "sleep 600 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start sh in a new pid namespace: %v", err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := strconv.Itoa(cmd.Process.Pid)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		out, _ := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
		if f := strings.Fields(string(out)); len(f) > 0 {
			child, _ = strconv.Atoi(f[0])
			return cmd.Process.Pid, child
		}
	}
	b.Fatal("the namespace's init started no child within 30s")
	return 0, 0
}
