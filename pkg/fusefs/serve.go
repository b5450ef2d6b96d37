package fusefs

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bazil.org/fuse"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/journal"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
)

// openNoFlush is FOPEN_NOFLUSH (Linux 5.14): the kernel skips the FLUSH round
// trip on close. bazil.org/fuse has no name for it.
const openNoFlush fuse.OpenResponseFlags = 1 << 5

// handle is one open file. The opener's container is found once, at open,
// and kept: reads may come from another thread (or, after fork, another
// process) sharing the fd, and the file must describe the container that
// opened it. Its ID is in the handle number too (see fileHandle).
//
// data is only read, replies included, and only replaced with mu held, so
// the slice replaced (or the last one, at release) goes back to the
// Renderer (Recycler) with nothing still writing it out.
type handle struct {
	n   *node
	who uint32

	mu      sync.Mutex
	data    []byte
	fresh   bool // data was rendered at open and no read has used it yet
	listing bool // data is a directory listing, not the Renderer's
}

// server is one connection's state: the open handles that hold a snapshot.
// A handle without one needs no entry: its number names its container.
// handleTable maps the kernel's handle numbers to open files: many
// readers look up at once and few open or close, which is sync.Map's case;
// this only gives it its types.
type handleTable struct{ m sync.Map }

func (t *handleTable) Load(id fuse.HandleID) (*handle, bool) {
	v, ok := t.m.Load(id)
	if !ok {
		return nil, false
	}
	return v.(*handle), true
}

// LoadOrStore stores h under id unless id is taken, and reports whether it
// was.
func (t *handleTable) LoadOrStore(id fuse.HandleID, h *handle) (*handle, bool) {
	v, taken := t.m.LoadOrStore(id, h)
	return v.(*handle), taken
}

func (t *handleTable) CompareAndDelete(id fuse.HandleID, h *handle) bool {
	return t.m.CompareAndDelete(id, h)
}

type server struct {
	fs   *FS
	conn *fuse.Conn
	// own says conn is the containers' own connection (ServeOwn): its
	// root is .containers, and files are never opened (FUSE no-open).
	own       bool
	journal   *journal.Journal
	leftovers <-chan []journal.Entry

	kc      *kcache       // nil: FS.CacheTTL is 0, nothing is cached
	nextFH  atomic.Uint32 // starts at random, see fileHandle
	handles handleTable
	stuck   atomic.Int64 // goroutines replaced while a render or store waits

	heldMu sync.Mutex
	held   map[uint32]int // snapshot bytes kept per container

	trig triggers // PSI triggers (trigger.go)

	readers  sync.WaitGroup // goroutines reading the device (spawn)
	errMu    sync.Mutex
	firstErr error
}

// Snapshots are what an open file costs the daemon: the content rendered at
// open (or at a read from offset 0), kept so that later offsets read the
// same file. A container that opens files by the hundred thousand and never
// closes them would keep that many in a daemon the OOM killer spares. So
// each container keeps at most SnapshotLimit bytes of them, and all
// containers together SnapshotTotal; a handle past either keeps none and
// renders at each read instead (a reader that reads it in chunks smaller
// than the file may then see two renders' chunks). A snapshot also goes
// once its reader has read to the end (a read at EOF).
const (
	DefaultSnapshotLimit = 4 << 20
	DefaultSnapshotTotal = 64 << 20
	// handleCost is what a kept handle costs besides its bytes.
	handleCost = 256
)

// keep reserves a snapshot of n bytes for container who; false means over
// budget.
func (s *server) keep(who uint32, n int) bool {
	n += handleCost
	limit, total := s.fs.SnapshotLimit, s.fs.SnapshotTotal
	if limit <= 0 {
		limit = DefaultSnapshotLimit
	}
	if total <= 0 {
		total = DefaultSnapshotTotal
	}
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.held[who]+n > limit || int(s.fs.held.Load())+n > total {
		return false
	}
	s.held[who] += n
	s.fs.held.Add(int64(n))
	return true
}

// drop gives back what keep reserved.
func (s *server) drop(who uint32, n int) {
	n += handleCost
	s.heldMu.Lock()
	defer s.heldMu.Unlock()
	if s.held[who] -= n; s.held[who] <= 0 {
		delete(s.held, who)
	}
	s.fs.held.Add(-int64(n))
}

// forget removes h (numbered id) from the table and frees its snapshot.
func (s *server) forget(id fuse.HandleID, h *handle) {
	if !s.handles.CompareAndDelete(id, h) {
		return
	}
	h.mu.Lock()
	data := h.data
	h.data = nil
	h.mu.Unlock()
	if data != nil {
		s.drop(h.who, len(data))
		if !h.listing {
			s.recycle(data)
		}
	}
}

