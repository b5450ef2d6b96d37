// Package caller finds which container a FUSE request comes from.
//
// A reader is identified by the init process of its pid namespace, as LXCFS
// does: every process of a container, whatever sub-cgroup it sits in, sees
// the container's view, which is its init's cgroups. Lookups are cached per
// pid namespace and the cache entry dies with the init (watched through a
// pidfd), so a recycled namespace inode or pid can never hand one container's
// numbers to another.
package caller

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/cgroups"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/cgroup"
)

// Container is what the daemon needs to know about a reader's container.
type Container struct {
	ID         uint32            // never another container's in this boot (registry.go)
	NS         uint64            // pid namespace inode, the cache key
	InitPid    int               // host pid of the namespace's init
	StartTicks uint64            // init start time, clock ticks after boot (/proc/PID/stat field 22)
	Cgroups    map[string]string // init's cgroup path per v1 controller; "" is the v2 path

	group atomic.Pointer[cgroup.Group] // see Group
}

// Group returns the container's cgroups, made by mk on the first call and
// kept with the container: pkg/content builds them (open counter files,
// limit cache) once per container rather than once per read. They live
// exactly as long as the cache entry, so they are closed when the init
// dies or the entry is forgotten.
func (c *Container) Group(mk func() *cgroup.Group) *cgroup.Group {
	if g := c.group.Load(); g != nil {
		return g
	}
	g := mk()
	if c.group.CompareAndSwap(nil, g) {
		return g
	}
	// Another read made them first.
	g.Close()
	return c.group.Load()
}

// release closes the container's cgroups, once the cache entry is gone. It
// runs on its own goroutine: the resolver's lock is held where entries are
// dropped, and closing waits for a read in progress.
func (c *Container) release() {
	if g := c.group.Load(); g != nil {
		go g.Close()
	}
}

// Resolver maps reader pids to containers. It is safe for concurrent use.
type Resolver struct {
	proc    procfs.FS
	procDir string
	hostNS  uint64
	idle    time.Duration // entries unused this long are dropped

	mu        sync.Mutex
	byNS      map[uint64]*entry
	byID      map[uint32]*entry
	ids       *registry
	lastPrune time.Time

	// IDs reserved ahead of registration (Reserve) that no container has
	// yet; ready are those offered, oldest first.
	spares map[uint32]struct{}
	ready  []uint32
	given  []uint32 // spares given since the last Given
	taken  chan struct{}

	// Reader threads' namespaces (threads.go).
	threads       map[int]thread
	onceSeen      map[int]uint64
	noPidfdThread atomic.Bool
}

type entry struct {
	c        *Container
	pidfd    int
	lastUsed time.Time
	dropped  bool // removed from the cache; pinned threads must look again
}

// maxWalk bounds the parent walk, so a pathological process tree costs a
// bounded number of reads before the /proc scan takes over.
const maxWalk = 64

// NewResolver builds a resolver over the proc file system at procDir (/proc
// on a real host). Processes in the resolver's own pid namespace are the
// host: they get no Container.
//
// idFile is where container IDs are kept for every process serving the
// same connection (see registry.go); "" keeps them in this process only.
func NewResolver(procDir, idFile string) (*Resolver, error) {
	fs, err := procfs.NewFS(procDir)
	if err != nil {
		return nil, fmt.Errorf("open proc file system %s: %w", procDir, err)
	}
	r := &Resolver{proc: fs, procDir: procDir, idle: time.Minute, byNS: map[uint64]*entry{},
		byID: map[uint32]*entry{}, threads: map[int]thread{}, onceSeen: map[int]uint64{},
		spares: map[uint32]struct{}{}, taken: make(chan struct{}, 1)}
	r.hostNS, err = r.pidNS("self")
	if err != nil {
		return nil, fmt.Errorf("read the daemon's own pid namespace: %w", err)
	}
	if idFile == "" {
		r.ids = &registry{byInit: map[initKey]uint32{}, inits: map[uint32]idRecord{}}
		return r, nil
	}
	boot, err := os.ReadFile(filepath.Join(procDir, "sys/kernel/random/boot_id"))
	if err != nil {
		return nil, fmt.Errorf("read the boot ID (container IDs are kept per boot): %w", err)
	}
	if r.ids, err = openRegistry(idFile, strings.TrimSpace(string(boot))); err != nil {
		return nil, err
	}
	return r, nil
}

