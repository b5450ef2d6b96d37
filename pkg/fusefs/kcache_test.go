package fusefs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bazil.org/fuse"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/fakeclock"
)

// cachedTree mounts meminfo and loadavg for scoped's container 5 with a
// TTL on a fake clock, and reports the invalidations sent on inval.
func cachedTree(t *testing.T, s *scoped, ttl time.Duration) (mp string, tree *FS, clock *fakeclock.Clock, inval chan fuse.NodeID) {
	t.Helper()
	return ttlTree(t, s, ttl, func(f *FS, k *kcache) { f.kc = k })
}

// ttlTree mounts meminfo and loadavg of s with a TTL on a fake clock, and
// hands set the kcache whose invalidations are reported on inval (the
// serving connection takes its test hook from it).
func ttlTree(t *testing.T, s Renderer, ttl time.Duration, set func(*FS, *kcache)) (mp string, tree *FS, clock *fakeclock.Clock, inval chan fuse.NodeID) {
	t.Helper()
	clock = fakeclock.New()
	inval = make(chan fuse.NodeID, 100)
	mp = mountTestWith(t, s, func(f *FS) {
		tree = f
		f.CacheTTL = ttl
		f.Now = clock.Now
		set(f, &kcache{invalidated: func(id fuse.NodeID) { inval <- id }})
	}, "proc/meminfo", "proc/loadavg")
	return mp, tree, clock, inval
}

