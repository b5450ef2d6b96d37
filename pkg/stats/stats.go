// Package stats keeps lxcfs-fused's counters in a small file that the
// supervisor and its serving worker map shared (STATE-DIR/fused.stats).
//
// The worker counts on the read path with atomic adds into the mapping: no
// lock, no allocation, no system call. The counts live in the file, not in
// the worker, so a worker killed with SIGKILL loses none of them, and an
// upgrade (the supervisor re-executes its binary) reopens the same file. The
// supervisor, which outlives both, reads the file when /metrics is scraped;
// `lxcfs-fused status` reads it too. A fresh start of the supervisor (not an
// upgrade) starts the counts from zero, as Prometheus expects of a restart.
//
// Every method of a nil *Region or *File does nothing, so counting is off
// when the file cannot be had, and code that counts needs no checks.
package stats

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FileName is the counters file below the daemon's state directory.
const FileName = "fused.stats"

// Path is the counters file of the daemon using stateDir.
func Path(stateDir string) string { return filepath.Join(stateDir, FileName) }

// Layout. Every counter is a uint64 at an 8-byte aligned offset; the file is
// mapped page-aligned, so atomic operations on them are valid. Changing the
// layout means a new magic: an upgraded binary that finds another layout
// starts from zero rather than misread it.
const (
	magic = "LXCFSST2"

	offCreated  = 8  // unix nanoseconds of the supervisor's fresh start
	offCounters = 64 // daemon-wide counters, numCounters of them

	numCounters = 16

	offHists   = 256 // one histogram per Op
	histSlots  = 32  // per histogram: len(Buckets)+1 counts, then the sum in ns
	offSlots   = offHists + numOps*histSlots*8
	numSlots   = 32  // files
	slotSize   = 128 // name (nameSize bytes, NUL padded), then the counters
	nameSize   = 64
	slotCounts = (slotSize - nameSize) / 8

	size = offSlots + numSlots*slotSize
)

// Counter names a daemon-wide counter.
type Counter int

// The daemon-wide counters: kept by the supervisor, except ContainersCached.
const (
	WorkerStarts      Counter = iota // serving workers started (the first included)
	WorkerDeaths                     // workers that died unasked (crash, kill, OOM)
	Upgrades                         // re-executions of the binary
	RemountReattached                // containers whose dead views were re-attached at start
	RemountFailed                    // containers whose views could not be re-attached
	NotifyResend                     // 1: the kernel has FUSE_NOTIFY_RESEND; 2: it has not; 0: not tried yet
)

// Op is a kind of request timed in a histogram.
type Op int

const (
	OpOpen Op = iota // an open of a served file: renders it for the opener
	OpRead           // a read: from the open's snapshot, or rendered afresh at offset 0

	numOps = 2
)

// Ops lists every Op, for exporters.
var Ops = []Op{OpOpen, OpRead}

func (o Op) String() string {
	if o == OpOpen {
		return "open"
	}
	return "read"
}

// Buckets are the upper bounds of the latency histograms. A request served
// from memory takes microseconds; a render reading cgroup files tens to
// hundreds of them; anything near --read-timeout (2s) is a wedged cgroup.
var Buckets = [...]time.Duration{
	5 * time.Microsecond, 10 * time.Microsecond, 25 * time.Microsecond, 50 * time.Microsecond,
	100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
}

// Per-file counters, in slot order after the name.
const (
	fileOpens = iota
	fileReads
	fileRenderErrors
	fileTimeouts    // a render outlived --read-timeout: the host's file was answered
	fileViewErrors  // the container's figures could not be read: the host's file
	fileUnresolved  // the reader's container could not be told: the host's file
	numFileCounters // at most slotCounts
)

// Fallback is why a reader got the host's file instead of its container's.
type Fallback int

const (
	Timeout    Fallback = fileTimeouts
	ViewError  Fallback = fileViewErrors
	Unresolved Fallback = fileUnresolved
)

// Fallbacks lists every reason, for exporters.
var Fallbacks = []Fallback{Timeout, ViewError, Unresolved}

func (f Fallback) String() string {
	switch f {
	case Timeout:
		return "timeout"
	case ViewError:
		return "view_error"
	}
	return "unresolved"
}