// The kernel keeps the handle numbers it was given for as long as the files
// are open, across worker replacements and upgrades, and passes the number
// back with every READ. So a file handle is:
//
//	bit 63      1 (0: a directory's, or one given by a release before this)
//	bits 62-32  the opener's container ID (Renderer.Identify), 0 the host
//	bits 31-0   a counter that starts at random in every serving process
//
// A process that is handed a number it never gave (it replaced the one that
// did) renders for the container named in it: it cannot pick another
// container, since the ID is never another's; and a new process's own
// numbers do not repeat the old one's for the same container except by a
// 1 in 2^32 chance, which would only share that container's snapshot.
const fhTagged = 1 << 63

func fileHandle(who uint32, n uint32) fuse.HandleID {
	return fuse.HandleID(fhTagged | uint64(who&0x7fffffff)<<32 | uint64(n))
}

// handleOwner returns the container ID in a file handle, and false for a
// handle that names none (a directory's, or an older release's).
func handleOwner(id fuse.HandleID) (uint32, bool) {
	if id&fhTagged == 0 {
		return 0, false
	}
	return uint32(uint64(id)>>32) & 0x7fffffff, true
}

// DefaultWorkers is how many goroutines read the device by default: one per
// CPU this process may run on, and at least 2. A request is a few
// microseconds of CPU and syscalls, so readers beyond the CPUs add no
// throughput, only threads: the kernel hands each request to the reader
// that has waited longest, the one whose caches are coldest, and on 2 CPUs
// 8 readers cost 20-30% more CPU per read than 2, with a worse p99.
func DefaultWorkers() int { return max(2, runtime.NumCPU()) }

// Serve answers requests on conn with workers goroutines reading the device
// at once, until the connection ends (the file system is unmounted). Requests
// are answered in the goroutine that read them, so workers bounds how many
// are in progress.
//
// Serve raises GOMAXPROCS to workers+2 when it is lower. Each reading
// goroutine spends its idle time blocked in read(2) on /dev/fuse, holding a
// P; with fewer Ps than readers, sysmon takes Ps back from blocked readers
// and a reader woken by a request waits for one: milliseconds at p99 with 8
// concurrent readers on 2 CPUs. With a P per reader to spare, a woken
// reader carries on at once, as a libfuse thread would.
func (f *FS) Serve(conn *fuse.Conn, workers int) error {
	return f.serve(&server{fs: f, conn: conn, held: map[uint32]int{}, journal: f.Journal, leftovers: f.Leftovers}, workers)
}

// ServeOwn serves the containers' own trees on a connection of their own,
// beside Serve's: its root is what .containers is on the first, and it
// answers every OPEN of a file ENOSYS, which makes the kernel stop sending
// OPEN and RELEASE on this connection for good (fc->no_open: every open
// keeps the page cache, reads carry handle 0). A cached read then costs the
// daemon nothing until its entry expires; reads, attributes and lookups
// are answered from the entry (kcache.go), which the sweep invalidates as
// on the first connection. No open means no per-open state, so it needs a
// TTL (FS.CacheTTL above 0) and a Scoper, and PSI triggers, which are
// written through an open handle, are not served here.
func (f *FS) ServeOwn(conn *fuse.Conn, workers int) error {
	if f.CacheTTL <= 0 || f.sc == nil {
		return errors.New("the containers' own connection needs a cache TTL above 0 and container registration")
	}
	return f.serve(&server{fs: f, conn: conn, own: true, held: map[uint32]int{}, journal: f.OwnJournal, leftovers: f.OwnLeftovers}, workers)
}

