// Package fusefs is the FUSE side of lxcfs-fused: a fixed, read-only tree of
// files whose content comes from a Renderer. It only routes requests: it
// knows which file was opened and by which process, nothing of cgroups or of
// what a file says.
//
// It answers the kernel directly over bazil.org/fuse's protocol layer rather
// than through bazil's fs.Serve, because the tree is fixed: node IDs are the
// files' inode numbers, the same in every daemon process, so a process that
// takes over a live connection understands the node IDs the kernel already
// holds, and any number of goroutines can read the device at once.
package fusefs

import (
	"fmt"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"bazil.org/fuse"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/journal"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/pollwake"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
)

// Renderer produces the content of the file at name (a slash-separated path
// below the mount, such as "proc/meminfo") for a container.
//
// A container is named by an ID that Identify gives, below 1<<31, 0 being
// the host's view. The FS asks once, at open, and keeps the ID in the handle
// it gives the kernel: an ID must name the same container, or none, to
// every process that serves the connection (replacement workers, upgraded
// binaries), and never another container.
type Renderer interface {
	Identify(pid int) uint32
	Render(name string, who uint32) ([]byte, error)
}

// Fallbacker is a Renderer that has an answer that cannot hang (the host's
// file), given when a render outlives FS.Timeout.
type Fallbacker interface {
	Fallback(name string) ([]byte, error)
}

// Recycler is a Renderer that takes back a slice it returned once no open
// file reads it any more, to render into it again: every open renders the
// file afresh, so the answers are most of what a busy daemon allocates.
type Recycler interface {
	Recycle([]byte)
}

// Scoper is a Renderer that registers containers (see pkg/register): each
// registered container that still runs has a tree of its own at
// MOUNT/.containers/ID/, the served files again, answered for that
// container whoever reads them. Their node IDs are ID<<32 | the file's
// NodeTable ID, so they are distinct inodes per container (a page cached
// for one is never another's), and mean the same to every process serving
// the connection.
type Scoper interface {
	Alive(who uint32) bool
}

// Spares is a Scoper that reserves container IDs ahead of registration
// (caller.Resolver.Reserve). The daemon looks each spare's tree up before
// any container has it, so that the hook of the container given the ID
// finds every name it binds in the kernel's cache: a new container's names
// were otherwise each a round trip to the daemon on every start.
type Spares interface {
	Spare(who uint32) bool
}

const (
	containersName = ".containers"
	containersNode = 1<<32 - 1 // no NodeTable ID gets that high
	baseMask       = 1<<32 - 1
)

// ref is a node as the kernel names it: a node of the tree, in the tree
// every reader shares (who 0) or in container who's own.
type ref struct {
	n   *node
	id  fuse.NodeID
	who uint32 // set only in a container's own tree
}

// ref finds the node the kernel calls id.
func (f *FS) ref(id fuse.NodeID) (ref, bool) {
	if id == containersNode {
		return ref{n: f.containers, id: id}, f.sc != nil
	}
	if uint64(id)&ptBit != 0 {
		who := ptWho(uint64(id))
		if who != 0 && f.sc == nil {
			return ref{}, false
		}
		n := f.ptNode(id)
		if n == nil {
			return ref{}, false
		}
		return ref{n: n, id: id, who: who}, true
	}
	n := f.node(fuse.NodeID(uint64(id) & baseMask))
	if n == nil {
		return ref{}, false
	}
	return ref{n: n, id: id, who: uint32(uint64(id) >> 32)}, true
}

// entryValid is how long the kernel may cache names. The tree never changes
// while the daemon runs.
const entryValid = time.Second

// node is a file or directory of the fixed tree. Its index in FS.nodes is
// its inode number and FUSE node ID (NodeTable); 1 is the root, as FUSE
// requires.
type node struct {
	inode    uint64
	name     string // path below the mount, "" for the root
	dir      bool
	children map[string]uint64
	dirents  []byte      // the directory's listing, encoded once
	st       *stats.File // the file's counters; nil counts nothing

	// Pass-through (see Passthrough): hostRoot is the host directory a
	// served directory shows, hostRel the entry's path below it ("." for
	// the served directory itself). pt marks entries of the host's, which
	// have no place in nodes.
	hostRoot, hostRel string
	pt, link          bool
}

