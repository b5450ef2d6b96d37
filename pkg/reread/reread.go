// Package reread keeps kernel-generated files (procfs, sysfs, cgroupfs) open
// and reads them afresh from offset 0 with pread.
//
// These files are seq_files: a read at offset 0 makes the kernel generate the
// content again, so an open descriptor gives current figures on every read.
// Reading that way costs one or two preads instead of open, read, read and
// close, and the open is the dear part: a path walk through procfs or
// cgroupfs on every render was the largest single cost of serving a view.
//
// A removed file (a deleted cgroup) answers ENODEV on its old descriptor; the
// file is then opened again by path, so the caller sees what a fresh open
// would: the new file of that name, or ENOENT.
package reread

import (
	"errors"
	"io/fs"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// File is one path kept open. It is safe for concurrent use: reads of one
// File are serialised (the kernel serialises reads of one open file anyway).
type File struct {
	path   string
	single bool // a short read is the whole file (see OpenSingle)
	mu     sync.Mutex
	fd     int // -1: not open
	closed bool
	last   []byte    // content of the last read, for ReadWithin
	lastAt time.Time // when that read started
}

// Open returns a File for path. Nothing is opened until the first read, so a
// file that may not exist costs nothing until someone asks for it.
func Open(path string) *File { return &File{path: path, fd: -1} }

// OpenSingle is Open for a single-record seq_file: one whose whole content
// the kernel generates in one go (every cgroup counter file; /proc/meminfo,
// stat, uptime, loadavg; a sysfs attribute). Such a file hands a reader all
// of it in one read when the buffer is large enough, so a short read ends
// it and the read at end of file that would return 0 is skipped. A
// multi-record file (/proc/cpuinfo, diskstats, swaps) may stop short of
// the buffer before its end and must be opened with Open.
func OpenSingle(path string) *File {
	f := Open(path)
	f.single = true
	return f
}

// Path returns the file's path.
func (f *File) Path() string { return f.path }

// Read appends the file's whole current content to buf. Errors are
// *fs.PathError wrapping the errno, so errors.Is(err, fs.ErrNotExist) holds
// for a file that is not there.
func (f *File) Read(buf []byte) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.readLocked(buf)
}

// ReadWithin is Read, except that content read less than maxAge ago is
// handed out again instead of being read afresh. Concurrent callers that
// find it stale wait for one read rather than each making their own.
func (f *File) ReadWithin(buf []byte, maxAge time.Duration) ([]byte, error) {
	if maxAge <= 0 {
		return f.Read(buf)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.last != nil && now.Sub(f.lastAt) < maxAge {
		return append(buf, f.last...), nil
	}
	out, err := f.readLocked(buf)
	if err != nil {
		f.last = nil
		return out, err
	}
	f.last = append(f.last[:0], out[len(buf):]...)
	f.lastAt = now
	return out, nil
}

func (f *File) readLocked(buf []byte) ([]byte, error) {
	if f.closed {
		return readFile(f.path, buf, f.single)
	}
	if f.fd < 0 {
		if !budget.take() {
			// Over the descriptor budget: read the way a plain
			// open would, keeping nothing open.
			return readFile(f.path, buf, f.single)
		}
		fd, err := open(f.path)
		if err != nil {
			budget.give()
			return buf, err
		}
		f.fd = fd
	}
	out, err := preadAll(f.fd, buf, f.single)
	if err == nil {
		return out, nil
	}
	// Whatever went wrong, the next read starts from a fresh open: ENODEV
	// is a removed file (and its path may now name a new one), and after
	// any other error the descriptor is not worth trusting.
	f.dropLocked()
	if errors.Is(err, unix.ENODEV) {
		return f.readAgainLocked(buf)
	}
	return buf, &fs.PathError{Op: "read", Path: f.path, Err: err}
}

// readAgainLocked is Read's one retry after the kept descriptor went stale.
func (f *File) readAgainLocked(buf []byte) ([]byte, error) {
	if !budget.take() {
		return readFile(f.path, buf, f.single)
	}
	fd, err := open(f.path)
	if err != nil {
		budget.give()
		return buf, err
	}
	out, err := preadAll(fd, buf, f.single)
	if err != nil {
		unix.Close(fd)
		budget.give()
		return buf, &fs.PathError{Op: "read", Path: f.path, Err: err}
	}
	f.fd = fd
	return out, nil
}

func (f *File) dropLocked() {
	if f.fd >= 0 {
		unix.Close(f.fd)
		f.fd = -1
		budget.give()
	}
}

// Close releases the descriptor. Reads after Close still work, opening and
// closing the file each time, so a reader racing with Close never sees an
// error, nor a descriptor number reused for another file.
func (f *File) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	f.last = nil
	f.dropLocked()
	return nil
}