func (f *FS) serve(s *server, workers int) error {
	s.trig = triggers{byFH: map[fuse.HandleID]*trigger{}, byKey: map[uint64]*trigger{}, perWho: map[uint32]int{}, epfd: -1, polls: f.Polls}
	defer s.closeTriggers()
	f.statsOnce.Do(func() {
		for _, n := range f.nodes[1:] {
			if n != nil && !n.dir {
				n.st = f.Stats.File(n.name)
			}
		}
	})
	s.nextFH.Store(rand.Uint32())
	f.srvMu.Lock()
	if s.own {
		f.ownSrv = s
	} else {
		f.main = s
	}
	f.srvMu.Unlock()
	defer func() {
		f.srvMu.Lock()
		if f.ownSrv == s {
			f.ownSrv = nil
		}
		if f.main == s {
			f.main = nil
		}
		f.srvMu.Unlock()
	}()
	if f.CacheTTL > 0 && f.sc != nil {
		s.kc = newKcache(f.CacheTTL, f.Now)
		f.kcMu.Lock()
		if s.own {
			if f.ownKc != nil {
				s.kc.invalidated = f.ownKc.invalidated // a test's
			}
			f.ownKc = s.kc
			f.ownDrop = s.dropCached
		} else {
			if f.kc != nil {
				s.kc.invalidated = f.kc.invalidated // a test's
			}
			f.kc = s.kc
		}
		f.kcMu.Unlock()
		if f.Known != nil {
			s.kc.forget(f.containerFiles(f.Known())...)
			if s.own {
				// The host's files too, after a walk of the host's CPU
				// directory, which must not hold up serving: in a
				// goroutine, arguments and all.
				go func() { s.forgetHostFiles(f.Known()) }()
			}
			// After an upgrade the previous worker serves on until this
			// one does, and is stopped within retireWindow: what it
			// cached meanwhile is forgotten once it is gone.
			t := time.AfterFunc(retireWindow, func() {
				known := f.Known()
				s.kc.forget(f.containerFiles(known)...)
				if s.own {
					s.forgetHostFiles(known)
				}
			})
			defer t.Stop()
		}
		go s.sweep()
		defer close(s.kc.stop)
	}
	workers = max(workers, 1)
	procs := workers + 2
	if s.own {
		procs += workers // beside the first connection's readers
	}
	if runtime.GOMAXPROCS(0) < procs {
		runtime.GOMAXPROCS(procs)
	}
	for range workers {
		s.spawn()
	}
	go s.replayLeftovers()
	// Every reading goroutine, replacements included, ends only when the
	// connection does; one that was replaced ends early and is not a sign
	// of it.
	s.readers.Wait()
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.firstErr
}

// spawn starts a goroutine reading the device.
func (s *server) spawn() {
	s.readers.Add(1)
	go func() {
		defer s.readers.Done()
		if err := s.loop(); err != nil {
			s.errMu.Lock()
			if s.firstErr == nil {
				s.firstErr = err
			}
			s.errMu.Unlock()
		}
	}()
}

func (s *server) loop() error {
	for {
		req, err := s.next()
		switch {
		case err == nil:
		case errors.Is(err, io.EOF), errors.Is(err, syscall.ENODEV):
			return nil // unmounted
		case errors.Is(err, syscall.EINTR), errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.ENOENT):
			// ENOENT: the kernel dropped an interrupted request before we read it.
			continue
		default:
			return fmt.Errorf("read FUSE request: %w", err)
		}
		if abandoned := s.handle(req); abandoned {
			// A watchdog answered for this goroutine and started another
			// in its place; the device keeps its readers.
			return nil
		}
	}
}

// handle answers one request. A panic answers EIO for that request alone,
// logged with the stack, so no input takes the daemon down. abandoned is
// true when the render outlived FS.Timeout and a watchdog answered instead.
func (s *server) handle(req fuse.Request) (abandoned bool) {
	defer s.recoverEIO(req)
	hdr := req.Hdr()
	switch r := req.(type) {
	case *fuse.LookupRequest:
		return s.lookup(r)

	case *fuse.GetattrRequest:
		nr, ok := s.ref(hdr.Node)
		if !ok {
			r.RespondError(errno(syscall.ENOENT))
			return
		}
		if nr.n.pt && (nr.n.dir || nr.n.link) {
			s.ptGetattr(nr.n, r)
			return
		}
		if nr.n.dir {
			r.Respond(&fuse.GetattrResponse{Attr: s.fs.attr(nr)})
			return
		}
		if s.cached(nr) {
			return s.entry(r, nr, func(e *centry, data []byte, err error) {
				r.Respond(&fuse.GetattrResponse{Attr: s.cachedAttr(nr, e, data)})
			})
		}
		return s.getattr(nr, r)

	case *fuse.OpenRequest:
		return s.open(r)

	case *fuse.ReadlinkRequest:
		s.readlink(r)

	case *fuse.ReadRequest:
		if r.Dir {
			s.readDir(r)
			return
		}
		return s.read(r)

	case *fuse.ReleaseRequest:
		if v, ok := s.handles.Load(r.Handle); ok {
			s.forget(r.Handle, v)
		}
		s.releaseTrigger(r.Handle)
		r.Respond()

	case *fuse.FlushRequest:
		// ENOSYS makes kernels without FOPEN_NOFLUSH stop sending FLUSH
		// for the whole connection: one round trip saved per close.
		r.RespondError(errno(syscall.ENOSYS))

	case *fuse.WriteRequest:
		s.writeTrigger(r)
	case *fuse.PollRequest:
		s.poll(r)

	case *fuse.AccessRequest:
		if nr, ok := s.ref(hdr.Node); ok && s.isTrigger(nr.n) {
			r.Respond()
			return
		}
		if r.Mask&2 != 0 { // W_OK
			r.RespondError(errno(syscall.EROFS))
			return
		}
		r.Respond()

	case *fuse.StatfsRequest:
		r.Respond(&fuse.StatfsResponse{Bsize: 4096, Frsize: 4096, Namelen: 255, Files: uint64(len(s.fs.nodes) - 1)})

	case *fuse.GetxattrRequest, *fuse.ListxattrRequest:
		req.RespondError(fuse.ErrNoXattr)

	case *fuse.ForgetRequest:
		r.Respond()
	case *fuse.BatchForgetRequest:
		r.Respond()
	case *fuse.InterruptRequest:
		// Requests are answered in microseconds; nothing to cancel.
		r.Respond()
	case *fuse.DestroyRequest:
		r.Respond()

	case *fuse.SetattrRequest, *fuse.CreateRequest, *fuse.MkdirRequest,
		*fuse.RemoveRequest, *fuse.RenameRequest, *fuse.SymlinkRequest, *fuse.LinkRequest,
		*fuse.MknodRequest, *fuse.SetxattrRequest, *fuse.RemovexattrRequest:
		req.RespondError(errno(syscall.EROFS))

	default:
		req.RespondError(errno(syscall.ENOSYS))
	}
	return false
}

