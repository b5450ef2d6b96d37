package fusefs

import (
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"bazil.org/fuse"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/fakeclock"
)

// ownTree is cachedTree with the containers' own trees also served on a
// connection of their own (ServeOwn), attached at MOUNT/.containers as
// lxcfs-fused does it.
func ownTree(t *testing.T, s Renderer, ttl time.Duration) (mp string, tree *FS, clock *fakeclock.Clock, inval chan fuse.NodeID) {
	t.Helper()
	mp, tree, clock, inval = ttlTree(t, s, ttl, func(f *FS, k *kcache) { f.ownKc = k })
	attachOwn(t, mp, tree)
	return mp, tree, clock, inval
}

// attachOwn serves tree's own connection (ServeOwn) at mp/.containers, the
// first connection being served at mp.
func attachOwn(t *testing.T, mp string, tree *FS) {
	t.Helper()
	conn, mnt, err := MountDetached()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tree.ServeOwn(conn, 2) }()
	own := filepath.Join(mp, containersName)
	err = Attach(mnt, own, tree.log)
	mnt.Close()
	if err != nil {
		t.Fatal(err)
	}
	// Runs before mountTestWith's: the own mount goes first.
	t.Cleanup(func() {
		if err := Unmount(own); err != nil {
			t.Errorf("unmount: %v", err)
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve own: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("ServeOwn did not stop within 30s")
		}
	})
}

// On the own connection no OPEN reaches the daemon after the first, which
// it answers ENOSYS (FUSE no-open): a container's file read again and
// again within the TTL costs no render and no request, a stat gives the
// render's size, and once the TTL has passed the daemon invalidates the
// file and the next read shows a new render.
func TestOwnConnectionNoOpen(t *testing.T) {
	s := &scoped{}
	mp, tree, clock, inval := ownTree(t, s, time.Hour)
	path := filepath.Join(mp, ".containers/5/proc/meminfo")
	first := readCached(t, s, path)
	if st, err := os.Stat(path); err != nil || st.Size() != 10240 {
		t.Errorf("stat: %v, %v: want the render's size 10240", st, err)
	}
	if n := tree.ownOpens.Load(); n != 1 {
		t.Errorf("%d OPENs of files reached the own connection, want 1 (answered ENOSYS, then none)", n)
	}
	clock.Add(time.Hour)
	tree.ownKc.poke()
	select {
	case <-inval:
	case <-time.After(30 * time.Second):
		t.Fatal("no invalidation within 30s of the TTL passing")
	}
	if got := readGen(t, path); got == first {
		t.Errorf("read after the TTL passed still shows %q", got)
	}
	// The shared tree on the first connection renders at every read.
	shared := filepath.Join(mp, "proc/meminfo")
	if a, b := readGen(t, shared), readGen(t, shared); a == b {
		t.Errorf("the shared file read twice gave one render %q", a)
	}
}

// Own-connection files report their render's size to stat, to read(2) and
// to sendfile(2) (busybox cat), before and after an expiry changes it,
// though no open reaches the daemon to tell the kernel the size.
func TestOwnConnectionSizes(t *testing.T) {
	s := &scopedSized{}
	s.n.Store(3000)
	const ttl = time.Hour
	mp, tree, clock, inval := ownTree(t, s, ttl)
	own := filepath.Join(mp, ".containers/5/proc/meminfo")
	expire := func() { t.Helper(); expireTTL(t, clock, tree.ownKc, inval, ttl) }
	sizesAcrossExpiries(t, s, own, expire)
}

