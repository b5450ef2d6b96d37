package fusefs

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bazil.org/fuse"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
)

// Kernel caching of the per-container files (FS.CacheTTL).
//
// A file of a container's own tree (.containers/ID/...) has one answer,
// that container's, whoever reads it: its inode is its alone, so the
// kernel's page cache and attribute cache may serve it. Each such file read
// since the last invalidation has one render here, its entry, valid for the
// TTL: opens answer FOPEN_KEEP_CACHE without rendering, reads fill the page
// cache from it, attributes give its length and stay valid until it
// expires. Repeated open/read/close then costs the daemon an OPEN and a
// RELEASE, and no render, until the entry expires; then one goroutine drops
// the entry and tells the kernel to forget the file's pages and size
// (FUSE_NOTIFY_INVAL_INODE), and the next read renders again. A file nobody
// reads has no entry and costs nothing.
//
// Entries are queued in the order they were made; the TTL is the same for
// all, so that is the order they expire in, and the queue is a FIFO: no
// heap, no timer per file. There is at most one entry per file of a running
// container in the queue, and its bytes count against the snapshot budget
// (server.keep), so the cache is bounded like the snapshots are.

// DefaultCacheTTL is lxcfs-fused's --cache-ttl: see docs/benchmarks.md for
// how it was chosen.
const DefaultCacheTTL = 100 * time.Millisecond

// retireWindow bounds how long the worker of the previous binary serves
// beside a new one after an upgrade (pkg/supervise stops it within 2 s).
const retireWindow = 3 * time.Second

// centry is one render of a cached file, valid until expires.
type centry struct {
	data    []byte
	who     uint32
	expires time.Time
	opened  atomic.Int64 // unix ns of the last open on it (or read from 0)
	sized   atomic.Bool  // its size was stored in the kernel (see openCached)
}

// Invalidating a file's pages while a reader is part way through it would
// have the rest of its read come from the next render: the kernel asks
// again for the pages it dropped. A reader that opens and reads a file
// takes microseconds, so the sweep starts graceFor(ttl) before an entry
// expires and waits, within that window, until no open has come for grace:
// a reader that finishes within grace of its open is never torn. The entry
// never outlives its TTL: at expiry it goes whoever reads.
func graceFor(ttl time.Duration) time.Duration {
	return min(ttl/4, 100*time.Millisecond)
}

type dueItem struct {
	id fuse.NodeID
	e  *centry // nil: invalidate without an entry to drop (a predecessor's)
	at time.Time
}

type kcache struct {
	ttl   time.Duration
	grace time.Duration
	now   func() time.Time

	mu     sync.Mutex
	files  map[fuse.NodeID]*centry
	due    []dueItem     // FIFO by at
	urgent []fuse.NodeID // due now, before the FIFO
	hosts  []*hostForget // due now, after urgent
	wake   chan struct{}
	stop   chan struct{}

	// invalidated, when set (tests), is told of every invalidation sent.
	invalidated func(fuse.NodeID)
}

func newKcache(ttl time.Duration, now func() time.Time) *kcache {
	if now == nil {
		now = time.Now
	}
	return &kcache{ttl: ttl, grace: graceFor(ttl), now: now, files: map[fuse.NodeID]*centry{},
		wake: make(chan struct{}, 1), stop: make(chan struct{})}
}

// cached says whether the node nr is served from the kernel's cache: a
// rendered file of a container's own tree, with a TTL set.
// On the own connection every file is (the kernel keeps the pages of each,
// see ServeOwn), the host's passed through too: they are then as old as
// the TTL at most, like the rest.
func (s *server) cached(nr ref) bool {
	return s.kc != nil && nr.who != 0 && !nr.n.dir && (!nr.n.pt || s.own && !nr.n.link)
}

// opening notes an open of e, or a read of it from 0: a reader starts.
func (c *kcache) opening(e *centry) {
	if e != nil {
		e.opened.Store(c.now().UnixNano())
	}
}

// get returns the live entry of file id, or nil. An entry lives until the
// sweep drops it, right before it invalidates the file, so that the pages
// the kernel holds are the live entry's up to the invalidation: one that
// expired by the clock a moment before the sweep reached it still answers.
func (c *kcache) get(id fuse.NodeID) *centry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.files[id]
}