func (s *server) lookup(r *fuse.LookupRequest) (abandoned bool) {
	s.fs.lookups.Add(1)
	d, ok := s.ref(r.Hdr().Node)
	if !ok || !d.n.dir {
		r.RespondError(errno(syscall.ENOENT))
		return
	}
	var child ref
	switch {
	case d.n == s.fs.containers:
		// A registered container's tree, while the container runs.
		who, err := strconv.ParseUint(r.Name, 10, 31)
		if err != nil || who == 0 || strconv.FormatUint(who, 10) != r.Name || !s.fs.sc.Alive(uint32(who)) {
			r.RespondError(errno(syscall.ENOENT))
			return
		}
		child = ref{n: s.fs.nodes[1], id: fuse.NodeID(who<<32 | 1), who: uint32(who)}
	case d.id == 1 && !s.own && r.Name == containersName && s.fs.sc != nil:
		child = ref{n: s.fs.containers, id: containersNode}
	default:
		ino, ok := d.n.children[r.Name]
		if !ok && d.n.hostRoot != "" {
			s.lookupPT(d, r)
			return
		}
		if !ok {
			r.RespondError(errno(syscall.ENOENT))
			return
		}
		child = ref{n: s.fs.nodes[ino], id: fuse.NodeID(uint64(d.who)<<32 | ino), who: d.who}
	}
	if child.who != 0 && s.fs.sp != nil && s.fs.sp.Spare(child.who) {
		s.lookupSpare(r, child)
		return false
	}
	if s.cached(child) {
		// The entry's size, cached as long as the entry lives: a stat
		// or read before the open needs no GETATTR.
		return s.entry(r, child, func(e *centry, data []byte, err error) {
			r.Respond(&fuse.LookupResponse{Node: child.id, EntryValid: entryValid, Attr: s.cachedAttr(child, e, data)})
		})
	}
	if !child.n.dir {
		s.keepSize(child.id, child.n.name)
	}
	valid := entryValid
	if child.n == s.fs.containers {
		// The containers' own connection is mounted on this name. The
		// kernel detaches every mount on a name whose revalidation
		// fails (a LOOKUP answered with an error, or not at all by a
		// worker killed holding it), so the name is never revalidated.
		valid = containersValid
	}
	r.Respond(&fuse.LookupResponse{Node: child.id, EntryValid: valid, Attr: s.fs.attr(child)})
	return false
}

// lookupSpare answers a lookup in a spare's tree (see Spares): the daemon
// warming it, before any container has it. The names are kept for as long
// as the kernel will, so the hook of the container that gets the ID finds
// them all cached, however long the spare waited. A file is not rendered
// (it is nobody's yet): its attributes are not kept, so the first stat
// after the ID is given asks the daemon, and its size is overstated as
// after an expiry (see overstateSize), so the first read, a sendfile one
// included, is cut at the render's length rather than at nothing.
func (s *server) lookupSpare(r *fuse.LookupRequest, child ref) {
	a := s.fs.attr(child)
	if child.n.dir {
		a.Valid = containersValid
	} else {
		a.Size = sizeBound
	}
	r.Respond(&fuse.LookupResponse{Node: child.id, EntryValid: containersValid, Attr: a})
}

