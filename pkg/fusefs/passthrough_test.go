package fusefs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"bazil.org/fuse"
)

// ptRenderer serves the CPU directory's online file and passes the rest of
// a host directory through, hiding the cpuN names in hide.
type ptRenderer struct {
	host string
	hide atomic.Value // []string
}

func (p *ptRenderer) Identify(pid int) uint32                        { return 1 }
func (p *ptRenderer) Render(name string, who uint32) ([]byte, error) { return []byte("0\n"), nil }
func (p *ptRenderer) HostDir(dir string) string {
	if dir == "sys/devices/system/cpu" {
		return p.host
	}
	return ""
}
func (p *ptRenderer) Alive(who uint32) bool { return who == 5 }
func (p *ptRenderer) Hidden(dir string, who uint32) func(string) bool {
	hide, _ := p.hide.Load().([]string)
	return func(name string) bool { return slices.Contains(hide, name) }
}

// hostCPUDir builds a small /sys/devices/system/cpu: two CPUs with a
// topology file and a relative symlink each, a shared directory, a
// write-only file, and a symlink planted to lead out of the tree.
func hostCPUDir(t *testing.T) string {
	t.Helper()
	host := t.TempDir()
	for _, cpu := range []string{"cpu0", "cpu1"} {
		must(t, os.MkdirAll(filepath.Join(host, cpu, "topology"), 0o755))
		must(t, os.WriteFile(filepath.Join(host, cpu, "topology", "core_id"), []byte(cpu[3:]+"\n"), 0o444))
		must(t, os.Symlink("../../../../bus/cpu", filepath.Join(host, cpu, "subsystem")))
	}
	must(t, os.MkdirAll(filepath.Join(host, "cpufreq"), 0o755))
	must(t, os.WriteFile(filepath.Join(host, "kernel_max"), []byte("8191\n"), 0o444))
	must(t, os.WriteFile(filepath.Join(host, "online"), []byte("0-1\n"), 0o444))
	must(t, os.WriteFile(filepath.Join(host, "probe"), nil, 0o200))
	secret := t.TempDir()
	must(t, os.WriteFile(filepath.Join(secret, "key"), []byte("secret\n"), 0o444))
	must(t, os.Symlink(secret, filepath.Join(host, "escape")))
	return host
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestPassthroughCPUDir(t *testing.T) {
	host := hostCPUDir(t)
	r := &ptRenderer{host: host}
	r.hide.Store([]string{"cpu1"})
	mp := mountTest(t, r, "proc/meminfo", "sys/devices/system/cpu/online")
	dir := filepath.Join(mp, "sys/devices/system/cpu")

	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got, want := strings.Join(names, " "), "cpu0 cpufreq escape kernel_max online probe"; got != want {
		t.Errorf("listing = %s, want %s (cpu1 hidden, online served, the rest the host's)", got, want)
	}
	if b, err := readMount(filepath.Join(dir, "online")); err != nil || string(b) != "0\n" {
		t.Errorf("online = %q, %v: want the rendered file, not the host's", b, err)
	}
	if b, err := readMount(filepath.Join(dir, "cpu0/topology/core_id")); err != nil || string(b) != "0\n" {
		t.Errorf("cpu0/topology/core_id = %q, %v: want the host's", b, err)
	}
	if b, err := readMount(filepath.Join(dir, "kernel_max")); err != nil || string(b) != "8191\n" {
		t.Errorf("kernel_max = %q, %v: want the host's", b, err)
	}
	if l, err := os.Readlink(filepath.Join(dir, "cpu0/subsystem")); err != nil || l != "../../../../bus/cpu" {
		t.Errorf("cpu0/subsystem -> %q, %v: want the host's link text", l, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cpu1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stat hidden cpu1: %v, want ENOENT", err)
	}
	if _, err := readMount(filepath.Join(dir, "cpu1/topology/core_id")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read below hidden cpu1: %v, want ENOENT", err)
	}
	if _, err := readMount(filepath.Join(dir, "nothere")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read of a name the host lacks: %v, want ENOENT", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cpu0/topology/core_id"), []byte("1"), 0); err == nil {
		t.Errorf("a pass-through file took a write")
	}

	// Visibility follows the reader's view at every lookup: no answer
	// given to one reader is cached for the next.
	r.hide.Store([]string{"cpu0"})
	if _, err := os.Stat(filepath.Join(dir, "cpu1")); err != nil {
		t.Errorf("cpu1 once shown: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cpu0")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cpu0 once hidden: stat %v, want ENOENT", err)
	}
}

// The daemon never reads through a symlink of the host tree: what the
// kernel resolves in the reader's namespace is the reader's business, but
// the daemon's own reads stay below the host directory.
func TestPassthroughNoSymlinkEscape(t *testing.T) {
	host := hostCPUDir(t)
	n := &node{pt: true, hostRoot: host, hostRel: "escape/key"}
	if b, err := hostRead(n); err == nil {
		t.Fatalf("read through a host symlink: %q", b)
	}
	if _, err := hostStat(n); err == nil {
		t.Errorf("stat through a host symlink succeeded")
	}
	n.hostRel = "../" + filepath.Base(host) + "/kernel_max"
	if _, err := hostRead(n); err == nil {
		t.Errorf("read with .. out of the root succeeded")
	}
	n.hostRel = "probe"
	_, err := hostRead(n)
	if os.Geteuid() != 0 && !errors.Is(err, syscall.EACCES) {
		t.Errorf("write-only file: %v, want EACCES", err)
	}
}

// Pass-through node IDs are the same in every process, and one this
// process never handed out (a daemon that took over the connection) is
// found again from the host tree.
func TestPassthroughIDsAfterTakeover(t *testing.T) {
	host := hostCPUDir(t)
	r := &ptRenderer{host: host}
	files := []string{"proc/meminfo", "sys/devices/system/cpu/online"}
	a, err := New(files, r, nil)
	must(t, err)
	b, err := New(files, r, nil)
	must(t, err)
	id := ptID(0, "sys/devices/system/cpu/cpu0/topology/core_id")
	if _, ok := a.ref(0); ok {
		t.Fatal("node 0 exists")
	}
	nr, ok := b.ref(fuseNodeID(id))
	if !ok || nr.n.hostRel != "cpu0/topology/core_id" || nr.n.inode != id || nr.who != 0 {
		t.Fatalf("takeover: node %#x = %+v, want cpu0/topology/core_id", id, nr.n)
	}
	if _, ok := b.ref(fuseNodeID(ptID(0, "sys/devices/system/cpu/escape/key"))); ok {
		t.Errorf("a path through a host symlink got a node")
	}
	// A container's own tree: the same path is another inode, found again
	// after a takeover, named by its container.
	cid := ptID(5, "sys/devices/system/cpu/cpu0/topology/core_id")
	if cid == id || cid&ptBit == 0 || cid>>32&0x7fffffff != 5 {
		t.Fatalf("container 5's ID %#x: want bit 63, the container in bits 62-32, and not the shared tree's %#x", cid, id)
	}
	nr, ok = b.ref(fuseNodeID(cid))
	if !ok || nr.who != 5 || nr.n.inode != cid || nr.n.hostRel != "cpu0/topology/core_id" {
		t.Fatalf("takeover in container 5's tree: %#x = %+v (who %d)", cid, nr.n, nr.who)
	}
}

func fuseNodeID(id uint64) fuse.NodeID { return fuse.NodeID(id) }

// hostFiles, which a worker after another forgets in every container's own
// tree, are the host's files the directory shows: no directory, no link, no
// name the tree renders itself.
func TestPassthroughHostFiles(t *testing.T) {
	r := &ptRenderer{host: hostCPUDir(t)}
	f, err := New([]string{"proc/meminfo", "sys/devices/system/cpu/online"}, r, nil)
	must(t, err)
	var got, want []uint64
	for _, h := range f.hostFiles() {
		got = append(got, ptIDOf(5, h))
	}
	for _, p := range []string{"cpu0/topology/core_id", "cpu1/topology/core_id", "kernel_max", "probe"} {
		want = append(want, ptID(5, "sys/devices/system/cpu/"+p))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("host files %x, want %x (cpu0 and cpu1's core_id, kernel_max, probe)", got, want)
	}
	f.ptState.mu.RLock()
	defer f.ptState.mu.RUnlock()
	if len(f.ptState.nodes) != 0 {
		t.Errorf("listing the host files registered %d nodes", len(f.ptState.nodes))
	}
}

// A process that took the connection over registers the nodes the kernel
// asks for and the directories above them, not the container's whole tree:
// a whole tree per container the kernel asked anything of was 268 nodes on
// a 2-CPU machine, about 60 KiB of heap per container for the worker's life.
func TestPassthroughTakeoverRegistersOnlyWhatIsAsked(t *testing.T) {
	r := &ptRenderer{host: hostCPUDir(t)}
	f, err := New([]string{"proc/meminfo", "sys/devices/system/cpu/online"}, r, nil)
	must(t, err)
	id := ptID(5, "sys/devices/system/cpu/cpu0/topology/core_id")
	nr, ok := f.ref(fuseNodeID(id))
	if !ok || nr.n.hostRel != "cpu0/topology/core_id" || nr.n.dir {
		t.Fatalf("takeover: node %#x = %+v, want the file cpu0/topology/core_id", id, nr.n)
	}
	f.ptState.mu.RLock()
	var names []string
	for _, n := range f.ptState.nodes {
		names = append(names, n.hostRel)
	}
	f.ptState.mu.RUnlock()
	slices.Sort(names)
	if want := []string{"cpu0", "cpu0/topology", "cpu0/topology/core_id"}; !slices.Equal(names, want) {
		t.Errorf("registered %q, want %q: the file and the directories above it", names, want)
	}
	if nr, ok := f.ref(fuseNodeID(ptID(5, "sys/devices/system/cpu/cpu0/topology"))); !ok || !nr.n.dir {
		t.Errorf("the directory above it: %+v, %v", nr.n, ok)
	}
	if nr, ok := f.ref(fuseNodeID(ptID(5, "sys/devices/system/cpu/cpu1/subsystem"))); !ok || !nr.n.link {
		t.Errorf("a link: %+v, %v", nr.n, ok)
	}
}

// The nodes a container's lookups made in its CPU directory go with the
// container: the periodic prune drops a gone container's and keeps a
// running one's, and a node the kernel still names is found again.
func TestPassthroughPruneDropsGoneContainers(t *testing.T) {
	r := &ptRenderer{host: hostCPUDir(t)} // container 5 runs, 7 is gone
	f, err := New([]string{"proc/meminfo", "sys/devices/system/cpu/online"}, r, nil)
	must(t, err)
	for _, who := range []uint32{5, 7} {
		if _, ok := f.ref(fuseNodeID(ptID(who, "sys/devices/system/cpu/cpu0/topology/core_id"))); !ok {
			t.Fatalf("container %d's core_id not found", who)
		}
	}
	f.PruneGone()
	f.ptState.mu.RLock()
	kept := map[uint32]int{}
	for id := range f.ptState.nodes {
		kept[ptWho(id)]++
	}
	f.ptState.mu.RUnlock()
	if kept[7] != 0 || kept[5] != 3 {
		t.Errorf("nodes kept per container after the prune: %v, want 3 of running 5's and none of gone 7's", kept)
	}
	if nr, ok := f.ref(fuseNodeID(ptID(7, "sys/devices/system/cpu/cpu0/topology/core_id"))); !ok || nr.n.hostRel != "cpu0/topology/core_id" {
		t.Errorf("a pruned node the kernel names again: %+v, %v", nr.n, ok)
	}
}