// put makes data the entry of file id, unless another render made one
// meanwhile, which is returned instead (and ok false: data is not kept).
func (c *kcache) put(id fuse.NodeID, who uint32, data []byte) (e *centry, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.files[id]; e != nil {
		return e, false
	}
	e = &centry{data: data, who: who, expires: c.now().Add(c.ttl)}
	c.files[id] = e
	c.due = append(c.due, dueItem{id: id, e: e, at: e.expires.Add(-c.grace)})
	c.poke()
	return e, true
}

// forget queues an invalidation of every file in ids, due now: what a
// process that served the connection before this one may have left in the
// kernel's cache (see FS.Known), or pages an older render just put there.
func (c *kcache) forget(ids ...fuse.NodeID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.urgent = append(c.urgent, ids...)
	c.poke()
}

// hostForget is the host's files passed through in the trees of the
// containers who, to invalidate one at a time. A worker after another
// forgets them in every running container's tree: containers times host
// files (about 100 per CPU in /sys/devices/system/cpu) is 6 million IDs
// for 500 containers on a 128-CPU machine, so each is made when the sweep
// reaches it rather than listed beforehand.
type hostForget struct {
	who    []uint32
	hashes []uint32 // FS.hostFiles
	next   int      // who[next/len(hashes)], hashes[next%len(hashes)]
}

// forgetHost queues an invalidation of the files hashes names (FS.hostFiles)
// in the trees of the containers who, due now.
func (c *kcache) forgetHost(who, hashes []uint32) {
	who = slices.DeleteFunc(slices.Clone(who), func(w uint32) bool { return w == 0 })
	if len(who) == 0 || len(hashes) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hosts = append(c.hosts, &hostForget{who: who, hashes: hashes})
	c.poke()
}

// forgetHostFiles has the kernel forget the files passed through from the
// host in the own trees of the containers who.
func (s *server) forgetHostFiles(who []uint32) {
	if s.fs.pt != nil {
		s.kc.forgetHost(who, s.fs.hostFiles())
	}
}

func (c *kcache) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// next pops the first item due, or says how long until one is (0: none
// queued).
func (c *kcache) next() (it dueItem, wait time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.urgent) > 0 {
		id := c.urgent[0]
		if c.urgent = c.urgent[1:]; len(c.urgent) == 0 {
			c.urgent = nil
		}
		return dueItem{id: id}, 0, true
	}
	if len(c.hosts) > 0 {
		h := c.hosts[0]
		id := fuse.NodeID(ptIDOf(h.who[h.next/len(h.hashes)], h.hashes[h.next%len(h.hashes)]))
		if h.next++; h.next == len(h.who)*len(h.hashes) {
			c.hosts[0] = nil
			if c.hosts = c.hosts[1:]; len(c.hosts) == 0 {
				c.hosts = nil
			}
		}
		return dueItem{id: id}, 0, true
	}
	if len(c.due) == 0 {
		return dueItem{}, 0, false
	}
	it = c.due[0]
	due := it.at
	if it.e != nil {
		if opened := time.Unix(0, it.e.opened.Load()).Add(c.grace); opened.After(due) {
			due = opened
		}
		if due.After(it.e.expires) {
			due = it.e.expires
		}
	}
	if d := due.Sub(c.now()); d > 0 {
		return dueItem{}, d, false
	}
	c.due[0] = dueItem{}
	c.due = c.due[1:]
	if len(c.due) == 0 {
		c.due = nil // let the backing array go
	}
	delete(c.files, it.id) // the item's own entry: one per file
	return it, 0, true
}

