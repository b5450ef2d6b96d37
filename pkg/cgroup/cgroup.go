// Package cgroup reads a container's figures (memory, CPU, I/O, pressure,
// tasks) from a cgroup v1 or v2 tree and returns them as the view types.
//
// The daemon runs in the host's pid and cgroup namespaces, so the paths in
// /proc/PID/cgroup are full paths from each hierarchy's root and are joined
// straight onto the hierarchy's mount directory.
package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/expiring"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/reread"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// DefaultRoot is where cgroup hierarchies are mounted on a standard host.
const DefaultRoot = "/sys/fs/cgroup"

// DefaultProcRoot is where the host's procfs is mounted.
const DefaultProcRoot = "/proc"

// ErrNoController reports that the group has no directory for a controller
// the figure needs (the controller is not mounted, or /proc/PID/cgroup did not
// list it). It wraps fs.ErrNotExist so callers that fall back to the host's
// file on "not there" need only one check.
var ErrNoController = fmt.Errorf("cgroup controller not available: %w", fs.ErrNotExist)

// v1 controller names, which are also the directory names under the root.
const (
	ctrlMemory  = "memory"
	ctrlCPU     = "cpu"
	ctrlCPUAcct = "cpuacct"
	ctrlCPUSet  = "cpuset"
	ctrlBlkio   = "blkio"
	ctrlPids    = "pids"
)

// v1Controllers are the hierarchies ForPaths resolves on v1; others
// (freezer, devices, name=systemd, ...) carry no figure we serve.
var v1Controllers = [...]string{ctrlMemory, ctrlCPU, ctrlCPUAcct, ctrlCPUSet, ctrlBlkio, ctrlPids}

// Hierarchy is a cgroup file system layout rooted at Root.
type Hierarchy struct {
	// Root is the directory the hierarchies are mounted under
	// (DefaultRoot when empty).
	Root string
	// V2 is true for the pure unified layout: one tree at Root. False means
	// v1 or hybrid: one tree per controller at Root/<controller>, plus the
	// controller-less unified tree at Root/unified on hybrid hosts.
	V2 bool
	// ProcRoot is where ForPid finds /proc/PID/cgroup (DefaultProcRoot when
	// empty); tests point it at a fixture.
	ProcRoot string
	// Clock is what the limit and stat caches take the time from (time.Now
	// when nil), so tests can move time instead of waiting for it.
	Clock func() time.Time

	// ancestors caches the limit files of the directories above groups,
	// which many groups share (see WithLimitCache).
	ancestors upCache
}

// Now is the hierarchy's clock: Clock, or time.Now.
func (h *Hierarchy) Now() time.Time {
	if h == nil || h.Clock == nil {
		return time.Now()
	}
	return h.Clock()
}

// Detect works out the layout of the cgroup file systems under root
// (DefaultRoot when empty).
func Detect(root string) (*Hierarchy, error) {
	if root == "" {
		root = DefaultRoot
	}
	root = filepath.Clean(root)
	if root == DefaultRoot {
		// The library caches its answer and knows the hybrid quirks of
		// the standard mount point.
		return &Hierarchy{Root: root, V2: cgroups.IsCgroup2UnifiedMode()}, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		return nil, fmt.Errorf("detect cgroup layout: statfs %s: %w", root, err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return &Hierarchy{Root: root, V2: true}, nil
	}
	// A fixture tree (or a copy) is not on cgroupfs; a v2 root is
	// recognisable by its cgroup.controllers file, which v1 roots lack.
	if fi, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil && fi.Mode().IsRegular() {
		return &Hierarchy{Root: root, V2: true}, nil
	}
	return &Hierarchy{Root: root}, nil
}

func (h *Hierarchy) root() string {
	if h.Root == "" {
		return DefaultRoot
	}
	return filepath.Clean(h.Root)
}

// ForPid returns the cgroups process pid belongs to, from /proc/PID/cgroup.
func (h *Hierarchy) ForPid(pid int) (*Group, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("cgroup of pid %d: invalid pid", pid)
	}
	procRoot := h.ProcRoot
	if procRoot == "" {
		procRoot = DefaultProcRoot
	}
	path := filepath.Join(procRoot, strconv.Itoa(pid), "cgroup")
	paths, err := cgroups.ParseCgroupFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, stripPathError(err))
	}
	return h.ForPaths(paths), nil
}

