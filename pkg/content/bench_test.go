package content

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/internal/fakeclock"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/cgroup"
)

// BenchmarkRender renders each file for a container of the fixture tree,
// as the daemon does per FUSE open: host file, resolution (a fake, here),
// cgroup figures, view. "uncached" reads the limits on every render, as
// before the limit cache.
func BenchmarkRender(b *testing.B) {
	for _, mode := range []struct {
		name string
		ttl  time.Duration
	}{{"cached", 0}, {"uncached", -1}} {
		for _, name := range []string{Meminfo, Stat, Cpuinfo, Uptime, Online, Diskstats, Swaps} {
			b.Run(mode.name+"/"+filepath.Base(name), func(b *testing.B) {
				h, err := cgroup.Detect("testdata/v2")
				if err != nil {
					b.Fatal(err)
				}
				f := &Files{
					ProcDir: "testdata/host/proc", SysDir: "testdata/host/sys",
					Cgroups: h, Callers: &fakeResolver{c: ctr("/pod/ctr")},
					Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
					Now:      BootTime,
					ClockTck: 100,
					LimitTTL: mode.ttl,
				}
				b.ReportAllocs()
				for b.Loop() {
					out, err := f.Render(name, 7)
					if err != nil {
						b.Fatal(err)
					}
					f.Recycle(out) // as fusefs does once the file is closed
				}
			})
		}
	}
}

// TestLimitTTL: a memory limit changed under a container shows in its
// meminfo within LimitTTL, and its usage at once. The cgroup clock is moved
// by hand, so the test asserts the same on a slow machine.
func TestLimitTTL(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/v2")); err != nil {
		t.Fatal(err)
	}
	f := files(t, dir, &fakeResolver{c: ctr("/pod/ctr")})
	clock := fakeclock.New()
	f.Cgroups.Clock = clock.Now
	const ttl = 100 * time.Millisecond
	f.LimitTTL = ttl
	render := func() string {
		t.Helper()
		b, err := f.Render(Meminfo, 7)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := kB(t, render(), "MemTotal"); got != 131072 {
		t.Fatalf("MemTotal = %d, want the parent's 131072", got)
	}
	for file, content := range map[string]string{"pod/memory.max": "max\n", "pod/ctr/memory.max": "67108864\n", "pod/ctr/memory.current": "16777216\n"} {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(ttl - time.Nanosecond)
	m := render()
	if total, free := kB(t, m, "MemTotal"), kB(t, m, "MemFree"); total-free != 16384 {
		t.Errorf("MemTotal-MemFree = %d kB right after usage changed, want 16384: usage must not be cached", total-free)
	}
	if got := kB(t, m, "MemTotal"); got != 131072 {
		t.Errorf("MemTotal = %d within the TTL, want the cached 131072", got)
	}
	clock.Add(time.Nanosecond)
	if got := kB(t, render(), "MemTotal"); got != 65536 {
		t.Errorf("MemTotal = %d one TTL after the limit changed to 64 MiB, want 65536", got)
	}
}

// TestGroupKeptWithContainer: the cgroup handles (and their limit cache)
// are built once per resolved container and reused by every render.
func TestGroupKeptWithContainer(t *testing.T) {
	c := ctr("/pod/ctr")
	f := files(t, "testdata/v2", &fakeResolver{c: c})
	if _, err := f.Render(Meminfo, 7); err != nil {
		t.Fatal(err)
	}
	made := 0
	g := c.Group(func() *cgroup.Group { made++; return nil })
	if made != 0 || g == nil {
		t.Fatalf("no group kept with the container after a render")
	}
	if _, err := f.Render(Stat, 7); err != nil {
		t.Fatal(err)
	}
	if f.group(c) != g {
		t.Errorf("second render built a new group")
	}
}