// ForgetNames has the kernel drop the names of container who's tree, kept
// for good while it was a spare (lookupSpare): looked up again, they are
// kept for entryValid, like any container's, and are gone once the
// container is. The kernel drops the names below, and mounts made of them
// (the container's views) live on.
func (f *FS) ForgetNames(who uint32) {
	f.srvMu.Lock()
	s, parent := f.ownSrv, fuse.NodeID(1)
	if s == nil {
		s, parent = f.main, containersNode
	}
	f.srvMu.Unlock()
	if s == nil {
		return
	}
	name := strconv.FormatUint(uint64(who), 10)
	if err := s.conn.InvalidateEntry(parent, name); err != nil && !errors.Is(err, fuse.ErrNotCached) {
		f.log.Debug("name invalidation failed", "container", who, "err", err)
	}
}

// containersValid is how long the kernel may keep the name .containers:
// for as long as the mount lives, in effect.
const containersValid = 100 * 365 * 24 * time.Hour

// ref finds the node the kernel calls id on this connection: on the own
// connection, its root is .containers and nothing of the shared tree is
// there.
func (s *server) ref(id fuse.NodeID) (ref, bool) {
	if !s.own {
		return s.fs.ref(id)
	}
	if id == 1 {
		return ref{n: s.fs.containers, id: 1}, s.fs.containers != nil
	}
	nr, ok := s.fs.ref(id)
	return nr, ok && nr.who != 0
}

// owner is the container a file is read for: the tree's, in a container's
// own tree, else the reader's.
func (s *server) owner(nr ref, pid uint32) uint32 {
	if nr.who != 0 {
		return nr.who
	}
	return s.fs.r.Identify(int(pid))
}