// Region is the mapped counters file.
type Region struct {
	mem   []byte
	files map[string]*File
}

// File counts the requests of one served file.
type File struct {
	r   *Region
	off int // of the slot's first counter
}

// Create makes a fresh, zeroed counters file at path (replacing any), for
// a supervisor that starts anew, and names the files' slots.
func Create(path string, names []string) (*Region, error) {
	if len(names) > numSlots {
		return nil, fmt.Errorf("stats: %d files, at most %d fit", len(names), numSlots)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	os.Remove(tmp)
	r, err := mapFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, true)
	if err != nil {
		return nil, err
	}
	binary.LittleEndian.PutUint64(r.mem[offCreated:], uint64(time.Now().UnixNano()))
	r.name(names)
	copy(r.mem, magic) // last: a reader never takes a half-made file for one
	if err := os.Rename(tmp, path); err != nil {
		r.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return r, nil
}

// Open maps an existing counters file: read-write for the worker and an
// upgraded supervisor (which names any file its binary added), read-only
// with writable false (status). names may be nil.
func Open(path string, writable bool, names []string) (*Region, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR
	}
	r, err := mapFile(path, flag, writable)
	if err != nil {
		return nil, err
	}
	if string(r.mem[:len(magic)]) != magic {
		r.Close()
		return nil, fmt.Errorf("%s: not a counters file of this version", path)
	}
	if writable {
		r.name(names)
	}
	r.index()
	return r, nil
}

func mapFile(path string, flag int, writable bool) (*Region, error) {
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the mapping outlives the descriptor
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if flag&os.O_CREATE != 0 {
		if err := f.Truncate(size); err != nil {
			return nil, fmt.Errorf("size %s: %w", path, err)
		}
	} else if st.Size() != size {
		return nil, fmt.Errorf("%s: %d bytes, want %d (another version's counters?)", path, st.Size(), size)
	}
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	return &Region{mem: mem, files: map[string]*File{}}, nil
}

// name gives every name without a slot the first free one. Only the
// supervisor names slots, before it starts a worker, so a worker never sees
// a slot change under it.
func (r *Region) name(names []string) {
	r.index()
	for _, n := range names {
		if _, ok := r.files[n]; ok || n == "" || len(n) >= nameSize {
			continue
		}
		for i := range numSlots {
			off := offSlots + i*slotSize
			if r.mem[off] == 0 {
				copy(r.mem[off:off+nameSize], n)
				r.files[n] = &File{r: r, off: off + nameSize}
				break
			}
		}
	}
}

func (r *Region) index() {
	for i := range numSlots {
		off := offSlots + i*slotSize
		n := r.mem[off : off+nameSize]
		if n[0] == 0 {
			break
		}
		if end := indexByte(n, 0); end >= 0 {
			n = n[:end]
		}
		r.files[string(n)] = &File{r: r, off: off + nameSize}
	}
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// Close unmaps the file.
func (r *Region) Close() error {
	if r == nil || r.mem == nil {
		return nil
	}
	err := unix.Munmap(r.mem)
	r.mem = nil
	return err
}

func (r *Region) u64(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&r.mem[off]))
}

// Created is when the supervisor started afresh: counts are since then.
func (r *Region) Created() time.Time {
	if r == nil {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.LittleEndian.Uint64(r.mem[offCreated:])))
}

// Add adds n to a daemon-wide counter.
func (r *Region) Add(c Counter, n uint64) {
	if r != nil {
		r.u64(offCounters + int(c)*8).Add(n)
	}
}

// Set stores v in a daemon-wide counter used as a gauge or a flag.
func (r *Region) Set(c Counter, v uint64) {
	if r != nil {
		r.u64(offCounters + int(c)*8).Store(v)
	}
}

// Get reads a daemon-wide counter.
func (r *Region) Get(c Counter) uint64 {
	if r == nil {
		return 0
	}
	return r.u64(offCounters + int(c)*8).Load()
}

// File is the counters of the served file name, nil when it has no slot
// (counting off, or a name the supervisor did not know). Look it up once,
// not per request.
func (r *Region) File(name string) *File {
	if r == nil {
		return nil
	}
	return r.files[name]
}