// sweep invalidates files as their entries expire, until the connection
// ends. It runs in a goroutine of its own: dropping pages waits for a page
// that a reader holds locked until its READ is answered, which the reading
// goroutines do meanwhile.
func (s *server) sweep() {
	c := s.kc
	for {
		it, wait, ok := c.next()
		if ok {
			if it.e != nil {
				s.drop(it.e.who, len(it.e.data))
			}
			// Pages and size: the next read renders, the next stat asks.
			if err := s.conn.InvalidateNode(it.id, 0, -1); err != nil && !errors.Is(err, fuse.ErrNotCached) {
				s.fs.log.Debug("cache invalidation failed", "node", it.id, "err", err)
			}
			if s.own {
				s.overstateSize(it.id)
			}
			if c.invalidated != nil {
				c.invalidated(it.id)
			}
			continue
		}
		var t *time.Timer
		var timer <-chan time.Time
		if wait > 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-c.stop:
			return
		case <-c.wake:
		case <-timer:
		}
		if t != nil {
			t.Stop()
		}
	}
}

// entry returns file nr's live entry, rendering it when there is none, and
// passes it to answer exactly once. A nil entry with a nil error means the
// answer is not kept (over budget, or the host's fallback): answer uses data
// then, uncached.
func (s *server) entry(req fuse.Request, nr ref, answer func(e *centry, data []byte, err error)) (abandoned bool) {
	if e := s.kc.get(nr.id); e != nil {
		answer(e, e.data, nil)
		return false
	}
	start := time.Now()
	return s.content(req, nr.n, nr.who, func(data []byte, err error) {
		if err != nil {
			answer(nil, nil, err)
			return
		}
		// An answer that took FS.Timeout is the host's file, given in
		// place of a render that hangs (or one that only just beat
		// it): for this request only, not for the TTL.
		late := s.fs.Timeout > 0 && time.Since(start) >= s.fs.Timeout
		if late || !s.keep(nr.who, len(data)) {
			answer(nil, data, nil)
			s.recycle(data)
			return
		}
		e, fresh := s.kc.put(nr.id, nr.who, data)
		if !fresh {
			s.drop(nr.who, len(data))
			s.recycle(data)
		}
		answer(e, e.data, nil)
	})
}

// cachedAttr is the attributes of a cached file: its entry's size, valid in
// the kernel for as long as the entry is.
func (s *server) cachedAttr(nr ref, e *centry, data []byte) fuse.Attr {
	a := s.fs.attr(nr)
	if nr.n.pt { // the host's file, passed through (own connection)
		if st, err := hostStat(nr.n); err == nil {
			a = s.fs.ptAttr(nr.n, &st)
		}
	}
	a.Size = uint64(len(data))
	if e != nil {
		a.Valid = max(e.expires.Sub(s.kc.now()), 0)
	}
	return a
}

// openCached opens a cached file: no render while its entry lives, and the
// kernel keeps the pages it has. The handle keeps nothing: every read of the
// file is answered from its live entry (see readCached).
func (s *server) openCached(r *fuse.OpenRequest, nr ref) (abandoned bool) {
	start := time.Now()
	var storeReplaced atomic.Bool
	defer func() { abandoned = abandoned || storeReplaced.Load() }()
	return s.entry(r, nr, func(e *centry, data []byte, err error) {
		defer func() { nr.n.st.Observe(stats.OpOpen, time.Since(start)) }()
		if err != nil {
			s.fs.log.Warn("render failed", "file", nr.n.name, "container", nr.who, "err", err)
			nr.n.st.RenderError()
			r.RespondError(errno(syscall.EIO))
			return
		}
		// A sendfile or splice reader (busybox cat) copies up to the
		// inode's size and never asks for it again, and an invalidation
		// leaves the size as the last entry had it: a render that grew
		// (uptime passing 10 s) was cut short. The first open of each
		// entry stores its size, as uncached opens do (setSize); one that
		// shrank is cut by its short read.
		if e == nil || e.sized.CompareAndSwap(false, true) {
			if s.setSize(nr, data) {
				storeReplaced.Store(true)
			}
		}
		s.kc.opening(e)
		flags := fuse.OpenKeepCache | openNoFlush
		if e == nil {
			// Not kept: served as with no TTL, rendered per read.
			flags = fuse.OpenDirectIO | openNoFlush
		}
		r.Respond(&fuse.OpenResponse{Handle: fileHandle(nr.who, s.nextFH.Add(1)), Flags: flags})
	})
}