// FS is the file tree. Build it with New, serve it with Serve.
type FS struct {
	// Timeout bounds a render when the Renderer is a Fallbacker: past it
	// the request is answered with the fallback. 0 waits forever.
	Timeout time.Duration
	// SnapshotLimit and SnapshotTotal bound the bytes open files keep,
	// per container and in all (0: DefaultSnapshotLimit, DefaultSnapshotTotal).
	SnapshotLimit, SnapshotTotal int
	// Triggers, when set before Serve and the Renderer is a Triggerer,
	// lets programs register PSI triggers on its files (trigger.go).
	// Off, POLL is answered ENOSYS, which the kernel takes as "never poll
	// this connection"; on, every poll or epoll of any served file costs
	// a round trip (Go programs epoll every file they open).
	Triggers bool
	// TriggerLimit and TriggerTotal bound the PSI triggers held, per
	// container and in all (0: DefaultTriggerLimit, DefaultTriggerTotal).
	TriggerLimit, TriggerTotal int
	// Polls, when set before Serve, is where the kernel's handles of
	// waiting pollers are kept for the supervisor to wake if this process
	// dies (pkg/pollwake).
	Polls *pollwake.Table
	// Stats, when set before Serve, counts requests, their latency, render
	// errors and timeouts per file.
	Stats *stats.Region
	// CacheTTL, when above 0, lets the kernel cache the files of the
	// containers' own trees for that long (see kcache.go); the shared tree
	// is never cached. 0 renders at every open and read.
	CacheTTL time.Duration
	// Now is the cache's clock (tests); nil is time.Now.
	Now func() time.Time
	// Known lists the containers whose files a process that served the
	// connection before this one may have left in the kernel's cache:
	// with CacheTTL set, Serve has the kernel forget them first.
	Known func() []uint32
	// Journal, when set before Serve, keeps every request read in memory
	// the supervisor holds until it is answered, and Leftovers yields the
	// requests dead workers left unanswered, which Serve answers (see
	// journal.go).
	Journal   *journal.Journal
	Leftovers <-chan []journal.Entry
	// OwnJournal and OwnLeftovers are Journal and Leftovers for the
	// containers' own connection (ServeOwn).
	OwnJournal   *journal.Journal
	OwnLeftovers <-chan []journal.Entry

	held atomic.Int64 // snapshot bytes kept, see Held
	kc   *kcache      // the serving connection's cache, for tests
	// ownKc is the own connection's (ServeOwn), for tests: set one
	// with an invalidated hook before ServeOwn.
	ownKc    *kcache
	ownDrop  func() // the own connection's server's dropCached
	kcMu     sync.Mutex
	ownOpens atomic.Int64 // OPENs of files on the own connection, for tests
	lookups  atomic.Int64 // LOOKUPs on either connection, for tests

	// The servers of the two connections, while they serve: containers'
	// trees are named on the own one when it is served.
	srvMu        sync.Mutex
	main, ownSrv *server

	statsOnce sync.Once

	nodes      []*node // index = inode; nil for IDs not served here
	containers *node   // .containers, when r is a Scoper
	r          Renderer
	fb         Fallbacker // r, when it has a fallback
	rc         Recycler   // r, when it takes answers back
	sc         Scoper     // r, when it registers containers
	sp         Spares     // r, when it reserves IDs ahead
	tr         Triggerer  // r, when its files take PSI triggers
	pt         Passthrough
	ptState    ptState
	log        *slog.Logger
	started    time.Time
}

// New builds a tree holding exactly the given files (paths such as
// "proc/meminfo"), served by r. Node IDs come from NodeTable, so the same
// file has the same ID in every process and release; a file missing from
// it is an error.
func New(files []string, r Renderer, log *slog.Logger) (*FS, error) {
	return newFS(NodeTable, files, r, log)
}