// Set is a group of Files by path, closed together: the files of one
// container, dropped when it goes. The zero value is ready to use; a nil
// *Set reads every file with a plain open.
type Set struct {
	// Single makes the set's files single-record (OpenSingle).
	Single bool

	mu     sync.Mutex
	files  map[string]*File
	closed bool
}

// Read appends the content of the file at path to buf, keeping the file open
// for the next read (see File.Read).
func (s *Set) Read(path string, buf []byte) ([]byte, error) {
	return s.ReadWithin(path, buf, 0)
}

// ReadWithin is Read with File.ReadWithin's reuse of a read younger than
// maxAge.
func (s *Set) ReadWithin(path string, buf []byte, maxAge time.Duration) ([]byte, error) {
	if s == nil {
		return ReadFile(path, buf)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return readFile(path, buf, s.Single)
	}
	f, ok := s.files[path]
	if !ok {
		if s.files == nil {
			s.files = map[string]*File{}
		}
		f = &File{path: path, fd: -1, single: s.Single}
		s.files[path] = f
	}
	s.mu.Unlock()
	out, err := f.ReadWithin(buf, maxAge)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		// Forget paths that are gone (a deleted cgroup's files), so a
		// long-lived set does not grow with every path it ever saw.
		s.mu.Lock()
		if s.files[path] == f {
			delete(s.files, path)
		}
		s.mu.Unlock()
		f.Close()
	}
	return out, err
}

// Len reports how many paths the set holds.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files)
}

// Close closes every file of the set; later reads use plain opens.
func (s *Set) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	files := s.files
	s.files, s.closed = nil, true
	s.mu.Unlock()
	for _, f := range files {
		f.Close()
	}
	return nil
}

// ReadFile appends the whole content of path to buf with open, read and
// close: the uncached form of File.Read, with the same errors.
func ReadFile(path string, buf []byte) ([]byte, error) {
	return readFile(path, buf, false)
}

func readFile(path string, buf []byte, single bool) ([]byte, error) {
	fd, err := open(path)
	if err != nil {
		return buf, err
	}
	defer unix.Close(fd)
	out, err := preadAll(fd, buf, single)
	if err != nil {
		return buf, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	return out, nil
}

func open(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// preadAll reads fd from offset 0 to end of file, appending to buf. It reads
// until a zero-length read, or for a single-record file a short one.
func preadAll(fd int, buf []byte, single bool) ([]byte, error) {
	start := len(buf)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(cap(buf), 4096))
		}
		room := cap(buf) - len(buf)
		n, err := unix.Pread(fd, buf[len(buf):cap(buf)], int64(len(buf)-start))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return buf[:start], err
		case n == 0:
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		if single && n < room {
			return buf, nil
		}
	}
}

// fdBudget bounds the descriptors all Files keep open together, so a node
// with thousands of containers cannot run the daemon out of descriptors for
// /dev/fuse and its own work: past the budget, files are read uncached.
type fdBudget struct {
	open  atomic.Int64
	limit atomic.Int64
	once  sync.Once
}

var budget fdBudget

// SetLimit sets how many descriptors Files may keep open in all (default:
// half the soft RLIMIT_NOFILE) and returns the previous limit. 0 keeps none
// open.
func SetLimit(n int) (old int) {
	budget.init()
	return int(budget.limit.Swap(int64(n)))
}

// Kept reports how many descriptors Files keep open now.
func Kept() int { return int(budget.open.Load()) }

func (b *fdBudget) init() {
	b.once.Do(func() {
		var rl unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil {
			b.limit.Store(int64(min(rl.Cur/2, 1<<20)))
		}
	})
}

func (b *fdBudget) take() bool {
	b.init()
	if b.open.Add(1) > b.limit.Load() {
		b.open.Add(-1)
		return false
	}
	return true
}

func (b *fdBudget) give() { b.open.Add(-1) }