// Resolve returns the container of the process (or thread) pid, or nil for a
// host process. An error means the reader could not be identified; callers
// serve the host view then.
func (r *Resolver) Resolve(pid int) (*Container, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("resolve caller: no pid in the request (%d)", pid)
	}
	now := time.Now()
	ns, c, pinned := r.threadNS(pid, now)
	if c != nil {
		return c, nil
	}
	if !pinned {
		var err error
		if ns, err = r.pidNS(strconv.Itoa(pid)); err != nil {
			return nil, err
		}
		if ns == r.hostNS {
			return nil, nil
		}
		r.sawThread(pid, ns)
	}
	if e := r.cached(ns, now); e != nil {
		if pinned {
			r.threadFound(pid, e)
		}
		return e.c, nil
	}
	e, err := r.lookup(pid, ns)
	if err != nil {
		return nil, err
	}
	e.lastUsed = now
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byNS[ns]; ok && alive(old.pidfd) {
		// Another request resolved the same namespace meanwhile.
		unix.Close(e.pidfd)
		old.lastUsed = now
		return old.c, nil
	} else if ok {
		r.dropLocked(ns, old)
	}
	r.byNS[ns] = e
	r.byID[e.c.ID] = e
	r.pruneLocked(now)
	return e.c, nil
}

// Register gives an ID to the container whose init is the process behind
// pidfd (sent by the hook), whatever its pid namespace: a container that
// shares the host's pid namespace, or another container's, is its own
// process tree's, not the namespace's init's. Lookup then finds it.
func (r *Resolver) Register(pidfd int) (uint32, error) {
	pid, err := pidfdPid(pidfd)
	if err != nil {
		return 0, err
	}
	id, _, err := r.RegisterProcess(pid, pidfd)
	return id, err
}

// RegisterProcess is Register for a caller that opened pidfd from pid
// itself (the daemon, for a hook that delegates create-runtime) and so
// need not be told the pid again. It also returns the process's start
// time (clock ticks after boot, /proc/PID/stat), which the caller's
// records of the container need too.
func (r *Resolver) RegisterProcess(pid, pidfd int) (uint32, uint64, error) {
	start, err := r.startTicks(pid)
	if err != nil {
		return 0, 0, err
	}
	ns, err := r.pidNS(strconv.Itoa(pid))
	if err != nil {
		return 0, 0, err
	}
	// Read after the figures: the pid was still this process's then.
	if !alive(pidfd) {
		return 0, 0, fmt.Errorf("process %d exited while being registered", pid)
	}
	rec := idRecord{pid: pid, start: start, ns: ns}
	if spare, ok := r.takeSpare(); ok {
		id, bound, err := r.ids.bind(spare, rec)
		if err != nil || !bound {
			r.Offer(spare)
		}
		if bound {
			r.mu.Lock()
			delete(r.spares, spare)
			r.given = append(r.given, spare)
			r.mu.Unlock()
			select {
			case r.taken <- struct{}{}:
			default:
			}
		}
		return id, start, err
	}
	id, err := r.ids.assign(rec)
	return id, start, err
}

// Reserve takes an ID for a container not yet registered: its tree
// (MOUNT/.containers/ID) can be looked up at once, so that the kernel
// knows its names before any container needs them (the daemon warms it),
// but it answers for nobody until Register gives the ID to a container,
// once, after Offer. An ID reserved and never given is not given again
// either.
func (r *Resolver) Reserve() (uint32, error) {
	id, err := r.ids.reserve()
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.spares[id] = struct{}{}
	r.mu.Unlock()
	return id, nil
}

// Offer makes the reserved id the next registration's, after those offered
// before it.
func (r *Resolver) Offer(id uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.spares[id]; ok {
		r.ready = append(r.ready, id)
	}
}

// Ready is how many offered IDs wait for a registration.
func (r *Resolver) Ready() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.ready)
}

// Taken is signalled when a registration took an offered ID.
func (r *Resolver) Taken() <-chan struct{} { return r.taken }

// Given returns the offered IDs given to containers since it was last
// called.
func (r *Resolver) Given() []uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.given
	r.given = nil
	return g
}

// Spare says whether id is one this resolver reserved and no container
// has yet.
func (r *Resolver) Spare(id uint32) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.spares[id]
	return ok
}

func (r *Resolver) takeSpare() (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.ready) == 0 {
		return 0, false
	}
	id := r.ready[0]
	r.ready = r.ready[1:]
	return id, true
}

// pidfdPid reads the pid a pidfd refers to, in our pid namespace.
func pidfdPid(pidfd int) (int, error) {
	path := "/proc/self/fdinfo/" + strconv.Itoa(pidfd)
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("%s: not a live process's pidfd (Pid: %s)", path, strings.TrimSpace(v))
			}
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%s: not a pidfd", path)
}

// IDs lists the container IDs in the ID file when it was opened, and those
// given or read since: every container whose files a process serving the
// same connection may have answered.
func (r *Resolver) IDs() []uint32 { return r.ids.ids() }

