package fusefs

import (
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"bazil.org/fuse"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
)

// Passthrough is a Renderer some of whose directories also show a host
// directory's entries, passed through as the host has them
// (/sys/devices/system/cpu: cpuN/, cpufreq, vulnerabilities, ...), beside
// the rendered files the directory holds.
type Passthrough interface {
	// HostDir names the host directory whose entries the served
	// directory dir (such as "sys/devices/system/cpu") shows, or "".
	HostDir(dir string) string
	// Hidden returns which of dir's host entries container who (an ID
	// from Identify, 0 for the host) must not see, or nil for none. It is
	// asked for the directory's own entries only: what lies below a shown
	// entry is the host's.
	Hidden(dir string, who uint32) func(name string) bool
}

// Pass-through entries get node IDs of their own, out of the fixed tree's
// range and of the per-container trees' (who<<32 | NodeTable ID, bit 63
// clear):
//
//	bit 63      1
//	bits 62-32  the tree's container ID, 0 for the shared tree
//	bits 31-0   a hash of the served path
//
// So a daemon that takes over the connection gives every path of every
// tree the ID the kernel holds, and a container's cpuN directory is an
// inode of its own tree, never aliased with another tree's. Two paths whose
// hashes collide: the later one stays hidden (see register).
const (
	ptBit       = uint64(1) << 63
	maxPTRead   = 1 << 20 // a sysfs attribute is a page; binary ones are bounded here
	maxPTNodes  = 1 << 18 // bounds the node table a hostile host tree could grow
	rescanEvery = time.Second
)

// ptState is the pass-through part of an FS.
type ptState struct {
	mu    sync.RWMutex
	nodes map[uint64]*node

	indexMu sync.Mutex
	index   map[uint32]hostEntry // by ptHash, see hostIndex
	indexAt time.Time
}

// hostEntry is an entry of a host directory a pass-through directory shows:
// rel is its path below top's host directory.
type hostEntry struct {
	top  *node
	rel  string
	mode uint32 // type bits
}

func ptID(who uint32, name string) uint64 { return ptIDOf(who, ptHash(name)) }

// ptHash is the part of a pass-through ID that names the served path, the
// same in every tree.
func ptHash(name string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(name))
	return h.Sum32()
}

func ptIDOf(who, hash uint32) uint64 { return ptBit | uint64(who&0x7fffffff)<<32 | uint64(hash) }

// ptWho is the container whose tree a pass-through ID belongs to.
func ptWho(id uint64) uint32 { return uint32(id>>32) & 0x7fffffff }

// setupPassthrough marks the fixed directories that show a host directory.
func (f *FS) setupPassthrough() {
	if f.pt == nil {
		return
	}
	for _, n := range f.nodes[1:] {
		if n != nil && n.dir {
			if root := f.pt.HostDir(n.name); root != "" {
				n.hostRoot, n.hostRel = root, "."
			}
		}
	}
}

// register returns the pass-through node for the entry name of dir in the
// tree of container who, adding it to the table; nil when its ID is another
// path's (a hash collision, which then stays hidden rather than showing the
// other file) or the table is full even of live containers' entries.
func (f *FS) register(dir *node, who uint32, name string, mode uint32) *node {
	served := path.Join(dir.name, name)
	id := ptID(who, served)
	f.ptState.mu.RLock()
	n, ok := f.ptState.nodes[id]
	f.ptState.mu.RUnlock()
	if ok {
		if n.name != served {
			return nil
		}
		return n
	}
	n = &node{
		inode:    id,
		name:     served,
		dir:      mode&unix.S_IFMT == unix.S_IFDIR,
		link:     mode&unix.S_IFMT == unix.S_IFLNK,
		pt:       true,
		hostRoot: dir.hostRoot,
		hostRel:  path.Join(dir.hostRel, name),
	}
	f.ptState.mu.Lock()
	defer f.ptState.mu.Unlock()
	if old, ok := f.ptState.nodes[id]; ok {
		if old.name != served {
			return nil
		}
		return old
	}
	if len(f.ptState.nodes) >= maxPTNodes {
		f.pruneDead()
	}
	if len(f.ptState.nodes) >= maxPTNodes {
		return nil
	}
	f.ptState.nodes[id] = n
	return n
}

