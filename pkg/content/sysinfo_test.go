package content

import (
	"errors"
	"testing"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// TestSysinfo: the registered container's figures, the same as its
// meminfo and uptime; the host's answer, with an error, when the pid is
// the host's or now belongs to another init (a reused pid, or an init
// started at another time), so no container gets another's figures.
func TestSysinfo(t *testing.T) {
	hostSI := view.Sysinfo{Uptime: 4001, TotalRAM: 1 << 40, FreeRAM: 1 << 39, Procs: 321}
	c := ctr("/pod/ctr")
	f := files(t, "testdata/v2", &fakeResolver{c: c})
	got, err := f.Sysinfo(c.InitPid, c.StartTicks, hostSI)
	if err != nil {
		t.Fatal(err)
	}
	m, err := f.Render(Meminfo, 7)
	if err != nil {
		t.Fatal(err)
	}
	if want := kB(t, string(m), "MemTotal") << 10; got.TotalRAM != want || want != 128<<20 {
		t.Errorf("totalram = %d, want meminfo's MemTotal %d (128 MiB)", got.TotalRAM, want)
	}
	if want := kB(t, string(m), "MemFree") << 10; got.FreeRAM != want {
		t.Errorf("freeram = %d, want meminfo's MemFree %d", got.FreeRAM, want)
	}
	if got.Uptime != 11 { // 10.5 s, rounded up
		t.Errorf("uptime = %d, want 11", got.Uptime)
	}
	if got.Procs != hostSI.Procs {
		t.Errorf("procs = %d without a load sampler, want the host's %d", got.Procs, hostSI.Procs)
	}

	for _, tt := range []struct {
		name       string
		r          *fakeResolver
		pid        int
		startTicks uint64
		want       error
	}{
		{"pid reused by another container's init", &fakeResolver{c: ctr("/pod/ctr")}, 5151, c.StartTicks, ErrGone},
		{"init restarted at another time", &fakeResolver{c: ctr("/pod/ctr")}, c.InitPid, c.StartTicks + 1, ErrGone},
		{"pid now a host process", &fakeResolver{}, c.InitPid, c.StartTicks, ErrHost},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := files(t, "testdata/v2", tt.r)
			got, err := f.Sysinfo(tt.pid, tt.startTicks, hostSI)
			if !errors.Is(err, tt.want) || got != hostSI {
				t.Errorf("got %+v, %v; want the host's answer and %v", got, err, tt.want)
			}
		})
	}
}
