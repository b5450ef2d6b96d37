package fusefs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sized renders its current length, each render a new letter, so a copy
// can be told apart from any other render.
type sized struct {
	n, gen atomic.Int64
}

// Identify puts every reader in container 1: the size is the same for all.
func (s *sized) Identify(pid int) uint32 { return 1 }

func (s *sized) Render(name string, who uint32) ([]byte, error) {
	g := s.gen.Add(1)
	return []byte(strings.Repeat(string(rune('a'+g%26)), int(s.n.Load())-1) + "\n"), nil
}

// sendfileAll copies f to a file with sendfile(2), as busybox cat does:
// through the page cache, up to the kernel's inode size.
func sendfileAll(t *testing.T, f *os.File) []byte {
	t.Helper()
	out, err := os.Create(filepath.Join(t.TempDir(), "copy"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for {
		n, err := unix.Sendfile(int(out.Fd()), int(f.Fd()), nil, 1<<16)
		if err != nil {
			t.Fatalf("sendfile: %v", err)
		}
		if n == 0 {
			break
		}
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// openSnapshot opens path and returns the content the open rendered.
func openSnapshot(t *testing.T, s *sized, path string, n int) (*os.File, []byte) {
	t.Helper()
	s.n.Store(int64(n))
	f, err := openMount(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	g := s.gen.Load()
	return f, []byte(strings.Repeat(string(rune('a'+g%26)), n-1) + "\n")
}

// TestServeAttributesKeepOpenersSize: between a sendfile reader's open and
// its copy, attributes answered to someone else (a stat rendered for
// another caller, a path walk's LOOKUP answered with size 0, as the
// supervisor's re-attach makes after an upgrade) leave the reader's size
// alone: it copies its whole snapshot, not a cut or empty file. The stat
// itself still reports its caller's own size.
func TestServeAttributesKeepOpenersSize(t *testing.T) {
	s := &sized{}
	mp := mountTest(t, s, "proc/meminfo")
	path := filepath.Join(mp, "proc/meminfo")

	f, want := openSnapshot(t, s, path, 3000)
	s.n.Store(1000)
	st, err := os.Stat(path)
	if err != nil || st.Size() != 1000 {
		t.Errorf("stat: size %v (%v), want the caller's 1000", st.Size(), err)
	}
	if got := sendfileAll(t, f); !bytes.Equal(got, want) {
		t.Errorf("sendfile after another caller's stat copied %d bytes (%.8q), want the open's %d (%.8q)", len(got), got, len(want), want)
	}

	f, want = openSnapshot(t, s, path, 3000)
	// A path walk asks again (LOOKUP) once the name's entry has expired;
	// the kernel's entry timeout is time, so this waits for time to pass.
	for expired := time.Now().Add(entryValid + 250*time.Millisecond); time.Now().Before(expired); {
		time.Sleep(10 * time.Millisecond)
	}
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0) // a walk with no GETATTR after it, as open_tree(2)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if got := sendfileAll(t, f); !bytes.Equal(got, want) {
		t.Errorf("sendfile after a LOOKUP copied %d bytes (%.8q), want the open's %d (%.8q)", len(got), got, len(want), want)
	}
}

// TestPassthroughLookupKeepsOpenersSize: a host file passed through is
// looked up again on every walk (its directory is fixed, entry valid 0),
// and each LOOKUP answers size 0: a sendfile reader that opened it before
// another walk still copies the whole file.
func TestPassthroughLookupKeepsOpenersSize(t *testing.T) {
	r := &ptRenderer{host: hostCPUDir(t)}
	mp := mountTest(t, r, "sys/devices/system/cpu/online")
	path := filepath.Join(mp, "sys/devices/system/cpu/kernel_max")
	f, err := openMount(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if got := sendfileAll(t, f); string(got) != "8191\n" {
		t.Errorf("sendfile after a LOOKUP copied %q, want the host's %q", got, "8191\n")
	}
}