// PruneGone drops the pass-through nodes of containers that are gone (the
// worker calls it every minute). Containers that look into their CPU
// directory leave a node per entry they looked up; without this, those of
// containers long gone stayed until the table was full (maxPTNodes, about
// 60 MiB of heap), on a node where containers come and go. A node the
// kernel still names is found again by its ID (ptNode).
func (f *FS) PruneGone() {
	f.ptState.mu.Lock()
	defer f.ptState.mu.Unlock()
	f.pruneDead()
}

// pruneDead drops the entries of containers' trees whose container is gone,
// so that exited containers do not fill the table. Called with mu held.
func (f *FS) pruneDead() {
	alive := map[uint32]bool{0: true}
	for id := range f.ptState.nodes {
		who := ptWho(id)
		live, ok := alive[who]
		if !ok {
			live = f.sc != nil && f.sc.Alive(who)
			alive[who] = live
		}
		if !live {
			delete(f.ptState.nodes, id)
		}
	}
}

// ptNode returns the pass-through node with the given ID. One this process
// has not seen (a daemon that took over the connection, which the kernel
// still asks for the nodes its predecessor gave) is found by its path's
// hash among the host's entries, and registered with the directories above
// it: only what the kernel holds, not the container's whole tree.
func (f *FS) ptNode(id fuse.NodeID) *node {
	f.ptState.mu.RLock()
	n := f.ptState.nodes[uint64(id)]
	f.ptState.mu.RUnlock()
	if n != nil {
		return n
	}
	e, ok := f.hostIndex()[uint32(id)]
	if !ok {
		return nil
	}
	n = e.top
	names := strings.Split(e.rel, "/")
	for i, name := range names {
		mode := uint32(unix.S_IFDIR)
		if i == len(names)-1 {
			mode = e.mode
		}
		if n = f.register(n, ptWho(uint64(id)), name, mode); n == nil {
			return nil // its path, or a directory's above it, is another's ID
		}
	}
	return n
}

// hostIndex returns the host's entries below the pass-through directories
// by the hash of their served path (ptHash), the first in walk order when
// two paths share one (which register then hides), walking the host
// directories again at most once per rescanEvery.
func (f *FS) hostIndex() map[uint32]hostEntry {
	f.ptState.indexMu.Lock()
	defer f.ptState.indexMu.Unlock()
	if f.ptState.index != nil && time.Since(f.ptState.indexAt) < rescanEvery {
		return f.ptState.index
	}
	index := map[uint32]hostEntry{}
	f.walkHost(func(top *node, dir, name string, mode uint32) bool {
		if len(index) >= maxPTNodes {
			return false
		}
		served := path.Join(dir, name)
		h := ptHash(served)
		if _, taken := index[h]; !taken {
			rel := strings.TrimPrefix(strings.TrimPrefix(served, top.name), "/")
			index[h] = hostEntry{top: top, rel: rel, mode: mode}
		}
		return true
	})
	f.ptState.index, f.ptState.indexAt = index, time.Now()
	return index
}

