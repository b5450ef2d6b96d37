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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/expiring"
)

// File is one path kept open. It is safe for concurrent use, and concurrent
// readers do not wait for each other: each takes a descriptor of its own
// from a small pool (a second opener of the file when the others are busy),
// and gives it back after the read. Eight readers of one container through
// one descriptor had queued behind each other, milliseconds at the tail
// whenever the thread holding it was preempted.
type File struct {
	path   string
	single bool // a short read is the whole file (see OpenSingle)

	mu     sync.Mutex
	idle   []int // open descriptors not in use
	closed bool
	recent expiring.Cache[struct{}, []byte] // the last content read, for ReadWithin

	clock func() time.Time // nil: time.Now; tests move their own
}

// maxIdle bounds the descriptors a File keeps between reads: as many as the
// daemon reads at once by default (lxcfs-fused --workers, one per CPU) on
// machines up to 8 CPUs; readers beyond it open and close their own.
const maxIdle = 8

// Open returns a File for path. Nothing is opened until the first read, so a
// file that may not exist costs nothing until someone asks for it.
func Open(path string) *File { return &File{path: path} }

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

// Read appends the file's whole current content to buf. Errors are
// *fs.PathError wrapping the errno, so errors.Is(err, fs.ErrNotExist) holds
// for a file that is not there.
func (f *File) Read(buf []byte) ([]byte, error) {
	return f.read(buf, true)
}

func (f *File) read(buf []byte, retry bool) ([]byte, error) {
	fd, err := f.get()
	if err != nil {
		return buf, err
	}
	if fd < 0 { // closed, or over the descriptor budget
		return readFile(f.path, buf, f.single)
	}
	out, err := preadAll(fd, buf, f.single)
	if err == nil {
		f.put(fd)
		return out, nil
	}
	// Whatever went wrong, the descriptor is not worth keeping. ENODEV is
	// a removed file, whose path may now name a new one: one fresh open
	// says which.
	unix.Close(fd)
	budget.give()
	if retry && errors.Is(err, unix.ENODEV) {
		f.dropIdle()
		return f.read(buf, false)
	}
	return buf, &fs.PathError{Op: "read", Path: f.path, Err: err}
}

// get takes an idle descriptor or opens one; -1 (and no error) means read
// without keeping one.
func (f *File) get() (int, error) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return -1, nil
	}
	if n := len(f.idle); n > 0 {
		fd := f.idle[n-1]
		f.idle = f.idle[:n-1]
		f.mu.Unlock()
		return fd, nil
	}
	f.mu.Unlock()
	if !budget.take() {
		return -1, nil
	}
	fd, err := open(f.path)
	if err != nil {
		budget.give()
		return -1, err
	}
	return fd, nil
}

// put gives a descriptor back, or closes it when the File is closed or has
// enough idle ones.
func (f *File) put(fd int) {
	f.mu.Lock()
	if !f.closed && len(f.idle) < maxIdle {
		f.idle = append(f.idle, fd)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	unix.Close(fd)
	budget.give()
}

// dropIdle closes the idle descriptors: after ENODEV they name a removed
// file.
func (f *File) dropIdle() {
	f.mu.Lock()
	idle := f.idle
	f.idle = nil
	f.mu.Unlock()
	for _, fd := range idle {
		unix.Close(fd)
		budget.give()
	}
}

// ReadWithin is Read, except that content read less than maxAge ago is
// handed out again instead of being read afresh.
func (f *File) ReadWithin(buf []byte, maxAge time.Duration) ([]byte, error) {
	if maxAge <= 0 {
		return f.Read(buf)
	}
	now := time.Now()
	if f.clock != nil {
		now = f.clock()
	}
	b, err := f.recent.Get(struct{}{}, now, maxAge, func() ([]byte, error) { return f.Read(nil) })
	if err != nil {
		return buf, err
	}
	return append(buf, b...), nil
}

// Close releases the idle descriptors; those in use are closed when their
// read ends. Reads after Close still work, opening and closing the file
// each time, so a reader racing with Close never sees an error, nor a
// descriptor number reused for another file.
func (f *File) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	f.recent.Reset()
	f.dropIdle()
	return nil
}

// Set is a group of Files by path, closed together: the files of one
// container, dropped when it goes. The zero value is ready to use; a nil
// *Set reads every file with a plain open.
type Set struct {
	// Single makes the set's files single-record (OpenSingle).
	Single bool

	mu     sync.Mutex
	files  map[setKey]*File
	closed bool
}

// setKey names a file by directory and name, so a lookup on every read needs
// no joined path (an allocation per file per render); the path is joined
// once, when the File is made.
type setKey struct{ dir, name string }

// Read appends the content of the file at path to buf, keeping the file open
// for the next read (see File.Read).
func (s *Set) Read(path string, buf []byte) ([]byte, error) {
	dir, name := path, ""
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		dir, name = path[:i], path[i+1:]
	}
	return s.ReadIn(dir, name, buf, 0)
}

// ReadIn appends the content of the file name in directory dir to buf,
// keeping the file open for the next read, and reusing a read younger than
// maxAge (File.ReadWithin).
func (s *Set) ReadIn(dir, name string, buf []byte, maxAge time.Duration) ([]byte, error) {
	if s == nil {
		return ReadFile(dir+"/"+name, buf)
	}
	k := setKey{dir, name}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return readFile(dir+"/"+name, buf, s.Single)
	}
	f, ok := s.files[k]
	if !ok {
		if s.files == nil {
			s.files = map[setKey]*File{}
		}
		f = &File{path: dir + "/" + name, single: s.Single}
		s.files[k] = f
	}
	s.mu.Unlock()
	out, err := f.ReadWithin(buf, maxAge)
	if err != nil && errors.Is(err, fs.ErrNotExist) {
		// Forget paths that are gone (a deleted cgroup's files), so a
		// long-lived set does not grow with every path it ever saw.
		s.mu.Lock()
		if s.files[k] == f {
			delete(s.files, k)
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
	fd, err := linux.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return fd, nil
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
		n, err := linux.Pread(fd, buf[len(buf):cap(buf)], int64(len(buf)-start))
		switch {
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