// ForPaths returns the group for a parsed /proc/PID/cgroup map (controller ->
// path, v2's path under the key ""), as cgroups.ParseCgroupFile returns it.
// Controllers absent from the map make the figures that need them fail with
// ErrNoController.
func (h *Hierarchy) ForPaths(paths map[string]string) *Group {
	root := h.root()
	g := &Group{v2: h.V2, h: h}
	if h.V2 {
		if p, ok := paths[""]; ok {
			g.unified = ctrlDir{root: root, dir: joinUnder(root, p)}
		}
		return g
	}
	g.v1 = make(map[string]ctrlDir, len(v1Controllers))
	for _, c := range v1Controllers {
		if p, ok := paths[c]; ok {
			// On hosts that co-mount cpu and cpuacct, Root/cpu and
			// Root/cpuacct are symlinks to Root/cpu,cpuacct, so the
			// plain controller name works on either kind of host.
			croot := filepath.Join(root, c)
			g.v1[c] = ctrlDir{root: croot, dir: joinUnder(croot, p)}
		}
	}
	if p, ok := paths[""]; ok {
		uroot := filepath.Join(root, "unified")
		g.unified = ctrlDir{root: uroot, dir: joinUnder(uroot, p)}
	}
	return g
}

// joinUnder joins a path from /proc/PID/cgroup onto a hierarchy root.
// Rooting p at "/" before cleaning keeps a hostile "../.." inside root.
func joinUnder(root, p string) string {
	return filepath.Join(root, filepath.Clean("/"+p))
}

// ctrlDir is one controller's directory for a group, with the hierarchy root
// that bounds walks toward the top.
type ctrlDir struct {
	root  string      // hierarchy root, e.g. /sys/fs/cgroup/memory
	dir   string      // the group's directory in it; "" when unknown
	files *reread.Set // the group's own files kept open; nil: plain reads
	up    *upCache    // shared cache of the ancestors' limit files; nil: none
	upTTL time.Duration
	h     *Hierarchy // its clock times the ancestors' cache
}

func (c ctrlDir) ok() bool { return c.dir != "" }

// Group is one process's set of cgroups. It holds only paths, so it stays
// valid (and cheap to cache) while the cgroups exist and is safe for
// concurrent use; every method reads the files afresh, unless the group was
// made with WithLimitCache.
type Group struct {
	v2      bool
	v1      map[string]ctrlDir // v1 controller -> dirs
	unified ctrlDir            // v2 tree, or hybrid's Root/unified tree
	limits  *limitCache        // nil: no caching
	stats   *statCache         // nil: memory.stat read on every call
	statAge time.Duration      // how long stats keeps a memory.stat
	files   *reread.Set        // nil: counter files opened per read
	h       *Hierarchy
}

// WithLimitCache returns a copy of g that reads the group's limits at most
// once per ttl: the memory and swap limits and swappiness (Memory), the
// cpuset (CPUSet) and the CFS quota (QuotaCPUs). These are settings found by
// walking up to the hierarchy root, which costs a read per level and per
// file, and change only when an operator changes them (docker update -m);
// such a change shows within ttl. The ancestors' files are shared by every
// group below them and cached once per hierarchy for ttl too, so a limit
// set on a parent (a pod's) shows within twice ttl. Counters (memory usage
// and, unless WithStatMaxAge, memory.stat; CPU time, I/O) are still read on
// every call, which is also what notices a removed cgroup: those reads then
// fail with fs.ErrNotExist.
func (g *Group) WithLimitCache(ttl time.Duration) *Group {
	c := g.withCtrls(func(d *ctrlDir) {
		if g.h != nil {
			d.up, d.upTTL, d.h = &g.h.ancestors, ttl, g.h
		}
	})
	c.limits = &limitCache{ttl: ttl}
	return c
}

