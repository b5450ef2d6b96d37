package reread

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/internal/fakeclock"
)

// TestReadsAfresh: a kept descriptor gives the current content on every
// read, for a kernel-generated file and for a regular one.
func TestReadsAfresh(t *testing.T) {
	up := OpenSingle("/proc/uptime")
	defer up.Close()
	a, err := up.Read(nil)
	if err != nil {
		t.Fatal(err)
	}
	// uptime counts hundredths: a later read must show a later uptime.
	var b []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		if b, err = up.Read(nil); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if bytes.Equal(a, b) || len(strings.Fields(string(b))) != 2 {
		t.Fatalf("reads for up to 10s through one descriptor: %q then %q; want two different uptimes", a, b)
	}

	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, []byte("first version\n"), 0o644)
	f := Open(path)
	defer f.Close()
	if got, _ := f.Read(nil); string(got) != "first version\n" {
		t.Fatalf("read %q", got)
	}
	os.WriteFile(path, []byte("2nd\n"), 0o644) // truncates the same inode
	if got, err := f.Read([]byte("keep:")); string(got) != "keep:2nd\n" || err != nil {
		t.Fatalf("after rewrite: %q, %v; want the new content appended to buf", got, err)
	}
}

// TestLargeFiles: files larger than one read come back whole, single-record
// or not.
func TestLargeFiles(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789abcdef"), 2000) // 32000 bytes
	path := filepath.Join(t.TempDir(), "big")
	os.WriteFile(path, want, 0o644)
	for _, f := range []*File{Open(path), OpenSingle(path)} {
		got, err := f.Read(make([]byte, 0, 100))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("single=%v: read %d bytes, %v; want %d", f.single, len(got), err, len(want))
		}
		f.Close()
	}
	// A multi-record seq_file returns less than asked before its end.
	wantMaps, _ := os.ReadFile("/proc/self/mountinfo")
	mi := Open("/proc/self/mountinfo")
	defer mi.Close()
	got, err := mi.Read(nil)
	if err != nil || !bytes.Equal(got, wantMaps) {
		t.Errorf("mountinfo: %d bytes, %v; want %d", len(got), err, len(wantMaps))
	}
}

func TestMissingAndClosed(t *testing.T) {
	dir := t.TempDir()
	var s Set
	if _, err := s.Read(filepath.Join(dir, "nope"), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v, want fs.ErrNotExist", err)
	}
	if s.Len() != 0 {
		t.Fatalf("set remembers %d missing paths, want 0", s.Len())
	}
	path := filepath.Join(dir, "f")
	os.WriteFile(path, []byte("x"), 0o644)
	before := Kept()
	if got, err := s.Read(path, nil); string(got) != "x" || err != nil {
		t.Fatalf("read %q, %v", got, err)
	}
	if Kept() != before+1 || s.Len() != 1 {
		t.Fatalf("kept %d (was %d), set holds %d: want one more descriptor for one path", Kept(), before, s.Len())
	}
	s.Close()
	if Kept() != before {
		t.Fatalf("kept %d after Close, want %d", Kept(), before)
	}
	if got, err := s.Read(path, nil); string(got) != "x" || err != nil || Kept() != before {
		t.Fatalf("read after Close: %q, %v, kept %d; want plain reads, nothing kept", got, err, Kept())
	}
	var nilSet *Set
	if got, err := nilSet.Read(path, nil); string(got) != "x" || err != nil {
		t.Fatalf("nil set: %q, %v", got, err)
	}
}

func TestBudget(t *testing.T) {
	defer SetLimit(SetLimit(0))
	before := Kept()
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, []byte("x"), 0o644)
	f := Open(path)
	defer f.Close()
	if got, err := f.Read(nil); string(got) != "x" || err != nil || Kept() != before {
		t.Fatalf("over budget: %q, %v, kept %d; want a plain read, nothing kept", got, err, Kept())
	}
}

// TestRemovedCgroup: the kept descriptor of a deleted cgroup's file answers
// ENODEV; the read then reports the file gone, and a new cgroup of the same
// name is read through a fresh open.
func TestRemovedCgroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
	parent := "/sys/fs/cgroup/memory"
	file := "memory.usage_in_bytes"
	if _, err := os.Stat(filepath.Join(parent, file)); err != nil {
		parent, file = "/sys/fs/cgroup", "memory.current" // cgroup v2
	}
	if _, err := os.Stat(filepath.Join(parent, "cgroup.procs")); err != nil {
		t.Skipf("no cgroup file system at %s", parent)
	}
	dir := filepath.Join(parent, "reread-test")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	f := OpenSingle(filepath.Join(dir, file))
	defer f.Close()
	if got, err := f.Read(nil); err != nil || strings.TrimSpace(string(got)) != "0" {
		t.Fatalf("read %s: %q, %v; want 0", file, got, err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Read(nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("read after rmdir: %q, %v; want fs.ErrNotExist", got, err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := f.Read(nil); err != nil || strings.TrimSpace(string(got)) != "0" {
		t.Fatalf("read of the recreated cgroup: %q, %v; want 0", got, err)
	}
}

// TestReadWithin: a read younger than maxAge is handed out again, an older
// one is not, and maxAge 0 always reads.
func TestReadWithin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, []byte("one"), 0o644)
	f := Open(path)
	defer f.Close()
	clock := fakeclock.New()
	f.clock = clock.Now
	const age = 100 * time.Millisecond
	if got, err := f.ReadWithin([]byte("a:"), age); string(got) != "a:one" || err != nil {
		t.Fatalf("first read: %q, %v", got, err)
	}
	os.WriteFile(path, []byte("two"), 0o644)
	clock.Add(age - time.Nanosecond)
	if got, _ := f.ReadWithin([]byte("b:"), age); string(got) != "b:one" {
		t.Errorf("read within %v: %q, want the reused b:one", age, got)
	}
	if got, _ := f.ReadWithin(nil, 0); string(got) != "two" {
		t.Errorf("maxAge 0: %q, want a fresh read", got)
	}
	clock.Add(time.Nanosecond)
	if got, _ := f.ReadWithin(nil, age); string(got) != "two" {
		t.Errorf("read after %v: %q, want the new content", age, got)
	}
}

// TestConcurrentReaders: readers of one File at once each get the whole
// file, Close in the middle of it fails none of them, and afterwards no
// descriptor is left kept.
func TestConcurrentReaders(t *testing.T) {
	want := bytes.Repeat([]byte("line of a kernel file\n"), 300)
	path := filepath.Join(t.TempDir(), "f")
	os.WriteFile(path, want, 0o644)
	before := Kept()
	f := Open(path)
	var wg sync.WaitGroup
	var done atomic.Int64
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				done.Add(1)
				got, err := f.ReadWithin(nil, time.Duration(i%2)*time.Millisecond)
				if err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("reader %d, read %d: %d bytes, %v", i, j, len(got), err)
					return
				}
			}
		}()
	}
	// Close once the readers are under way, in the middle of their reads.
	for deadline := time.Now().Add(30 * time.Second); done.Load() < 16 && time.Now().Before(deadline); {
		runtime.Gosched()
	}
	f.Close()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if Kept() != before {
		t.Errorf("%d descriptors kept after Close and the last read, want %d", Kept(), before)
	}
}