// A worker that takes over has the kernel forget the host's files passed
// through in every known container's own tree (they may be cached on the
// own connection), without keeping a node for each: the IDs are made from
// one walk of the host tree. Registering every container's nodes instead
// kept all of them (268 entries per container in a 2-CPU machine's
// /sys/devices/system/cpu: 30 MiB of heap at 500 containers) for as long
// as the worker ran, whether any container ever looked at the directory.
func TestOwnConnectionForgetsHostFilesWithoutNodes(t *testing.T) {
	r := &ptRenderer{host: hostCPUDir(t)}
	const containers = 300
	known := make([]uint32, containers)
	for i := range known {
		known[i] = uint32(i + 1)
	}
	inval := make(chan fuse.NodeID, 64)
	var tree *FS
	mp := mountTestWith(t, r, func(f *FS) {
		tree = f
		f.CacheTTL = time.Hour
		f.Known = func() []uint32 { return known }
		f.ownKc = &kcache{invalidated: func(id fuse.NodeID) { inval <- id }}
	}, "proc/meminfo", "sys/devices/system/cpu/online")
	attachOwn(t, mp, tree)

	want := map[fuse.NodeID]bool{}
	for _, w := range known {
		for _, p := range []string{"cpu0/topology/core_id", "cpu1/topology/core_id", "kernel_max", "probe"} {
			want[fuse.NodeID(ptID(w, "sys/devices/system/cpu/"+p))] = true
		}
	}
	deadline := time.After(60 * time.Second)
	for len(want) > 0 {
		select {
		case id := <-inval:
			delete(want, id)
		case <-deadline:
			t.Fatalf("%d of the known containers' host files not invalidated within 60s", len(want))
		}
	}
	tree.ptState.mu.RLock()
	nodes := len(tree.ptState.nodes)
	tree.ptState.mu.RUnlock()
	if nodes != 0 {
		t.Errorf("%d pass-through nodes kept after forgetting %d containers' host files, want 0: nothing looked them up", nodes, containers)
	}
}

// spared is scoped with container 6 reserved ahead of registration (a
// spare) until bound: its tree can be looked up, but it is nobody's yet.
type spared struct {
	scoped
	spare atomic.Bool
}

func (s *spared) Alive(who uint32) bool { return who == 5 || who == 6 }
func (s *spared) Spare(who uint32) bool { return who == 6 && s.spare.Load() }

// The daemon looks a spare's tree up before any container has the ID, so a
// new container's hook finds its names cached: the lookups render nothing
// (the files are nobody's yet), the names outlive the usual entry validity,
// and once the ID is given the first reader gets a render for its
// container, whole, even one that copies with sendfile up to the size the
// kernel holds; forgotten after that, the names are looked up
// again like any container's (so they go once the container is gone).
func TestSpareTreeWarmedWithoutRender(t *testing.T) {
	s := &spared{}
	s.spare.Store(true)
	mp, tree, _, _ := ownTree(t, s, time.Hour)
	own := filepath.Join(mp, ".containers/6/proc/meminfo")
	warm := func() {
		t.Helper()
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, own, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_DONT_SYNC, unix.STATX_TYPE, &stx); err != nil {
			t.Fatalf("look up the spare's file: %v", err)
		}
	}
	warm()
	if n := s.renders(); n != 0 {
		t.Fatalf("looking up a spare's file rendered it %d times, want 0 (it is nobody's yet)", n)
	}
	// Past the usual entry validity, the names are still the kernel's.
	before := tree.lookups.Load()
	time.Sleep(entryValid + 100*time.Millisecond)
	warm()
	if n := tree.lookups.Load() - before; n != 0 {
		t.Errorf("%d LOOKUPs for the spare's names after %v, want 0 (kept until a container has them)", n, entryValid)
	}

	// The first reader copies with sendfile (busybox cat), which reads up
	// to the size the kernel has without asking for it.
	s.spare.Store(false)
	f := openRaw(t, own)
	got := sendfileAll(t, f)
	f.Close()
	if len(got) != 10240 || !strings.Contains(string(got), " who=6\n") {
		t.Errorf("first read after the ID was given, by sendfile: %d bytes (%.20q), want a render of 10240 for container 6", len(got), got)
	}
	checkSizes(t, own, 10240)

	// Once forgotten, the names are looked up again, as any container's.
	tree.ForgetNames(6)
	before = tree.lookups.Load()
	warm()
	if n := tree.lookups.Load() - before; n == 0 {
		t.Errorf("no LOOKUP after the given spare's names were forgotten: the kernel still keeps them")
	}
}