// withCtrls returns a copy of g with fn applied to each controller's
// directory.
func (g *Group) withCtrls(fn func(*ctrlDir)) *Group {
	c := *g
	fn(&c.unified)
	if g.v1 != nil {
		c.v1 = make(map[string]ctrlDir, len(g.v1))
		for name, d := range g.v1 {
			fn(&d)
			c.v1[name] = d
		}
	}
	return &c
}

// WithOpenFiles returns a copy of g that keeps the counter files it reads
// (memory usage and memory.stat, CPU time, I/O, pressure) open and re-reads
// them from offset 0 (pkg/reread), saving a path walk per file per read.
// Close releases them. A removed cgroup still reads as fs.ErrNotExist.
func (g *Group) WithOpenFiles() *Group {
	// Every cgroup file read is a single-record seq_file (one seq_show
	// prints it all), so one pread reads it.
	files := &reread.Set{Single: true}
	c := g.withCtrls(func(d *ctrlDir) { d.files = files })
	c.files = files
	return c
}

// Close releases the files WithOpenFiles keeps open. The group stays usable,
// reading with plain opens.
func (g *Group) Close() error {
	return g.files.Close()
}

// WithStatMaxAge returns a copy of g whose Memory reuses the last
// memory.stat it read for up to maxAge. memory.stat is not an exact figure
// to begin with: the kernel folds its per-CPU changes into it in batches
// (since Linux 5.15 once enough have piled up, or every 2 s), so a read
// rarely sees a change younger than a few milliseconds anyway, and
// generating it is the most expensive read of a render: tens of
// microseconds when the group is busy, as the flush walks every CPU. Usage,
// which is exact, and every other counter are still read on every call, so
// a removed cgroup still fails at once. maxAge <= 0 returns g itself.
func (g *Group) WithStatMaxAge(maxAge time.Duration) *Group {
	if maxAge <= 0 {
		return g
	}
	c := *g
	c.stats, c.statAge = &statCache{}, maxAge
	return &c
}

// statCache keeps the last memory.stat a group read.
type statCache = expiring.Cache[struct{}, view.MemStat]

// limitCache keeps the last limits a group read.
type limitCache struct {
	ttl    time.Duration
	mem    expiring.Cache[struct{}, memLimits]
	cpuset expiring.Cache[struct{}, []int]
	quota  expiring.Cache[struct{}, float64]
}

// cachedLimit returns the value in g's cache slot while it is younger than
// the TTL, else loads it.
func cachedLimit[T any](g *Group, slot func(*limitCache) *expiring.Cache[struct{}, T], load func() (T, error)) (T, error) {
	lc := g.limits
	if lc == nil {
		return load()
	}
	return slot(lc).Get(struct{}{}, g.h.Now(), lc.ttl, load)
}

// V2 reports whether the group lives in a pure unified hierarchy.
func (g *Group) V2() bool { return g.v2 }

// Dir returns the group's directory for a controller ("memory", "cpu",
// "cpuacct", "cpuset", "blkio", "pids"; "" for the unified tree), or "" when
// the group has none. On v2 every controller maps to the one directory.
func (g *Group) Dir(controller string) string {
	return g.ctrl(controller).dir
}

// ctrl returns the directory a v1 controller's files live in, or the unified
// directory on v2.
func (g *Group) ctrl(name string) ctrlDir {
	if g.v2 || name == "" {
		return g.unified
	}
	return g.v1[name]
}

// need is ctrl that fails with ErrNoController when the group lacks the
// controller.
func (g *Group) need(name string) (ctrlDir, error) {
	c := g.ctrl(name)
	if !c.ok() {
		if name == "" {
			name = "unified"
		}
		return c, fmt.Errorf("%s: %w", name, ErrNoController)
	}
	return c, nil
}

// readFile reads one cgroup file, with the full path in any error.
func readFile(dir, file string) (string, error) {
	var out string
	err := withFile(nil, dir, file, func(s string) error {
		out = strings.Clone(s)
		return nil
	})
	return out, err
}