// openRaw is openMount, failing the test on an error and closing the
// file at its end.
func openRaw(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := openMount(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// readRaw is readMount, failing the test on an error.
func readRaw(t *testing.T, path string) []byte {
	t.Helper()
	b, err := readMount(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

func (c *counter) renders() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

func readGen(t *testing.T, path string) string {
	t.Helper()
	b := readRaw(t, path)
	if !oneRender(b) {
		t.Fatalf("%s: %d bytes (%.20q): not one render", path, len(b), b)
	}
	first, _, _ := strings.Cut(string(b), "\n")
	return first
}

// oneRender says whether b is a whole render of counter's, all of one.
func oneRender(b []byte) bool {
	head, body, ok := strings.Cut(string(b), "\n")
	g, _, _ := strings.Cut(strings.TrimPrefix(head, "gen="), " ")
	return ok && len(b) == 10240 && g != "" && body == strings.Repeat(g[len(g)-1:], len(body))
}

// A container's own file is rendered once per TTL however often it is
// read (the kernel serves the rest); once the TTL has passed the daemon
// invalidates it, and only it (loadavg was never read), and the next read
// shows a new render. The shared tree renders at every read.
func TestCacheServesWithinTTLAndInvalidatesReadFiles(t *testing.T) {
	s := &scoped{}
	mp, tree, clock, inval := cachedTree(t, s, time.Hour)
	own := filepath.Join(mp, ".containers/5/proc/meminfo")
	first := readCached(t, s, own)
	shared := filepath.Join(mp, "proc/meminfo")
	a, b := readGen(t, shared), readGen(t, shared)
	if a == b {
		t.Errorf("the shared file read twice gave one render %q: it must not be cached", a)
	}

	select {
	case id := <-inval:
		t.Fatalf("invalidation of node %#x before the TTL passed", id)
	default:
	}
	clock.Add(time.Hour)
	tree.kc.poke()
	var st unix.Stat_t
	if err := unix.Stat(own, &st); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-inval:
		if uint64(id) != st.Ino {
			t.Errorf("invalidated node %#x, want meminfo's %#x", id, st.Ino)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no invalidation within 30s of the TTL passing")
	}
	if got := readGen(t, own); got == first {
		t.Errorf("read after the invalidation still shows %q", got)
	}
	select {
	case id := <-inval:
		t.Errorf("another invalidation (node %#x): loadavg was never read", id)
	case <-time.After(200 * time.Millisecond):
	}
}

// A reader that reads a multi-page file in small pieces sees one render,
// though the kernel asks for its pages one by one: an expiry due while it
// reads waits until no reader has opened for the grace (within the TTL,
// which it never passes).
func TestCacheReadInPiecesIsOneRender(t *testing.T) {
	s := &scoped{}
	const ttl = time.Hour
	grace := graceFor(ttl)
	mp, tree, clock, inval := cachedTree(t, s, ttl)
	own := filepath.Join(mp, ".containers/5/proc/meminfo")
	readGen(t, own)
	clock.Add(ttl - grace/2) // in the window before expiry
	f := openRaw(t, own)
	var got []byte
	buf := make([]byte, 100)
	for i := 0; ; i++ {
		if i == 5 {
			tree.kc.poke()
			select {
			case id := <-inval:
				t.Fatalf("node %#x invalidated while a reader that opened it within the grace (%v) reads it", id, grace)
			case <-time.After(200 * time.Millisecond):
			}
		}
		n, err := f.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil || n == 0 {
			break
		}
	}
	if !oneRender(got) {
		t.Errorf("read in 100-byte pieces: %d bytes, torn: %.20q", len(got), got)
	}
	clock.Add(grace / 2) // the TTL has passed: reader or not, it goes
	tree.kc.poke()
	select {
	case <-inval:
	case <-time.After(30 * time.Second):
		t.Fatal("no invalidation within 30s of the TTL passing")
	}
}

// readCached reads path 21 times and checks every read after the first
// got its bytes without a render (the kernel served them); it returns
// the first read's generation.
func readCached(t *testing.T, s *scoped, path string) string {
	t.Helper()
	first := readGen(t, path)
	before := s.renders()
	for range 20 {
		if got := readGen(t, path); got != first {
			t.Fatalf("read within the TTL: %q, want the cached %q", got, first)
		}
	}
	if n := s.renders() - before; n != 0 {
		t.Errorf("20 reads within the TTL rendered %d times, want 0 (served by the kernel)", n)
	}
	return first
}

// checkSizes checks that stat, read(2) and sendfile(2) of path all give
// want bytes, the same ones.
func checkSizes(t *testing.T, path string, want int) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil || st.Size() != int64(want) {
		t.Errorf("stat: %v (%v), want %d", st.Size(), err, want)
	}
	b := readRaw(t, path)
	if len(b) != want {
		t.Errorf("read: %d bytes, want %d", len(b), want)
	}
	f := openRaw(t, path)
	defer f.Close()
	if got := sendfileAll(t, f); len(got) != want || string(got) != string(b) {
		t.Errorf("sendfile: %d bytes (%.8q), want the read's %d (%.8q)", len(got), got, len(b), b)
	}
}

// expireTTL moves clock past the TTL and waits for kc's invalidation.
func expireTTL(t *testing.T, clock *fakeclock.Clock, kc *kcache, inval <-chan fuse.NodeID, ttl time.Duration) {
	t.Helper()
	clock.Add(ttl)
	kc.poke()
	select {
	case <-inval:
	case <-time.After(30 * time.Second):
		t.Fatal("no invalidation within 30s of the TTL passing")
	}
}

// scopedSized is sized with container 5 registered.
type scopedSized struct{ sized }

func (s *scopedSized) Alive(who uint32) bool { return who == 5 }

// Cached files report their render's size to stat, to read(2) and to
// sendfile(2) (busybox cat), before and after an expiry changes it, and a
// render made after the open does not show within the TTL.
func TestCacheSizes(t *testing.T) {
	s := &scopedSized{}
	const ttl = time.Hour
	clock := fakeclock.New()
	inval := make(chan fuse.NodeID, 100)
	var tree *FS
	s.n.Store(3000)
	mp := mountTestWith(t, s, func(f *FS) {
		tree = f
		f.CacheTTL = ttl
		f.Now = clock.Now
		f.kc = &kcache{invalidated: func(id fuse.NodeID) { inval <- id }}
	}, "proc/meminfo")
	own := filepath.Join(mp, ".containers/5/proc/meminfo")
	expire := func() { t.Helper(); expireTTL(t, clock, tree.kc, inval, ttl) }
	sizesAcrossExpiries(t, s, own, expire)
}

// sizesAcrossExpiries checks the sizes of own, a cached file of s whose
// render starts at 3000 bytes, as its render changes within the TTL and
// across expiries (expire).
func sizesAcrossExpiries(t *testing.T, s *scopedSized, own string, expire func()) {
	t.Helper()
	check := func(want int) { t.Helper(); checkSizes(t, own, want) }
	check(3000)
	s.n.Store(5000)
	check(3000) // cached: the render for 5000 is not made within the TTL
	s.n.Store(1000)
	expire()
	check(1000)

	// Grown after an expiry, and copied with sendfile before anything
	// asks for the size (busybox cat on a growing uptime): the open must
	// tell the kernel, which otherwise copies the previous render's
	// length.
	s.n.Store(4000)
	expire()
	f := openRaw(t, own)
	if got := sendfileAll(t, f); len(got) != 4000 {
		t.Errorf("sendfile straight after the open of a grown render: %d bytes, want 4000", len(got))
	}
	f.Close()
	check(4000)
}

// A process that takes the connection over has the kernel forget every file
// of the containers a predecessor served (FS.Known): it cannot know which
// of them the kernel still caches, nor how old they are; and again after
// the retire window, for what an upgrade's previous worker cached while
// both served.
func TestCacheForgetsPredecessorsFiles(t *testing.T) {
	s := &scoped{}
	inval := make(chan fuse.NodeID, 100)
	mountTestWith(t, s, func(f *FS) {
		f.CacheTTL = time.Hour
		f.Known = func() []uint32 { return []uint32{5, 7} }
		f.kc = &kcache{invalidated: func(id fuse.NodeID) { inval <- id }}
	}, "proc/meminfo", "proc/loadavg")
	// Once at start, and again once the previous worker of an upgrade,
	// which serves beside this one for a while, is gone.
	for pass := range 2 {
		want := map[fuse.NodeID]bool{5<<32 | 3: true, 5<<32 | 4: true, 7<<32 | 3: true, 7<<32 | 4: true} // 2 is proc
		for len(want) > 0 {
			select {
			case id := <-inval:
				if !want[id] {
					t.Errorf("pass %d: invalidated node %#x, not a file of containers 5 or 7 (or twice)", pass, id)
				}
				delete(want, id)
			case <-time.After(30 * time.Second):
				t.Fatalf("pass %d: not invalidated within 30s: %v", pass, want)
			}
		}
	}
}

// hanging renders container 5's files, hanging while hang is set until
// release is closed; its fallback (the host's file) answers at once.
type hanging struct {
	hang    atomic.Bool
	release chan struct{}
}

func (h *hanging) Identify(int) uint32             { return 1 }
func (h *hanging) Alive(who uint32) bool           { return who == 5 }
func (h *hanging) Fallback(string) ([]byte, error) { return []byte("fallback\n"), nil }

func (h *hanging) Render(string, uint32) ([]byte, error) {
	if h.hang.Load() {
		<-h.release
	}
	return []byte("rendered\n"), nil
}

// The host's file, answered in place of a render that outlived FS.Timeout,
// is for that read only: the next read renders again rather than find the
// host's figures cached for the TTL.
func TestCacheKeepsNoFallback(t *testing.T) {
	h := &hanging{release: make(chan struct{})}
	h.hang.Store(true)
	mp := mountTestWith(t, h, func(f *FS) {
		f.CacheTTL = time.Hour
		f.Timeout = 100 * time.Millisecond
	}, "proc/meminfo")
	own := filepath.Join(mp, ".containers/5/proc/meminfo")
	if b := readRaw(t, own); string(b) != "fallback\n" {
		t.Fatalf("read while the render hangs: %q; want the fallback", b)
	}
	h.hang.Store(false)
	close(h.release)
	if b := readRaw(t, own); string(b) != "rendered\n" {
		t.Errorf("read once renders work again: %q; want a render, not the fallback kept for the TTL", b)
	}
}

// The host files queued for forgetting (forgetHost) come out one ID per
// container and file, after the IDs listed (forget), none for the host's
// tree (container 0), and leave nothing queued.
func TestCacheForgetHostMakesEachID(t *testing.T) {
	c := newKcache(time.Hour, nil)
	c.forgetHost([]uint32{0, 5, 7}, []uint32{0xa, 0xb})
	c.forgetHost([]uint32{9}, []uint32{0xc})
	c.forgetHost([]uint32{0}, []uint32{0xd})
	c.forget(1)
	want := []fuse.NodeID{1,
		fuse.NodeID(ptIDOf(5, 0xa)), fuse.NodeID(ptIDOf(5, 0xb)),
		fuse.NodeID(ptIDOf(7, 0xa)), fuse.NodeID(ptIDOf(7, 0xb)),
		fuse.NodeID(ptIDOf(9, 0xc))}
	var got []fuse.NodeID
	for {
		it, _, ok := c.next()
		if !ok {
			break
		}
		if it.e != nil {
			t.Fatalf("forgotten file %#x came with an entry", it.id)
		}
		got = append(got, it.id)
	}
	if !slices.Equal(got, want) {
		t.Errorf("invalidated %#x, want %#x", got, want)
	}
	if c.hosts != nil {
		t.Errorf("%d host items still queued", len(c.hosts))
	}
}
