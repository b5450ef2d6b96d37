package fusefs

import (
	"bytes"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
)

// fixedContent answers every file with the same bytes, so what is measured
// is the FUSE round trips and this package's own work.
type fixedContent []byte

func (f fixedContent) Identify(int) uint32                   { return 0 }
func (f fixedContent) Render(string, uint32) ([]byte, error) { return f, nil }

// BenchmarkOpenReadClose is one reader's open / read to EOF / close of a
// served file of meminfo's size, as monitoring agents do it; allocations
// count the serving goroutines' too, which is what the GC pays for.
func BenchmarkOpenReadClose(b *testing.B) {
	benchOpenReadClose(b, mountTest(b, fixedContent(bytes.Repeat([]byte("x"), 1400)), "proc/meminfo"))
}

// BenchmarkOpenReadCloseCounted is the same with the daemon's counters on,
// as lxcfs-fused serves: counting must add no allocation and next to no time.
func BenchmarkOpenReadCloseCounted(b *testing.B) {
	st, err := stats.Create(stats.Path(b.TempDir()), []string{"proc/meminfo"})
	if err != nil {
		b.Fatal(err)
	}
	benchOpenReadClose(b, mountTestWith(b, fixedContent(bytes.Repeat([]byte("x"), 1400)), func(f *FS) { f.Stats = st }, "proc/meminfo"))
}

func benchOpenReadClose(b *testing.B, mp string) {
	path := filepath.Join(mp, "proc/meminfo")
	buf := make([]byte, 4096)
	b.ReportAllocs()
	for b.Loop() {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			b.Fatal(err)
		}
		for {
			n, err := unix.Read(fd, buf)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
		unix.Close(fd)
	}
}