// walkHost walks the host directories the pass-through directories show,
// leaving out the names the tree serves itself there, and calls visit with
// each entry's pass-through directory, served directory (a path below the
// mount), name and type bits. visit says whether to go into a directory.
func (f *FS) walkHost(visit func(top *node, dir, name string, mode uint32) bool) {
	for _, top := range f.nodes[1:] {
		if top == nil || top.hostRoot == "" {
			continue
		}
		// WalkDir neither follows symlinks nor leaves the root.
		_ = filepath.WalkDir(top.hostRoot, func(p string, d fs.DirEntry, err error) error {
			if err != nil || p == top.hostRoot {
				return nil
			}
			rel, err := filepath.Rel(top.hostRoot, p)
			if err != nil {
				return nil
			}
			parent := filepath.Dir(rel)
			if _, fixed := top.children[d.Name()]; fixed && parent == "." {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			mode := typeBits(d.Type())
			if !visit(top, path.Join(top.name, parent), d.Name(), mode) && mode == unix.S_IFDIR {
				return filepath.SkipDir
			}
			return nil
		})
	}
}

// hostFiles returns the path hashes (ptHash) of the host's files the
// pass-through directories show, directories and links left out: with a
// container's ID each, the IDs of that container's passed-through files,
// which the kernel may cache on the own connection. Forgetting them by IDs
// made from one walk, rather than by registering each running container's
// nodes, spares a new worker a walk per container and a node per
// container and host entry, kept for its life whether anyone looks at the
// directory or not: with 268 entries in a 2-CPU machine's
// /sys/devices/system/cpu, 30 MiB of heap at 500 containers. At most
// maxPTNodes, as many as the node table may hold.
func (f *FS) hostFiles() []uint32 {
	var hashes []uint32
	for h, e := range f.hostIndex() {
		if e.mode == unix.S_IFREG {
			hashes = append(hashes, h)
		}
	}
	return hashes
}

func typeBits(m fs.FileMode) uint32 {
	switch {
	case m.IsDir():
		return unix.S_IFDIR
	case m&fs.ModeSymlink != 0:
		return unix.S_IFLNK
	}
	return unix.S_IFREG
}

// hostParent opens the host directory holding n, resolved below its root
// with no symlink followed, so nothing planted in the host tree leads a
// read elsewhere.
func hostParent(n *node) (fd int, base string, err error) {
	fd, err = hostOpen(n.hostRoot, path.Dir(n.hostRel), unix.O_PATH|unix.O_DIRECTORY)
	return fd, path.Base(n.hostRel), err
}

func hostOpen(root, rel string, flags int) (int, error) {
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", root, err)
	}
	defer unix.Close(rootFd)
	how := &unix.OpenHow{
		Flags:   uint64(flags | unix.O_CLOEXEC | unix.O_NOFOLLOW),
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS | unix.RESOLVE_NO_XDEV,
	}
	fd, err := linux.Openat2(rootFd, rel, how)
	if err != nil {
		return -1, fmt.Errorf("open %s below %s: %w", rel, root, err)
	}
	return fd, nil
}

// hostStat stats the host entry of n without following it.
func hostStat(n *node) (unix.Stat_t, error) {
	var st unix.Stat_t
	if n.hostRel == "." {
		err := unix.Stat(n.hostRoot, &st)
		return st, err
	}
	fd, base, err := hostParent(n)
	if err != nil {
		return st, err
	}
	defer unix.Close(fd)
	err = unix.Fstatat(fd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

// hostRead reads the host file of n whole, up to maxPTRead.
func hostRead(n *node) ([]byte, error) {
	fd, err := hostOpen(n.hostRoot, n.hostRel, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), n.hostRel)
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPTRead))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(n.hostRoot, n.hostRel), err)
	}
	return b, nil
}

// hostReadlink reads the host symlink n. Its text is passed on unchanged:
// the kernel resolves it in the reader's own mount namespace, where the
// directory is bound at the host's path, so a relative sysfs link
// (../../../../bus/cpu) leads into the container's own /sys, never ours.
func hostReadlink(n *node) (string, error) {
	fd, base, err := hostParent(n)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	buf := make([]byte, unix.PathMax)
	k, err := unix.Readlinkat(fd, base, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:k]), nil
}

// ptAttr describes a pass-through node from its host entry, read-only.
// Files report size 0 like the rendered ones (see getattr); the size comes
// at open.
func (f *FS) ptAttr(n *node, st *unix.Stat_t) fuse.Attr {
	a := fuse.Attr{
		Inode:     n.inode,
		Nlink:     uint32(st.Nlink),
		Mode:      os.FileMode(st.Mode&0o555) | modeType(st.Mode),
		Atime:     f.started,
		Mtime:     time.Unix(st.Mtim.Unix()),
		Ctime:     time.Unix(st.Ctim.Unix()),
		BlockSize: 4096,
	}
	if n.dir || n.link {
		a.Valid = entryValid
	}
	if n.link {
		a.Size = uint64(st.Size)
	}
	return a
}

func modeType(m uint32) os.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return os.ModeDir
	case unix.S_IFLNK:
		return os.ModeSymlink
	}
	return 0
}