// bufPool holds read buffers: a container's files are read on every FUSE
// read, and a fresh buffer per file was most of a render's garbage.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// withFile reads dir/file whole and calls fn with its content. The string is
// a view of a pooled buffer, valid only until fn returns: fn must parse it,
// not keep it (or clone what it keeps). files, when not nil, keeps the file
// open for the next read (pkg/reread).
//
// The file is read by plain path rather than with cgroups.ReadFile's openat2
// below a cached root handle: the path is built from the hierarchy's mount
// directory and a /proc/PID/cgroup path cleaned under "/" (joinUnder), never
// from a reader's input, and cgroupfs has no symlinks a container could
// plant, so the extra resolution checks bought nothing but syscalls and
// allocations on the hot path.
func withFile(files *reread.Set, dir, file string, fn func(s string) error) error {
	bp := bufPool.Get().(*[]byte)
	b, err := files.ReadIn(dir, file, (*bp)[:0], 0)
	*bp = b[:0]
	if err != nil {
		bufPool.Put(bp)
		return fmt.Errorf("read %s: %w", filepath.Join(dir, file), stripPathError(err))
	}
	if len(b) == 0 {
		bufPool.Put(bp)
		return fn("")
	}
	if err := fn(unsafe.String(&b[0], len(b))); err != nil {
		// A parse error may quote the content (strconv.NumError keeps
		// the text it failed on): the buffer now belongs to the error
		// and is not reused.
		return err
	}
	bufPool.Put(bp)
	return nil
}

// read is withFile for a file in c's own directory, through c's open files.
func (c ctrlDir) read(file string, fn func(s string) error) error {
	return withFile(c.files, c.dir, file, fn)
}

// stripPathError drops a bare *fs.PathError's own path so the caller's
// "read PATH: ..." does not repeat it; the errno (and so errors.Is with
// fs.ErrNotExist) survives. Wrapped errors are left alone as their wrapper
// text may matter.
func stripPathError(err error) error {
	if pe, ok := err.(*fs.PathError); ok {
		return pe.Err
	}
	return err
}

// readUint reads a file of c's own directory holding one unsigned number,
// "max" meaning no limit, through c's open files.
func (c ctrlDir) readUint(file string) (uint64, error) {
	var v uint64
	err := c.read(file, func(s string) error {
		var err error
		if v, err = parseUintValue(s); err != nil {
			return fmt.Errorf("parse %s: %w", filepath.Join(c.dir, file), err)
		}
		return nil
	})
	return v, err
}

// walkUp calls fn for c's directory and each parent up to and including the
// hierarchy root, stopping early when fn returns stop. A directory missing
// the file is fn's business, but a missing starting directory means the
// cgroup is gone, which walkUp reports (wrapping fs.ErrNotExist) rather than
// let a limit silently read as "none".
//
// The starting directory is checked only when a file there was missing: a
// file read there proves it exists, and this walk runs for every container
// once per limit TTL.
func walkUp(c ctrlDir, fn func(l level) (stop bool, err error)) error {
	dir := c.dir
	for {
		var missing bool
		l := level{c: c, dir: dir}
		if dir == c.dir {
			l.missing = &missing
		}
		stop, err := fn(l)
		if missing {
			if _, serr := os.Stat(c.dir); serr != nil {
				return fmt.Errorf("cgroup %s: %w", c.dir, stripPathError(serr))
			}
		}
		if err != nil || stop {
			return err
		}
		if dir == c.root {
			return nil
		}
		parent := filepath.Dir(dir)
		if parent == dir || !within(parent, c.root) {
			return nil
		}
		dir = parent
	}
}

// level is one directory of a walk up from a group's own.
type level struct {
	c       ctrlDir
	dir     string
	missing *bool // set when a file of the group's own directory was not there
}

// self reports whether the level is the group's own directory.
func (l level) self() bool { return l.dir == l.c.dir }

// read reads a file of the level: the group's own through its kept files,
// an ancestor's through the hierarchy's shared cache when the group has one.
func (l level) read(file string) (string, error) {
	switch {
	case l.self():
		var out string
		err := l.c.read(file, func(s string) error {
			out = strings.Clone(s)
			return nil
		})
		if isNotExist(err) && l.missing != nil {
			*l.missing = true
		}
		return out, err
	case l.c.up != nil:
		return l.readUp(file)
	}
	return readFile(l.dir, file)
}