// newFS builds the tree of files, numbered by table (see NodeTable).
func newFS(table, files []string, r Renderer, log *slog.Logger) (*FS, error) {
	f := &FS{r: r, log: log, started: time.Now()}
	f.fb, _ = r.(Fallbacker)
	f.rc, _ = r.(Recycler)
	f.sc, _ = r.(Scoper)
	f.sp, _ = r.(Spares)
	f.tr, _ = r.(Triggerer)
	f.pt, _ = r.(Passthrough)
	f.ptState.nodes = map[uint64]*node{}
	if f.sc != nil {
		// Not listed in the root, whose listing stays LXCFS's; the hook
		// looks its container's tree up by name.
		f.containers = &node{inode: containersNode, name: containersName, dir: true, children: map[string]uint64{}}
		f.containers.dirents = f.listing(f.containers)
	}
	ids := map[string]uint64{"": 1}
	isDir := map[string]bool{"": true}
	next := uint64(2)
	for _, name := range table {
		if name == "" || path.IsAbs(name) || path.Clean(name) != name || strings.HasPrefix(name, "..") {
			return nil, fmt.Errorf("file %q: want a clean relative path such as proc/meminfo", name)
		}
		if _, dup := ids[name]; dup {
			return nil, fmt.Errorf("file %q listed twice", name)
		}
		parts := strings.Split(name, "/")
		for i := range parts[:len(parts)-1] {
			dir := strings.Join(parts[:i+1], "/")
			if _, ok := ids[dir]; !ok {
				ids[dir], isDir[dir] = next, true
				next++
			} else if !isDir[dir] {
				return nil, fmt.Errorf("file %q: %s is a file, not a directory", name, dir)
			}
		}
		ids[name] = next
		next++
	}
	f.nodes = make([]*node, next)
	f.nodes[1] = &node{inode: 1, dir: true, children: map[string]uint64{}}
	for _, name := range files {
		id, ok := ids[name]
		if !ok || isDir[name] {
			return nil, fmt.Errorf("file %q has no node ID: append it to NodeTable (pkg/fusefs/nodeids.go)", name)
		}
		if f.nodes[id] != nil {
			return nil, fmt.Errorf("file %q listed twice", name)
		}
		f.nodes[id] = &node{inode: id, name: name}
		// Its directories, up to one already there.
		for child := name; child != ""; {
			parent := path.Dir(child)
			if parent == "." {
				parent = ""
			}
			d := f.nodes[ids[parent]]
			fresh := d == nil
			if fresh {
				d = &node{inode: ids[parent], name: parent, dir: true, children: map[string]uint64{}}
				f.nodes[d.inode] = d
			}
			d.children[path.Base(child)] = ids[child]
			if !fresh {
				break
			}
			child = parent
		}
	}
	for _, n := range f.nodes[1:] {
		if n != nil && n.dir {
			n.dirents = f.listing(n)
		}
	}
	f.setupPassthrough()
	return f, nil
}

// listing encodes a directory's entries in name order, with "." and "..",
// under the shared tree's inode numbers.
func (f *FS) listing(d *node) []byte { return f.listingIn(d, 0) }

// listingIn is listing in container who's own tree, whose inode numbers are
// its own (who in the high half): what readdir shows must be what stat
// shows.
func (f *FS) listingIn(d *node, who uint32) []byte {
	tag := uint64(who) << 32
	names := make([]string, 0, len(d.children))
	for name := range d.children {
		names = append(names, name)
	}
	sort.Strings(names)
	buf := fuse.AppendDirent(nil, fuse.Dirent{Inode: d.inode | tag, Name: ".", Type: fuse.DT_Dir})
	buf = fuse.AppendDirent(buf, fuse.Dirent{Inode: d.inode | tag, Name: "..", Type: fuse.DT_Dir})
	for _, name := range names {
		c := f.nodes[d.children[name]]
		typ := fuse.DT_File
		if c.dir {
			typ = fuse.DT_Dir
		}
		buf = fuse.AppendDirent(buf, fuse.Dirent{Inode: c.inode | tag, Name: name, Type: typ})
	}
	return buf
}

// Node returns the node with the given FUSE node ID, or nil.
func (f *FS) node(id fuse.NodeID) *node {
	if id == 0 || uint64(id) >= uint64(len(f.nodes)) {
		return nil
	}
	return f.nodes[id]
}

// attr describes the node. Files report their size as 0, as /proc does:
// the content depends on who reads it. Opening a file tells the kernel the
// opener's size (see open).
func (f *FS) attr(nr ref) fuse.Attr {
	n := nr.n
	a := fuse.Attr{
		Inode: uint64(nr.id),
		Nlink: 1,
		Mode:  0o444,
		Atime: f.started, Mtime: f.started, Ctime: f.started,
		BlockSize: 4096,
		// Attributes are not cached: a cached size would be one reader's.
		Valid: 0,
	}
	if f.Triggers && f.tr != nil && !n.dir && !n.pt && f.tr.Triggerable(n.name) {
		a.Mode = 0o644 // a PSI trigger is written (trigger.go)
	}
	if n.dir {
		a.Mode = os.ModeDir | 0o555
		a.Nlink = 2
		a.Valid = entryValid
	}
	return a
}

// containerFiles lists the node IDs of the rendered files of the given
// containers' own trees. Their files passed through from the host (cached
// on the own connection, see ServeOwn) are forgotten through
// server.forgetHostFiles.
func (f *FS) containerFiles(who []uint32) []fuse.NodeID {
	var ids []fuse.NodeID
	for _, w := range who {
		if w == 0 {
			continue
		}
		for _, n := range f.nodes[1:] {
			if n != nil && !n.dir && !n.pt {
				ids = append(ids, fuse.NodeID(uint64(w)<<32|n.inode))
			}
		}
	}
	return ids
}

// Held reports the bytes that open files keep (snapshots and handles), for
// the worker's stats.
func (f *FS) Held() int64 { return f.held.Load() }

// errno is what a request that cannot be served answers.
func errno(e syscall.Errno) fuse.Errno { return fuse.Errno(e) }