// lookupPT answers a lookup of name in d from the host directory. Entries
// of a fixed directory may be hidden from the reader (in the shared tree,
// the reader's container; in a container's own, that container), so the
// kernel is told to ask again on every walk (entry valid 0) rather than
// keep the answer one container got for the next.
func (s *server) lookupPT(dr ref, r *fuse.LookupRequest) {
	d := dr.n
	if !d.pt {
		if hide := s.fs.pt.Hidden(d.name, s.owner(dr, r.Pid)); hide != nil && hide(r.Name) {
			r.RespondError(errno(syscall.ENOENT))
			return
		}
	}
	if r.Name == "." || r.Name == ".." || r.Name == "" {
		r.RespondError(errno(syscall.ENOENT))
		return
	}
	probe := &node{hostRoot: d.hostRoot, hostRel: path.Join(d.hostRel, r.Name)}
	st, err := hostStat(probe)
	if err != nil {
		r.RespondError(errno(syscall.ENOENT))
		return
	}
	n := s.fs.register(d, dr.who, r.Name, st.Mode)
	if n == nil {
		r.RespondError(errno(syscall.ENOENT))
		return
	}
	valid := entryValid
	if !d.pt {
		valid = 0
	}
	if child := (ref{n: n, id: fuse.NodeID(n.inode), who: dr.who}); s.cached(child) {
		// The own connection: its pages are kept, so its size is the
		// entry's, as for a rendered file.
		s.entry(r, child, func(e *centry, data []byte, err error) {
			r.Respond(&fuse.LookupResponse{Node: child.id, EntryValid: valid, Attr: s.cachedAttr(child, e, data)})
		})
		return
	}
	if !n.dir && !n.link {
		s.keepSize(fuse.NodeID(n.inode), n.name)
	}
	r.Respond(&fuse.LookupResponse{Node: fuse.NodeID(n.inode), EntryValid: valid, Attr: s.fs.ptAttr(n, &st)})
}

// ptGetattr answers getattr of a pass-through directory or symlink.
func (s *server) ptGetattr(n *node, r *fuse.GetattrRequest) {
	st, err := hostStat(n)
	if err != nil {
		r.RespondError(errno(syscall.ENOENT))
		return
	}
	r.Respond(&fuse.GetattrResponse{Attr: s.fs.ptAttr(n, &st)})
}

func (s *server) readlink(r *fuse.ReadlinkRequest) {
	nr, ok := s.ref(r.Hdr().Node)
	n := nr.n
	if !ok || !n.link {
		r.RespondError(errno(syscall.EINVAL))
		return
	}
	target, err := hostReadlink(n)
	if err != nil {
		r.RespondError(errno(syscall.ENOENT))
		return
	}
	r.Respond(target)
}

// listPT encodes d's listing for container who (see lookupPT): its fixed
// entries, then the host directory's entries not hidden from who, in name
// order.
func (s *server) listPT(dr ref, who uint32) ([]byte, error) {
	d := dr.n
	fd, err := hostOpen(d.hostRoot, d.hostRel, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	dir := os.NewFile(uintptr(fd), d.hostRel)
	entries, err := dir.ReadDir(-1)
	dir.Close()
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", filepath.Join(d.hostRoot, d.hostRel), err)
	}
	var hide func(string) bool
	if !d.pt {
		hide = s.fs.pt.Hidden(d.name, who)
	}
	type ent struct {
		name string
		ino  uint64
		typ  fuse.DirentType
	}
	var list []ent
	for name, ino := range d.children {
		typ := fuse.DT_File
		if s.fs.nodes[ino].dir {
			typ = fuse.DT_Dir
		}
		list = append(list, ent{name, uint64(dr.who)<<32 | ino, typ})
	}
	for _, e := range entries {
		if _, fixed := d.children[e.Name()]; fixed || (hide != nil && hide(e.Name())) {
			continue
		}
		n := s.fs.register(d, dr.who, e.Name(), typeBits(e.Type()))
		if n == nil {
			continue
		}
		typ := fuse.DT_File
		switch {
		case n.dir:
			typ = fuse.DT_Dir
		case n.link:
			typ = fuse.DT_Link
		}
		list = append(list, ent{e.Name(), n.inode, typ})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	buf := fuse.AppendDirent(nil, fuse.Dirent{Inode: uint64(dr.id), Name: ".", Type: fuse.DT_Dir})
	buf = fuse.AppendDirent(buf, fuse.Dirent{Inode: uint64(dr.id), Name: "..", Type: fuse.DT_Dir})
	for _, e := range list {
		buf = fuse.AppendDirent(buf, fuse.Dirent{Inode: e.ino, Name: e.name, Type: e.typ})
	}
	return buf, nil
}

// errnoOf is the errno a failed host read answers with: the host's own
// (EACCES for a write-only attribute, EIO for one the driver refuses), EIO
// for anything else.
func errnoOf(err error) fuse.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return fuse.Errno(e)
	}
	return errno(syscall.EIO)
}