// readCached fills the kernel's page cache of a cached file from its live
// entry, at any offset. The kernel asks page by page (no readahead), and
// drops every page of the file at once when the entry expires, so the pages
// it holds are always one render's.
//
// Not the render an open saw: a page refilled for a reader whose read
// straddled an expiry would sit in the cache beside a newer render's pages,
// for the next reader to get a torn file and a figure older than the TTL.
// The straddling reader sees the rest of the file from the newer render
// instead; the grace before an expiry (graceFor) keeps readers that read
// promptly after their open out of that case.
func (s *server) readCached(r *fuse.ReadRequest, nr ref) (abandoned bool) {
	start := time.Now()
	return s.entry(r, nr, func(e *centry, data []byte, err error) {
		defer func() { nr.n.st.Observe(stats.OpRead, time.Since(start)) }()
		if err != nil {
			s.fs.log.Warn("render failed", "file", nr.n.name, "container", nr.who, "err", err)
			nr.n.st.RenderError()
			r.RespondError(errno(syscall.EIO))
			return
		}
		if r.Offset == 0 {
			s.kc.opening(e)
		}
		r.RespondData(slice(data, r.Offset, r.Size))
	})
}

// sizeBound is above any render's length (see overstateSize).
const sizeBound = 1 << 24

// overstateSize makes the kernel take the just invalidated file id for
// longer than any render. The invalidation leaves the size the last render
// had, and on the own connection no open tells the kernel the next one: a
// sendfile or splice reader (busybox cat) copies up to the size without
// asking for it (filemap_splice_read, Linux 6.5+), so a render that grew
// (uptime passing 10 s) was cut short. Overstated, the copy reads the first
// page, whose READ answer is short of it, and the kernel cuts the size to
// the render's length there (fuse_short_read); a stat asks (the attributes
// were invalidated) and gets the length. The store takes no page a reader
// may hold: the one at sizeBound-1 is nobody's.
//
// A page a reader had filled between the invalidation and the store would
// be copied whole up to the overstated size (the render, then zeros): so
// the pages are invalidated once more after the store. A reader would have
// to fill a page in the microseconds between the first two notifications
// and another read it between the last two for that to show.
func (s *server) overstateSize(id fuse.NodeID) {
	if err := s.conn.NotifyStore(id, sizeBound-1, []byte{0}); err != nil {
		if !errors.Is(err, fuse.ErrNotCached) {
			s.fs.log.Debug("size store failed", "node", id, "err", err)
		}
		return
	}
	if err := s.conn.InvalidateNode(id, 0, -1); err != nil && !errors.Is(err, fuse.ErrNotCached) {
		s.fs.log.Debug("cache invalidation failed", "node", id, "err", err)
	}
}

// DropCached has the kernel forget every file the own connection (ServeOwn)
// has cached, for a worker about to exit. The kernel opens no file there
// and a splice read asks for nothing the page cache holds, so pages left
// behind would be served, stale, for as long as nobody serves the
// connection (a stopped daemon): forgotten, the next read reaches the
// connection and fails ("not connected") until a daemon serves it. A
// worker killed outright cannot do this; the next one forgets its
// predecessor's files before it serves (FS.Known). It gives up after
// timeout: an invalidation waits for a page a reader holds until its READ
// is answered.
func (f *FS) DropCached(timeout time.Duration) {
	f.kcMu.Lock()
	drop := f.ownDrop
	f.kcMu.Unlock()
	if drop == nil {
		return
	}
	done := make(chan struct{})
	go func() { defer close(done); drop() }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// dropCached drops every entry and invalidates its file.
func (s *server) dropCached() {
	c := s.kc
	c.mu.Lock()
	ids := make([]fuse.NodeID, 0, len(c.files))
	for id := range c.files {
		ids = append(ids, id)
	}
	c.files = map[fuse.NodeID]*centry{}
	c.mu.Unlock()
	for _, id := range ids {
		if err := s.conn.InvalidateNode(id, 0, -1); err != nil && !errors.Is(err, fuse.ErrNotCached) {
			s.fs.log.Debug("cache invalidation failed", "node", id, "err", err)
		}
	}
}