// Fallback counts a reader of name answered with the host's file.
func (r *Region) Fallback(name string, why Fallback) {
	r.File(name).Fallback(why)
}

// Observe counts a request of kind op that took d, on this file.
func (f *File) Observe(op Op, d time.Duration) {
	if f == nil {
		return
	}
	if op == OpOpen {
		f.r.u64(f.off + fileOpens*8).Add(1)
	} else {
		f.r.u64(f.off + fileReads*8).Add(1)
	}
	i := 0
	for i < len(Buckets) && d > Buckets[i] {
		i++
	}
	h := offHists + int(op)*histSlots*8
	f.r.u64(h + i*8).Add(1)
	f.r.u64(h + (len(Buckets)+1)*8).Add(uint64(d))
}

// RenderError counts a request answered with EIO: not even the host's file
// could be read.
func (f *File) RenderError() {
	if f != nil {
		f.r.u64(f.off + fileRenderErrors*8).Add(1)
	}
}

// Fallback counts a reader answered with the host's file.
func (f *File) Fallback(why Fallback) {
	if f != nil {
		f.r.u64(f.off + int(why)*8).Add(1)
	}
}

// FileCounts is one file's counts.
type FileCounts struct {
	Name         string            `json:"file"`
	Opens        uint64            `json:"opens"`
	Reads        uint64            `json:"reads"`
	RenderErrors uint64            `json:"render_errors"`
	Fallbacks    map[string]uint64 `json:"host_fallbacks"` // by Fallback.String()
}

// Histogram is a latency histogram: Counts[i] requests took at most
// Buckets[i] (and more than Buckets[i-1]); the last count is beyond every
// bucket.
type Histogram struct {
	Counts []uint64
	Sum    time.Duration
}

// Snapshot is every count at one moment (each read atomically, not all at
// once).
type Snapshot struct {
	Created  time.Time
	Counters [numCounters]uint64
	Files    []FileCounts
	Hists    [numOps]Histogram
}

// Snapshot reads every count.
func (r *Region) Snapshot() Snapshot {
	var s Snapshot
	if r == nil {
		return s
	}
	s.Created = r.Created()
	for i := range numCounters {
		s.Counters[i] = r.u64(offCounters + i*8).Load()
	}
	for i := range numSlots {
		off := offSlots + i*slotSize
		n := r.mem[off : off+nameSize]
		if n[0] == 0 {
			break
		}
		if end := indexByte(n, 0); end >= 0 {
			n = n[:end]
		}
		c := off + nameSize
		fc := FileCounts{
			Name:         string(n),
			Opens:        r.u64(c + fileOpens*8).Load(),
			Reads:        r.u64(c + fileReads*8).Load(),
			RenderErrors: r.u64(c + fileRenderErrors*8).Load(),
			Fallbacks:    map[string]uint64{},
		}
		for _, why := range Fallbacks {
			fc.Fallbacks[why.String()] = r.u64(c + int(why)*8).Load()
		}
		s.Files = append(s.Files, fc)
	}
	for op := range numOps {
		h := offHists + op*histSlots*8
		counts := make([]uint64, len(Buckets)+1)
		for i := range counts {
			counts[i] = r.u64(h + i*8).Load()
		}
		s.Hists[op] = Histogram{Counts: counts, Sum: time.Duration(r.u64(h + (len(Buckets)+1)*8).Load())}
	}
	return s
}

// Errors totals, over every file, the render errors and the host fallbacks
// by reason.
func (s Snapshot) Errors() (renderErrors uint64, fallbacks map[string]uint64) {
	fallbacks = map[string]uint64{}
	for _, f := range s.Files {
		renderErrors += f.RenderErrors
		for k, v := range f.Fallbacks {
			fallbacks[k] += v
		}
	}
	return renderErrors, fallbacks
}

// The layout must hold what the constants promise: these fail to compile
// otherwise.
var (
	_ [histSlots - len(Buckets) - 2]struct{}
	_ [slotCounts - numFileCounters]struct{}
	_ [numCounters - 1 - NotifyResend]struct{}
)