// Alive says whether the container given id still runs.
func (r *Resolver) Alive(id uint32) bool {
	_, err := r.Lookup(id)
	return err == nil
}

// Lookup returns the container given id, by this resolver or by another
// process's over the same ID file, as long as its init lives. It never
// returns another container: the init is proven by its start time.
func (r *Resolver) Lookup(id uint32) (*Container, error) {
	now := time.Now()
	r.mu.Lock()
	if e, ok := r.byID[id]; ok {
		if !e.dropped && alive(e.pidfd) {
			e.lastUsed = now
			r.mu.Unlock()
			return e.c, nil
		}
		delete(r.byID, id)
	}
	r.mu.Unlock()
	rec, ok := r.ids.record(id)
	if !ok {
		return nil, fmt.Errorf("container ID %d: no such container (it exited, or the ID is from another boot)", id)
	}
	if e := r.cached(rec.ns, now); e != nil && e.c.InitPid == rec.pid && e.c.StartTicks == rec.start {
		r.mu.Lock()
		r.byID[id] = e
		r.mu.Unlock()
		return e.c, nil
	}
	e, err := r.pin(rec.pid, rec.ns, rec.start)
	if err != nil {
		return nil, fmt.Errorf("container ID %d: %w", id, err)
	}
	e.c.ID = id
	e.lastUsed = now
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.byNS[rec.ns]; ok && alive(old.pidfd) && old.c.InitPid == rec.pid && old.c.StartTicks == rec.start {
		unix.Close(e.pidfd)
		r.byID[id] = old
		return old.c, nil
	} else if ok {
		r.dropLocked(rec.ns, old)
	}
	r.byNS[rec.ns] = e
	r.byID[id] = e
	return e.c, nil
}

// cached returns the live cache entry for ns, dropping a dead one.
func (r *Resolver) cached(ns uint64, now time.Time) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.byNS[ns]
	if !ok {
		return nil
	}
	if !alive(e.pidfd) {
		r.dropLocked(ns, e)
		return nil
	}
	e.lastUsed = now
	return e
}

// pruneLocked drops entries nobody asked for lately, at most once per idle
// period, so a node that saw thousands of short-lived containers holds no
// pidfds for them.
func (r *Resolver) pruneLocked(now time.Time) {
	if now.Sub(r.lastPrune) < r.idle {
		return
	}
	r.lastPrune = now
	r.pruneThreadsLocked(false)
	for ns, e := range r.byNS {
		if now.Sub(e.lastUsed) > r.idle || !alive(e.pidfd) {
			r.dropLocked(ns, e)
		}
	}
	for id, e := range r.byID {
		if e.dropped {
			delete(r.byID, id)
		}
	}
	r.ids.sweep(func(rec idRecord) bool {
		start, err := r.startTicks(rec.pid)
		return err != nil || start != rec.start
	})
}

// Prune drops the entries of containers whose init has exited and of those
// nobody asked for in the idle period, with the pinned threads that have
// exited, releasing their pidfds and attached values (the kept cgroup files).
// Resolve prunes as it goes; a daemon calls Prune periodically too, so what
// a container held is released even when no read comes after it stopped.
func (r *Resolver) Prune() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastPrune = time.Time{}
	r.pruneLocked(time.Now())
}

// Forget drops c from the cache (if it is still the cached entry), so the
// next read of its namespace resolves it afresh.
func (r *Resolver) Forget(c *Container) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.byNS[c.NS]; ok && e.c == c {
		r.dropLocked(c.NS, e)
	}
}

// dropLocked removes the cache entry e for ns and releases what it holds.
func (r *Resolver) dropLocked(ns uint64, e *entry) {
	unix.Close(e.pidfd)
	e.dropped = true
	delete(r.byNS, ns)
	if r.byID[e.c.ID] == e {
		delete(r.byID, e.c.ID)
	}
	e.c.release()
}

// Len reports how many namespaces are cached, for tests and metrics.
func (r *Resolver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byNS)
}

// Close releases every pidfd the cache holds.
func (r *Resolver) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ns, e := range r.byNS {
		r.dropLocked(ns, e)
	}
	r.pruneThreadsLocked(true)
	r.ids.close()
}

// lookup finds the init of pid's namespace, pins it with a pidfd and reads
// its cgroups.
func (r *Resolver) lookup(pid int, ns uint64) (*entry, error) {
	init, err := r.findInit(pid, ns)
	if err != nil {
		return nil, err
	}
	start, err := r.startTicks(init)
	if err != nil {
		return nil, err
	}
	e, err := r.pin(init, ns, start)
	if err != nil {
		return nil, err
	}
	if e.c.ID, err = r.ids.assign(idRecord{pid: init, start: start, ns: ns}); err != nil {
		unix.Close(e.pidfd)
		return nil, err
	}
	return e, nil
}