// readUint reads a file of the level holding one unsigned number.
func (l level) readUint(file string) (uint64, error) {
	s, err := l.read(file)
	if err != nil {
		return 0, err
	}
	v, err := parseUintValue(s)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", filepath.Join(l.dir, file), err)
	}
	return v, nil
}

// upCache holds ancestor directories' limit files (by path) for every group
// of a hierarchy: 500 containers under one parent read its memory limit
// once per TTL, not 500 times.
type upCache = expiring.Cache[string, upFile]

// upFile is an ancestor's file: its content, or that it is not there (a v2
// root has no memory.max), which is kept too.
type upFile struct {
	s   string
	err error
}

// readUp reads an ancestor level's file through the hierarchy's cache.
func (l level) readUp(file string) (string, error) {
	f, err := l.c.up.Get(l.dir+"/"+file, l.c.h.Now(), l.c.upTTL, func() (upFile, error) {
		s, err := readFile(l.dir, file)
		if err != nil && !isNotExist(err) {
			return upFile{}, err
		}
		return upFile{s, err}, nil
	})
	if err != nil {
		return "", err
	}
	return f.s, f.err
}

// within reports whether dir is root or below it (both clean).
func within(dir, root string) bool {
	return dir == root || root == "/" || strings.HasPrefix(dir, root+"/")
}

// isNotExist is errors.Is(err, fs.ErrNotExist), named for readability at the
// many "file may be absent" call sites.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// minUintUp returns the smallest value of file found in c's directory and its
// ancestors. Levels without the file are skipped (a v2 root has no
// memory.max); found is false when no level had it, and self tells whether
// the group's own directory had it (the sign a swap file is accounted).
func minUintUp(c ctrlDir, file string) (lowest uint64, found, self bool, err error) {
	err = walkUp(c, func(l level) (bool, error) {
		v, err := l.readUint(file)
		if err != nil {
			if isNotExist(err) {
				return false, nil
			}
			return true, err
		}
		if l.self() {
			self = true
		}
		if !found || v < lowest {
			lowest = v
		}
		found = true
		return false, nil
	})
	if err != nil {
		return 0, false, false, err
	}
	return lowest, found, self, nil
}

// Procs returns the pids in the group (cgroup.procs). On v1 it uses the first
// of the cpu, pids and memory hierarchies the group is in.
func (g *Group) Procs() ([]int, error) {
	var c ctrlDir
	if g.v2 {
		c = g.unified
	} else {
		for _, name := range []string{ctrlCPU, ctrlPids, ctrlMemory} {
			if c = g.v1[name]; c.ok() {
				break
			}
		}
	}
	if !c.ok() {
		return nil, fmt.Errorf("procs: %w", ErrNoController)
	}
	pids, err := cgroups.GetPids(c.dir)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(c.dir, cgroups.CgroupProcesses), stripPathError(err))
	}
	return pids, nil
}

// Pressure returns the group's PSI file for resource ("cpu", "memory" or
// "io") verbatim. On hybrid hosts it comes from the unified tree when the
// kernel keeps it there. A missing file gives an error wrapping
// fs.ErrNotExist.
func (g *Group) Pressure(resource string) ([]byte, error) {
	c, err := g.pressureDir(resource)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = c.read(resource+".pressure", func(s string) error {
		out = []byte(s)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// pressureDir is the directory of the group's PSI files, once resource is
// known to have one.
func (g *Group) pressureDir(resource string) (ctrlDir, error) {
	switch resource {
	case "cpu", "memory", "io":
	default:
		return ctrlDir{}, fmt.Errorf("pressure: unknown resource %q", resource)
	}
	c, err := g.need("")
	if err != nil {
		return c, fmt.Errorf("%s pressure: %w", resource, err)
	}
	return c, nil
}

// OpenPressure opens the group's PSI file for resource for writing, to
// register a trigger on it (see the kernel's Documentation/accounting/psi):
// the kernel ties a trigger to the open file, which then polls POLLPRI.
func (g *Group) OpenPressure(resource string) (*os.File, error) {
	c, err := g.pressureDir(resource)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(c.dir, resource+".pressure"), os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s pressure for a trigger: %w", resource, err)
	}
	return f, nil
}