func (s *server) recoverEIO(req fuse.Request) {
	if rec := recover(); rec != nil {
		s.fs.log.Error("panic serving request; answered EIO", "request", req.String(),
			"panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
		req.RespondError(errno(syscall.EIO))
	}
}

// maxStuck caps the goroutines left behind by renders that never returned:
// past it, no replacement reader is started (the others keep serving).
const maxStuck = 256

// withContent renders name for the container who and passes the result to
// answer, exactly once. When the render outlives FS.Timeout (a wedged cgroup file), a timer
// answers with the Renderer's fallback (the host's file) instead and starts
// a new reading goroutine, and withContent reports the calling goroutine
// abandoned once the render returns. The timer costs no goroutine unless it
// fires, unlike running every render in a goroutine of its own.
func (s *server) withContent(req fuse.Request, name string, who uint32, answer func([]byte, error)) (abandoned bool) {
	fb := s.fs.fb
	if s.fs.Timeout <= 0 || fb == nil {
		answer(s.fs.r.Render(name, who))
		return false
	}
	const (
		rendering = iota
		byRender
		byTimerReplaced // a new reading goroutine took this one's place
		byTimer         // over maxStuck: this one keeps its place when it returns
	)
	var state atomic.Int32
	t := time.AfterFunc(s.fs.Timeout, func() {
		next := int32(byTimer)
		if s.stuck.Add(1) <= maxStuck {
			next = byTimerReplaced
		} else {
			s.stuck.Add(-1)
		}
		if !state.CompareAndSwap(rendering, next) {
			if next == byTimerReplaced {
				s.stuck.Add(-1)
			}
			return
		}
		if next == byTimerReplaced {
			s.spawn()
		}
		defer s.recoverEIO(req)
		s.fs.log.Warn("render timed out; answered with the fallback", "file", name, "container", who, "timeout", s.fs.Timeout)
		s.fs.Stats.Fallback(name, stats.Timeout)
		answer(fb.Fallback(name))
	})
	data, err := s.fs.r.Render(name, who)
	if state.CompareAndSwap(rendering, byRender) {
		t.Stop()
		answer(data, err)
		return false
	}
	s.recycle(data) // the timer answered with the fallback instead
	if state.Load() == byTimerReplaced {
		s.stuck.Add(-1)
		return true
	}
	return false
}

// content is withContent for a served file, and the host's file for a
// pass-through one.
func (s *server) content(req fuse.Request, n *node, who uint32, answer func([]byte, error)) (abandoned bool) {
	if n.pt {
		answer(hostRead(n))
		return false
	}
	return s.withContent(req, n.name, who, answer)
}

func (s *server) open(r *fuse.OpenRequest) (abandoned bool) {
	if s.own && !r.Dir {
		s.fs.ownOpens.Add(1)
	}
	nr, ok := s.ref(r.Hdr().Node)
	n := nr.n
	switch {
	case !ok:
		r.RespondError(errno(syscall.ENOENT))
		return
	case s.own && !r.Dir:
		// FUSE no-open: the kernel stops sending OPEN and RELEASE for
		// every file of this connection and keeps their pages (see
		// ServeOwn). This open succeeds all the same.
		r.RespondError(errno(syscall.ENOSYS))
		return
	case n.dir && n.hostRoot != "":
		if !r.Dir {
			r.RespondError(errno(syscall.EISDIR))
			return
		}
		// Listed at open for the opener, as its files are rendered for
		// it, and not cached: the next container's listing differs. The
		// handle names the container, as a file's does, and costs its
		// snapshot budget; past it the reads list afresh.
		who := nr.who
		if !n.pt {
			who = s.owner(nr, r.Pid)
		}
		list, err := s.listPT(nr, who)
		if err != nil {
			s.fs.log.Warn("listing a pass-through directory failed", "dir", n.name, "err", err)
			r.RespondError(errnoOf(err))
			return
		}
		id := fileHandle(who, s.nextFH.Add(1))
		if s.keep(who, len(list)) {
			h := &handle{n: n, who: who, data: list, listing: true}
			for {
				if _, taken := s.handles.LoadOrStore(id, h); !taken {
					break
				}
				id = fileHandle(who, s.nextFH.Add(1))
			}
		}
		r.Respond(&fuse.OpenResponse{Handle: id})
		return
	case n.dir:
		if !r.Dir {
			r.RespondError(errno(syscall.EISDIR))
			return
		}
		r.Respond(&fuse.OpenResponse{Handle: fuse.HandleID(s.nextFH.Add(1)), Flags: fuse.OpenKeepCache | fuse.OpenCacheDir})
		return
	case !r.Flags.IsReadOnly() && s.isTrigger(n):
		s.openTrigger(nr, r)
		return
	case !r.Flags.IsReadOnly():
		r.RespondError(errno(syscall.EACCES))
		return
	case s.cached(nr):
		return s.openCached(r, nr)
	}
	start := time.Now()
	who := nr.who
	if !n.pt {
		who = s.owner(nr, r.Pid)
	}
	h := &handle{n: n, who: who}
	var storeReplaced atomic.Bool
	defer func() { abandoned = abandoned || storeReplaced.Load() }()
	return s.content(r, n, h.who, func(data []byte, err error) {
		if err != nil && n.pt {
			r.RespondError(errnoOf(err))
			return
		}
		if err != nil {
			s.fs.log.Warn("render failed", "file", n.name, "pid", r.Pid, "container", h.who, "err", err)
			n.st.RenderError()
			r.RespondError(errno(syscall.EIO))
			n.st.Observe(stats.OpOpen, time.Since(start))
			return
		}
		if s.setSize(nr, data) {
			storeReplaced.Store(true)
		}
		id := fileHandle(h.who, s.nextFH.Add(1))
		kept := s.keep(h.who, len(data))
		if kept {
			h.data, h.fresh = data, true
			for {
				if _, taken := s.handles.LoadOrStore(id, h); !taken {
					break
				}
				id = fileHandle(h.who, s.nextFH.Add(1))
			}
		}
		// Direct I/O keeps the page cache out of read(2): each reader's
		// reads reach us, so no reader sees a page cached for another.
		r.Respond(&fuse.OpenResponse{Handle: id, Flags: fuse.OpenDirectIO | openNoFlush})
		n.st.Observe(stats.OpOpen, time.Since(start))
		if !kept {
			s.recycle(data) // over budget: the first read renders again
		}
	})
}

// setSize tells the kernel the file's size for this opener before the open
// returns. Readers that copy with sendfile(2) or splice(2), as busybox cat
// does, read through the page cache up to the inode size, which direct I/O
// does not bypass; at size 0 they would read nothing. Storing the content's
// last byte at its offset grows the size to the content's length (a
// zero-length store would not); a shorter later read shrinks it again.
//
// The store waits for the page it writes, and a reader that maps the file
// (or reads it through the page cache) holds that page locked until we
// answer its READ: with every reading goroutine waiting in a store, nobody
// would, and the daemon hung for every container. So a store that waits
// longer than storeWait has another goroutine take its place reading the
// device, and replaced reports that this one should stop once done.
func (s *server) setSize(nr ref, data []byte) (replaced bool) {
	if len(data) == 0 {
		return false
	}
	const (
		storing = iota
		stored
		byTimer
	)
	var state atomic.Int32
	t := time.AfterFunc(storeWait, func() {
		if s.stuck.Add(1) > maxStuck {
			s.stuck.Add(-1)
			return
		}
		if !state.CompareAndSwap(storing, byTimer) {
			s.stuck.Add(-1)
			return
		}
		s.spawn()
	})
	last := len(data) - 1
	if err := s.conn.NotifyStore(nr.id, uint64(last), data[last:]); err != nil && !errors.Is(err, fuse.ErrNotCached) {
		s.fs.log.Debug("notify store failed", "file", nr.n.name, "err", err)
	}
	if state.CompareAndSwap(storing, stored) {
		t.Stop()
		return false
	}
	s.stuck.Add(-1)
	return true
}

// storeWait is how long a size store may hold its reading goroutine before
// another one reads the device in its place (see setSize).
const storeWait = 20 * time.Millisecond

// getattr reports a file's size as the length of the caller's open handle's
// snapshot (fstat), which the kernel takes as the file's size, else of the
// content the caller would read now, which only the caller gets (keepSize).
func (s *server) getattr(nr ref, r *fuse.GetattrRequest) (abandoned bool) {
	n := nr.n
	a := s.fs.attr(nr)
	if r.Flags&fuse.GetattrFh != 0 {
		if h, ok := s.handles.Load(r.Handle); ok {
			h.mu.Lock()
			kept := h.data != nil
			a.Size = uint64(len(h.data))
			h.mu.Unlock()
			// A snapshot forgotten since the lookup (its reader read to
			// the end) says nothing of the size: answering 0 would shrink
			// the inode and a sendfile reader would read nothing.
			if kept {
				r.Respond(&fuse.GetattrResponse{Attr: a})
				return false
			}
		}
	}
	who, ok := handleOwner(r.Handle)
	if r.Flags&fuse.GetattrFh == 0 || !ok {
		who = s.owner(nr, r.Pid)
	}
	s.keepSize(nr.id, n.name)
	return s.content(r, n, who, func(data []byte, err error) {
		if err == nil {
			a.Size = uint64(len(data))
		}
		r.Respond(&fuse.GetattrResponse{Attr: a})
		s.recycle(data)
	})
}

// keepSize makes the kernel ignore, for its inode, the attributes about to
// be answered for file id (LOOKUP, stat), so they never change the size an
// open told it (setSize). A sendfile or splice reader copies up to that size
// after its READ, and an attribute answer for another caller landing in
// between (a LOOKUP says 0; a stat is rendered for its caller) would
// otherwise cut the copy short or empty it: fuse_change_attributes sets
// i_size from any answer whose request was sent after the last change of
// the inode's attr_version, and truncates the page cache with it. An
// attributes-only invalidation (offset -1) moves attr_version past every
// request already sent; the caller still gets the answered attributes.
// It takes no page lock, so unlike a store it cannot wait on a reader.
func (s *server) keepSize(id fuse.NodeID, name string) {
	if err := s.conn.InvalidateNode(id, -1, 0); err != nil && !errors.Is(err, fuse.ErrNotCached) {
		s.fs.log.Debug("attribute invalidation failed", "file", name, "err", err)
	}
}

// recycle hands data, which nothing reads any more, back to the Renderer.
func (s *server) recycle(data []byte) {
	if s.fs.rc != nil && data != nil {
		s.fs.rc.Recycle(data)
	}
}

// read serves a file read. Offset 0 renders afresh (tools like top keep the
// file open and pread from 0 every refresh), except for the first read after
// open, which uses the content rendered at open; later offsets come from the
// same snapshot, so a reader reading in small chunks sees one consistent
// file. A handle this process never gave (the kernel kept it across a
// worker replacement, an upgrade or a restart) is taken on for the container
// named in it; one of a release that named none is answered for the process
// reading now, afresh each time, and never kept: another container's file
// may have the same number.
func (s *server) read(r *fuse.ReadRequest) (abandoned bool) {
	if nr, ok := s.ref(r.Hdr().Node); ok && s.cached(nr) {
		return s.readCached(r, nr)
	}
	start := time.Now()
	h, ok := s.handles.Load(r.Handle)
	if !ok {
		nr, ok := s.ref(r.Hdr().Node)
		n := nr.n
		if !ok || n.dir {
			r.RespondError(errno(syscall.EBADF))
			return false
		}
		who, tagged := handleOwner(r.Handle)
		if !tagged || r.Offset != 0 {
			if !tagged {
				who = s.owner(nr, r.Pid)
			}
			return s.content(r, n, who, func(data []byte, err error) {
				s.answerRead(r, n, data, err)
				s.recycle(data)
				n.st.Observe(stats.OpRead, time.Since(start))
			})
		}
		// From offset 0, a snapshot is kept again (within budget) for
		// the offsets that follow.
		h = &handle{n: n, who: who}
	}
	h.mu.Lock()
	if h.data != nil && (r.Offset != 0 || h.fresh) {
		h.fresh = false
		out := slice(h.data, r.Offset, r.Size)
		r.RespondData(out)
		h.mu.Unlock()
		h.n.st.Observe(stats.OpRead, time.Since(start))
		if len(out) == 0 {
			// The reader has read to the end: the snapshot goes now,
			// not at close, which may be much later.
			s.forget(r.Handle, h)
		}
		return false
	}
	// Not held while rendering: a render that never returns must not lock
	// the handle for the timer answering in its place.
	h.mu.Unlock()
	return s.content(r, h.n, h.who, func(data []byte, err error) {
		if err != nil && h.n.pt {
			r.RespondError(errnoOf(err))
			return
		}
		if err != nil {
			s.fs.log.Warn("render failed", "file", h.n.name, "container", h.who, "err", err)
			h.n.st.RenderError()
			r.RespondError(errno(syscall.EIO))
			h.n.st.Observe(stats.OpRead, time.Since(start))
			return
		}
		h.mu.Lock()
		old := h.data
		if old != nil {
			s.drop(h.who, len(old))
		}
		kept := s.keep(h.who, len(data))
		switch {
		case kept && old == nil:
			// Stored before the reply: the reader's next request (even
			// its close) may come as soon as it has the reply.
			if _, taken := s.handles.LoadOrStore(r.Handle, h); taken {
				s.drop(h.who, len(data))
				kept = false // another read kept a snapshot for it first
			}
		case !kept && old != nil:
			// Over budget: this handle keeps nothing, and renders at
			// each read.
			s.handles.CompareAndDelete(r.Handle, h)
		}
		h.data, h.fresh = nil, false
		if kept {
			h.data = data
		}
		r.RespondData(slice(data, r.Offset, r.Size))
		h.mu.Unlock()
		s.recycle(old)
		if !kept {
			s.recycle(data)
		}
		h.n.st.Observe(stats.OpRead, time.Since(start))
	})
}

// answerRead answers r from data, rendered for it alone.
func (s *server) answerRead(r *fuse.ReadRequest, n *node, data []byte, err error) {
	if err != nil && n.pt {
		r.RespondError(errnoOf(err))
		return
	}
	if err != nil {
		s.fs.log.Warn("render failed", "file", n.name, "pid", r.Pid, "err", err)
		n.st.RenderError()
		r.RespondError(errno(syscall.EIO))
		return
	}
	r.RespondData(slice(data, r.Offset, r.Size))
}

// slice is data[off:off+size], clipped to data.
func slice(data []byte, off int64, size int) []byte {
	if off >= int64(len(data)) {
		return nil
	}
	return data[off:min(off+int64(size), int64(len(data)))]
}

func (s *server) readDir(r *fuse.ReadRequest) {
	if v, ok := s.handles.Load(r.Handle); ok && v.listing {
		// Set at open and cleared by forget, under the lock; a listing is
		// never recycled, so the slice outlives the clearing. (The kernel
		// sends no RELEASEDIR while a READDIR of the handle is answered,
		// but the race detector cannot know that.)
		v.mu.Lock()
		data := v.data
		v.mu.Unlock()
		r.RespondData(slice(data, r.Offset, r.Size))
		return
	}
	nr, ok := s.ref(r.Hdr().Node)
	d := nr.n
	if !ok || !d.dir {
		r.RespondError(errno(syscall.ENOTDIR))
		return
	}
	dirents := d.dirents
	if nr.who != 0 && d.hostRoot == "" {
		dirents = s.fs.listingIn(d, nr.who)
	}
	if d.hostRoot != "" {
		// A handle from before a takeover, or past the budget: list
		// afresh, for the container the handle names when it names one.
		who, tagged := handleOwner(r.Handle)
		if !tagged {
			who = nr.who
			if !d.pt {
				who = s.owner(nr, r.Pid)
			}
		}
		list, err := s.listPT(nr, who)
		if err != nil {
			r.RespondError(errnoOf(err))
			return
		}
		dirents = list
	}
	r.RespondData(slice(dirents, r.Offset, r.Size))
}