// pin opens a pidfd on init, proves it is the process that started at start
// in namespace ns, and reads its cgroups.
func (r *Resolver) pin(init int, ns, start uint64) (*entry, error) {
	pidfd, err := unix.PidfdOpen(init, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", init, err)
	}
	// The pid may have been recycled between finding and pinning it; the
	// start time (and namespace) after pinning proves it is still the same process.
	start2, err := r.startTicks(init)
	if err == nil && start2 != start {
		err = fmt.Errorf("init %d of pid namespace %d exited while being resolved", init, ns)
	}
	if err == nil {
		var ns2 uint64
		if ns2, err = r.pidNS(strconv.Itoa(init)); err == nil && ns2 != ns {
			err = fmt.Errorf("process %d left pid namespace %d while being resolved", init, ns)
		}
	}
	if err != nil {
		unix.Close(pidfd)
		return nil, err
	}
	path := filepath.Join(r.procDir, strconv.Itoa(init), "cgroup")
	cg, err := cgroups.ParseCgroupFile(path)
	if err != nil {
		unix.Close(pidfd)
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return &entry{c: &Container{NS: ns, InitPid: init, StartTicks: start, Cgroups: cg}, pidfd: pidfd}, nil
}

// findInit walks pid's ancestors inside its namespace up to the process that
// is pid 1 there. A process that joined the namespace with setns (runc exec,
// nsenter) has its parent outside; then the namespace's processes are scanned.
func (r *Resolver) findInit(pid int, ns uint64) (int, error) {
	cur := pid
	for range maxWalk {
		isInit, ppid, err := r.nsInit(cur)
		if err != nil {
			return 0, err
		}
		if isInit {
			return cur, nil
		}
		if ppid <= 0 {
			break
		}
		pns, err := r.pidNS(strconv.Itoa(ppid))
		if err != nil || pns != ns {
			break
		}
		cur = ppid
	}
	return r.scanForInit(ns)
}

// nsInit says whether pid is pid 1 of its own namespace, and returns its parent.
func (r *Resolver) nsInit(pid int) (bool, int, error) {
	p, err := r.proc.Proc(pid)
	if err != nil {
		return false, 0, fmt.Errorf("find process %d: %w", pid, err)
	}
	st, err := p.NewStatus()
	if err != nil {
		return false, 0, fmt.Errorf("read /proc/%d/status: %w", pid, err)
	}
	if len(st.NSpids) == 0 {
		return false, 0, fmt.Errorf("read /proc/%d/status: no NSpid line (kernel older than 4.1?)", pid)
	}
	if st.NSpids[len(st.NSpids)-1] == 1 {
		return true, 0, nil
	}
	stat, err := p.Stat()
	if err != nil {
		return false, 0, fmt.Errorf("read /proc/%d/stat: %w", pid, err)
	}
	return false, stat.PPID, nil
}

// scanForInit is the slow path: any process of the namespace whose innermost
// pid is 1. Its cost is paid once per namespace, then cached.
func (r *Resolver) scanForInit(ns uint64) (int, error) {
	entries, err := os.ReadDir(r.procDir)
	if err != nil {
		return 0, fmt.Errorf("scan %s: %w", r.procDir, err)
	}
	for _, de := range entries {
		pid, err := strconv.Atoi(de.Name())
		if err != nil {
			continue
		}
		if pns, err := r.pidNS(de.Name()); err != nil || pns != ns {
			continue
		}
		if isInit, _, err := r.nsInit(pid); err == nil && isInit {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("pid namespace %d has no init process left", ns)
}

func (r *Resolver) startTicks(pid int) (uint64, error) {
	return linux.StartTicks(r.procDir, pid)
}

// pidNS reads the pid namespace inode from the /proc/PID/ns/pid link, one
// readlink and no open on the hot path.
func (r *Resolver) pidNS(pid string) (uint64, error) {
	link := filepath.Join(r.procDir, pid, "ns", "pid")
	target, err := os.Readlink(link)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", link, err)
	}
	return parseNSLink(target)
}

// parseNSLink parses "pid:[4026531836]".
func parseNSLink(target string) (uint64, error) {
	s, ok := strings.CutPrefix(target, "pid:[")
	if ok {
		s, ok = strings.CutSuffix(s, "]")
	}
	if !ok {
		return 0, fmt.Errorf("unexpected pid namespace link %q", target)
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("unexpected pid namespace link %q: %w", target, err)
	}
	return ino, nil
}

// alive polls the pidfd: it becomes readable when the process exits.
func alive(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	n, err := linux.Poll(fds, 0)
	return err == nil && n == 0
}
