package fusefs

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"bazil.org/fuse"

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
