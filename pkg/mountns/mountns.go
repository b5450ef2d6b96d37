// Package mountns enters a container's mount namespace and bind-mounts the
// served view files over the container's own, read-only.
//
// Everything happens on a dedicated OS thread that joins the container's
// mount namespace and is never given back to the Go scheduler: the thread
// exits with its goroutine, so no other goroutine ever runs in the
// container's namespace, and the hook's other threads stay on the host.
package mountns

import (
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
)

// ErrRefused is wrapped by every error that means the hook would have acted
// outside the container (a host process as pid, a symlinked rootfs or
// target). Such errors point at a hostile or broken configuration.
var ErrRefused = errors.New("refused")

// Skip is a planned mount that was not made, and why.
type Skip struct {
	hook.Mount
	Reason string
	// Live: the target already is a view that answers (a second hook run,
	// or a remount finding the connection alive).
	Live bool
}

// Result tells what Attach did, for the log.
type Result struct {
	Mounted []hook.Mount // fresh views, dead ones they replaced included
	Skipped []Skip
}

// flags of the read-only remount: a view is data, never a device, program or
// setuid file.
const roFlags = unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// ErrTimeout is wrapped by Attach's error when the container's namespace did
// not let the work finish in time.
var ErrTimeout = errors.New("timed out")

// Attach joins the mount namespace of pid (the container's init, on the
// host) and mounts each Source read-only over Target resolved inside rootfs:
// the bundle's rootfs at createRuntime, before the runtime's pivot_root, or
// "/" in a running container. The hook and remount both come here.
//
// Sources are cloned in the caller's namespace first (open_tree), so a
// running container, whose namespace no longer shows the host's files, gets
// them the same way as one being created. Targets that do not exist in the
// container are skipped, and so are live views; views whose connection is
// gone (the daemon was stopped) are unmounted and replaced. It refuses to
// act when pid is in the caller's or pid 1's mount namespace, when rootfs is
// a symlink, or when a target is a symlink or of another type than its
// source. It stops at the first error, returning what was done so far.
//
// timeout > 0 bounds the work in the namespace: a container can put a file
// system of its own that never answers on a target, and one such container
// must not stall the re-attach of all the others. The thread doing the work
// is then left behind, and ends when the container's file system answers or
// goes away.
func Attach(pid int, rootfs string, mounts []hook.Mount, timeout time.Duration) (Result, error) {
	p, err := Prepare(mounts)
	if err != nil {
		return Result{}, err
	}
	return p.Attach(pid, rootfs, timeout)
}

// Prepared are views checked and cloned ahead (Prepare), for Attach to
// mount later: the daemon prepares a spare container tree's before any
// container has it.
type Prepared struct {
	srcs sources
	used bool
}

// Prepare checks and clones mounts' sources in the caller's namespace, the
// first half of Attach.
func Prepare(mounts []hook.Mount) (*Prepared, error) {
	srcs, err := prepare(mounts)
	if err != nil {
		return nil, err
	}
	return &Prepared{srcs: srcs}, nil
}

// PrepareOpened is Prepare with the sources already opened (O_PATH,
// O_NOFOLLOW), files[i] being mounts[i].Source, by another process: no
// lookup is made, so a file system's server may prepare views of its own
// mount from descriptors a helper opened, as the daemon does for spares (a
// request of its own would otherwise hold its exit, were it killed before
// answering it). It takes the files, and closes them.
func PrepareOpened(mounts []hook.Mount, files []*os.File) (*Prepared, error) {
	if len(files) != len(mounts) {
		for _, f := range files {
			f.Close()
		}
		return nil, fmt.Errorf("%d files for %d views", len(files), len(mounts))
	}
	byName := make(map[string]*os.File, len(files))
	for i, f := range files {
		byName[mounts[i].Source] = f
	}
	var mu sync.Mutex
	srcs, err := prepareWith(mounts, func(name string) (*os.File, error) {
		mu.Lock()
		defer mu.Unlock()
		f := byName[name]
		delete(byName, name)
		if f == nil {
			return nil, fmt.Errorf("%s listed twice", name)
		}
		return f, nil
	})
	for _, f := range byName { // left by an error
		f.Close()
	}
	if err != nil {
		return nil, err
	}
	return &Prepared{srcs: srcs}, nil
}

func openPath(name string) (*os.File, error) {
	return os.OpenFile(name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// Close releases views that will not be attached.
func (p *Prepared) Close() {
	if !p.used {
		p.used = true
		p.srcs.close()
	}
}

// Attach is Attach with views prepared ahead, which it takes: each clone
// can be mounted once.
func (p *Prepared) Attach(pid int, rootfs string, timeout time.Duration) (Result, error) {
	if p.used {
		return Result{}, errors.New("prepared views attached or closed already")
	}
	p.used = true
	srcs := p.srcs
	if pid <= 0 {
		srcs.close()
		return Result{}, fmt.Errorf("%w: pid %d is not a process", ErrRefused, pid)
	}
	type outcome struct {
		res Result
		err error
	}
	ch := make(chan outcome, 1)
	go func() {
		// Never unlocked: the thread's fs_struct and mount namespace are
		// changed below, and a locked goroutine that exits takes its thread
		// with it instead of handing a tainted thread back to the scheduler.
		runtime.LockOSThread()
		// The clones belong to this goroutine: after a timeout it may
		// still be using them.
		defer srcs.close()
		var fds []int
		res, err := attachInNamespace(pid, rootfs, srcs, &fds)
		ch <- outcome{res, err}
		// Closed once the caller has its answer: a dozen system calls
		// the container's start need not wait for.
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case o := <-ch:
		return o.res, o.err
	case <-expired:
		return Result{}, fmt.Errorf("%w: the mount namespace of process %d did not let its views be attached within %s (a file system of its own on a view's path that does not answer?); its views were left as they are", ErrTimeout, pid, timeout)
	}
}

// source is a view to attach, prepared in the caller's namespace.
type source struct {
	hook.Mount
	clone int // a detached read-only copy of the view's mount; -1 before Linux 5.12
}

type sources []source

func (ss sources) close() {
	for _, s := range ss {
		if s.clone >= 0 {
			unix.Close(s.clone)
		}
	}
}

// prepare checks and clones every source in the caller's namespace, where
// the daemon's files are. Each source's first lookup is a round trip to the
// daemon (a new container's files were never looked up); the kernel takes
// lookups in one directory in parallel (FUSE parallel dirops) and the
// daemon answers several at once, so they are made side by side, at most
// maxPrepare at a time.
func prepare(mounts []hook.Mount) (sources, error) { return prepareWith(mounts, openPath) }

func prepareWith(mounts []hook.Mount, open func(string) (*os.File, error)) (sources, error) {
	ss := make(sources, len(mounts))
	errs := make([]error, len(mounts))
	sem := make(chan struct{}, maxPrepare)
	var wg sync.WaitGroup
	for i, m := range mounts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ss[i] = source{Mount: m, clone: -1}
			clone, err := prepareOne(m, open)
			if err != nil {
				errs[i] = fmt.Errorf("source %s: %w", m.Source, err)
				return
			}
			ss[i].clone = clone
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			ss.close()
			return nil, err
		}
	}
	return ss, nil
}

// maxPrepare bounds the sources looked up at once: the views are a dozen or
// so, and nothing a daemon lists may grow the hook's threads without bound.
const maxPrepare = 8

func prepareOne(m hook.Mount, open func(string) (*os.File, error)) (int, error) {
	f, err := open(m.Source)
	if err != nil {
		return -1, err
	}
	defer f.Close()
	st, err := fstatCached(int(f.Fd()))
	if err != nil {
		return -1, err
	}
	if st.Mode&unix.S_IFMT != fileType(m) {
		return -1, fmt.Errorf("not a %s", typeName(fileType(m)))
	}
	return cloneView(f, m.Writable)
}

// viewAttrs are a view mount's attributes: data, never a device, program or
// setuid file.
const viewAttrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC

// cloneView makes a detached copy of the mount holding f with a view's
// attributes (open_tree, mount_setattr): attached with move_mount, it is
// read-only (unless writable: the pressure files, which take PSI triggers)
// from its first instant and lands exactly on the resolved target with no
// path walk. It returns -1 when the kernel lacks that API (before 5.12).
func cloneView(f *os.File, writable bool) (int, error) {
	tree, err := unix.OpenTree(int(f.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.ENOSYS) {
		return -1, nil
	}
	if err != nil {
		return -1, fmt.Errorf("clone the view: %w", err)
	}
	attrs := uint64(viewAttrs)
	if writable {
		attrs &^= unix.MOUNT_ATTR_RDONLY
	}
	err = unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: attrs})
	if errors.Is(err, unix.ENOSYS) {
		unix.Close(tree)
		return -1, nil
	}
	if err != nil {
		unix.Close(tree)
		return -1, fmt.Errorf("make the view read-only: %w", err)
	}
	return tree, nil
}

func attachInNamespace(pid int, rootfs string, srcs sources, opened *[]int) (Result, error) {
	var res Result
	if err := enter(pid); err != nil {
		return res, err
	}
	// The rootfs is resolved in the container's namespace: the runtime has
	// bound it onto itself there and mounted procfs and sysfs under it.
	// Plain descriptors here and below, not *os.File: each os.File costs a
	// system call or three of its own (non-blocking checks, poller
	// registration), a dozen per container start for nothing.
	rootFd, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		var st unix.Stat_t
		if errors.Is(err, unix.ENOTDIR) && unix.Lstat(rootfs, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return res, fmt.Errorf("%w: rootfs %s is a symlink: give the runtime the real directory", ErrRefused, rootfs)
		}
		if errors.Is(err, unix.ENOTDIR) {
			return res, fmt.Errorf("rootfs %s is not a directory", rootfs)
		}
		return res, fmt.Errorf("open rootfs %s in the container's mount namespace: %w", rootfs, err)
	}
	*opened = append(*opened, rootFd)

	// Most views share a directory (/proc): each is resolved once.
	parents := map[string]*parentDir{}
	defer func() {
		for _, d := range parents {
			*opened = append(*opened, d.fd)
		}
	}()
	for _, s := range srcs {
		skip, err := attachOne(rootFd, rootfs, parents, s)
		if err != nil {
			return res, err
		}
		if skip.Reason != "" {
			res.Skipped = append(res.Skipped, skip)
			continue
		}
		res.Mounted = append(res.Mounted, s.Mount)
	}
	return res, nil
}

// parentDir is a directory holding targets, resolved in the rootfs: its
// file system's device and type, which a target on the same device shares
// (no statfs of its own then).
type parentDir struct {
	fd     int
	dev    uint64
	fsType int64
}

// nsID identifies a namespace file: device and inode.
type nsID struct{ dev, ino uint64 }

// hostNS is pid 1's mount namespace, which never changes: read once.
var hostNS = sync.OnceValue(func() (ns nsID) {
	var host unix.Stat_t
	if err := unix.Stat("/proc/1/ns/mnt", &host); err == nil {
		return nsID{host.Dev, host.Ino}
	}
	// Stat can be refused where the link is still readable
	// ("mnt:[INODE]"; namespaces all live on one nsfs device).
	link, err := os.Readlink("/proc/1/ns/mnt")
	if ino, ok := strings.CutPrefix(link, "mnt:["); err == nil && ok {
		if n, err := strconv.ParseUint(strings.TrimSuffix(ino, "]"), 10, 64); err == nil {
			return nsID{ino: n}
		}
	}
	return nsID{}
})

// ownNS is this process's mount namespace, which its threads never leave
// but to exit (see enter): read once.
var ownNS = sync.OnceValues(func() (nsID, error) {
	var st unix.Stat_t
	err := unix.Stat("/proc/self/ns/mnt", &st)
	return nsID{st.Dev, st.Ino}, err
})

// enter joins pid's mount namespace on the calling thread, which must be
// locked and must not be given back.
func enter(pid int) error {
	gone := func(err error) error {
		return fmt.Errorf("%w: container process %d does not exist (exited before the hook ran?): %w", ErrRefused, pid, err)
	}
	// A pidfd pins which process pid is: if it is still alive after its
	// namespace file is open, that file is its own and not a process's
	// that got the pid since, and setns through it joins exactly that
	// process's namespace (kernels before 5.3 have no pidfd_open and go
	// without the check).
	pidfd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
		defer unix.Close(pidfd)
	case errors.Is(err, unix.ESRCH):
		return gone(err)
	default:
		pidfd = -1
	}
	nsPath := "/proc/" + strconv.Itoa(pid) + "/ns/mnt"
	nsFd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return gone(fmt.Errorf("open %s: %w", nsPath, err))
		}
		return fmt.Errorf("open %s: %w", nsPath, err)
	}
	defer unix.Close(nsFd)
	if pidfd >= 0 {
		if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
			return gone(err)
		}
	}
	var theirs unix.Stat_t
	if err := unix.Fstat(nsFd, &theirs); err != nil {
		return fmt.Errorf("stat %s: %w", nsPath, err)
	}
	ours, err := ownNS()
	if err != nil {
		return fmt.Errorf("stat own mount namespace: %w", err)
	}
	if theirs.Dev == ours.dev && theirs.Ino == ours.ino {
		return fmt.Errorf("%w: process %d shares the hook's own mount namespace (the caller's), so it is not a container init: mounting there would cover the host's files (is the hook configured at the createRuntime stage, and is state.pid the container's?)", ErrRefused, pid)
	}
	// The hook may itself run in a namespace of its own (a DaemonSet's, or
	// unshare'd); the host's is pid 1's. Where that is unreadable (a
	// hardened /proc, or a sandbox such as the one this project is tested
	// in, where root may not look at pid 1's namespaces), the check above
	// is what is left.
	if host := hostNS(); host.ino == theirs.Ino && (host.dev == 0 || host.dev == theirs.Dev) {
		return fmt.Errorf("%w: process %d is in the host's mount namespace (pid 1's), so it is not a container init: mounting there would cover the host's files", ErrRefused, pid)
	}

	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare CLONE_FS: %w", err)
	}
	// Joining also moves this thread's root and cwd to the namespace's
	// root. setns takes a pidfd since Linux 5.8; before, the namespace
	// file opened (and checked) above.
	err = unix.EINVAL
	if pidfd >= 0 {
		err = unix.Setns(pidfd, unix.CLONE_NEWNS)
	}
	if errors.Is(err, unix.EINVAL) {
		err = unix.Setns(nsFd, unix.CLONE_NEWNS)
	}
	if err != nil {
		return fmt.Errorf("join mount namespace of process %d: %w", pid, err)
	}
	return nil
}

// maxStacked is how many dead views on one target are peeled: one per
// connection lost since the view was last attached.
const maxStacked = 8

// attachOne mounts s and returns a Skip with a reason when it did not.
// parents holds the directories already resolved in the rootfs.
func attachOne(rootFd int, rootfs string, parents map[string]*parentDir, s source) (Skip, error) {
	m := s.Mount
	skip := func(reason string, live bool) (Skip, error) { return Skip{Mount: m, Reason: reason, Live: live}, nil }
	dir, base := path.Split(path.Clean("/" + m.Target))
	if base == "" || base == "." || base == ".." {
		return Skip{}, fmt.Errorf("%w: target %q names no file", ErrRefused, m.Target)
	}
	parent, ok := parents[dir]
	if !ok {
		// Every component but the last is resolved as if rootfs were /,
		// so a symlink (absolute or with "..") cannot lead out of it.
		fd, err := openInRoot(rootFd, dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return skip(fmt.Sprintf("%s does not exist in the container", dir), false)
			}
			return Skip{}, fmt.Errorf("resolve %s in rootfs %s: %w", dir, rootfs, err)
		}
		parent = &parentDir{fd: fd}
		parents[dir] = parent
		st, err := fstatCached(fd)
		var fs unix.Statfs_t
		if err == nil {
			err = unix.Fstatfs(fd, &fs)
		}
		if err != nil {
			return Skip{}, fmt.Errorf("stat %s in rootfs %s: %w", dir, rootfs, err)
		}
		parent.dev, parent.fsType = st.Dev, int64(fs.Type)
	}
	if s.clone >= 0 && kernelNamed(parent.fsType) {
		// Procfs and sysfs names are the kernel's: between a look at one
		// and a mount on it by name, nothing can make the name another
		// file. It can only be covered by a mount, which only a running
		// container's own privileged processes could make (remount); the
		// view then lands on top of it, on the same path. So a plain
		// target there is attached by name: a stat and the mount, where
		// the checks below open, stat, mount and close.
		st, err := statAt(parent.fd, base)
		if errors.Is(err, unix.ENOENT) {
			return skip(fmt.Sprintf("%s does not exist in the container", m.Target), false)
		}
		if err == nil && st.Dev == parent.dev && st.Mode&unix.S_IFMT == fileType(m) {
			if err := unix.MoveMount(s.clone, "", parent.fd, base, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return Skip{}, fmt.Errorf("attach %s over %s: %w", m.Source, m.Target, err)
			}
			return Skip{}, nil
		}
		// Anything else (a symlink, a mount of its own, another type)
		// takes the checks below.
	}
	var target int
	var tst fileID
	for peeled := 0; ; peeled++ {
		var reason string
		var err error
		target, tst, reason, err = openTarget(parent.fd, base, m.Target)
		if err != nil || reason != "" {
			return Skip{Mount: m, Reason: reason}, err
		}
		defer unix.Close(target)
		if tst.Mode&unix.S_IFMT != fileType(m) {
			return Skip{}, fmt.Errorf("%w: target %s is not a %s like its source %s (mode %#o)", ErrRefused, m.Target, typeName(fileType(m)), m.Source, tst.Mode&unix.S_IFMT)
		}
		// A target on its directory's device is on its file system (procfs,
		// sysfs): only one with a mount of its own needs a look at what.
		fsType := parent.fsType
		if tst.Dev != parent.dev {
			var tfs unix.Statfs_t
			err = unix.Fstatfs(target, &tfs)
			fsType = int64(tfs.Type)
		}
		if errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED) {
			// A view whose connection is gone: remove it and look again
			// (several may be stacked).
			if peeled == maxStacked {
				return Skip{}, fmt.Errorf("more than %d dead views stacked on %s", maxStacked, m.Target)
			}
			if err := unmountIn(parent.fd, base); err != nil {
				return Skip{}, fmt.Errorf("remove dead view at %s: %w", m.Target, err)
			}
			continue
		}
		if err == nil && uint32(fsType) == hook.FUSESuperMagic {
			// prestart and createRuntime both listing the hook, a second
			// hook run, or a remount while the connection lives: views
			// are never stacked.
			return skip(fmt.Sprintf("%s is already a FUSE file (served view?)", m.Target), true)
		}
		if m.Dir && err == nil && fsType == unix.TMPFS_MAGIC && tst.Dev != parent.dev {
			// Runtimes mask a directory with a read-only tmpfs: the
			// container was meant not to see these entries, and a view
			// would show them. (A rootfs that merely lies on a tmpfs, a
			// bundle under a tmpfs /tmp with no /sys mounted, is on its
			// parent's device.)
			return skip(fmt.Sprintf("%s is a tmpfs (masked by the runtime)", m.Target), false)
		}
		break
	}

	if s.clone >= 0 {
		if err := unix.MoveMount(s.clone, "", target, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
			return Skip{}, fmt.Errorf("attach %s over %s: %w", m.Source, m.Target, err)
		}
		return Skip{}, nil
	}
	return Skip{}, bindByPath(parent.fd, base, target, m)
}

// bindByPath is the mount for kernels before 5.12 (no clone to attach):
// bind, then remount read-only. The source is named by its path, which a
// container being created still shows (its namespace is a copy of the
// caller's); a running container's does not, so re-attaching needs 5.12.
func bindByPath(parent int, base string, target int, m hook.Mount) error {
	src, err := unix.Open(m.Source, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open source %s in the container's mount namespace (re-attaching views to a running container needs Linux 5.12): %w", m.Source, &os.PathError{Op: "open", Path: m.Source, Err: err})
	}
	defer unix.Close(src)
	sst, err := fstatCached(src)
	if err != nil {
		return fmt.Errorf("stat source %s: %w", m.Source, err)
	}
	if err := unix.Mount(fdPath(src), fdPath(target), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s over %s: %w", m.Source, m.Target, err)
	}
	// The handle still points at the file under the new mount: look the name
	// up again to reach the mount itself.
	top, _, reason, err := openTarget(parent, base, m.Target)
	if err == nil && reason != "" {
		err = fmt.Errorf("%s vanished after the bind: %s", m.Target, reason)
	}
	if err != nil {
		return fmt.Errorf("reopen %s after the bind: %w", m.Target, err)
	}
	defer unix.Close(top)
	st, err := fstatCached(top)
	if err != nil {
		return fmt.Errorf("stat %s after the bind: %w", m.Target, err)
	}
	if st.Dev != sst.Dev || st.Ino != sst.Ino {
		// Something else sits on top now (a race in the container's
		// namespace): leave it, and say so.
		return fmt.Errorf("%s is not the bound view after the bind", m.Target)
	}
	flags := uintptr(roFlags)
	if m.Writable {
		flags &^= unix.MS_RDONLY
	}
	if err := unix.Mount("", fdPath(top), "", flags, ""); err != nil {
		// A view that cannot be made read-only is removed rather than left
		// writable.
		_ = unix.Unmount(fdPath(top), unix.MNT_DETACH)
		return fmt.Errorf("make %s read-only: %w", m.Target, err)
	}
	return nil
}

// fileType is the type of file m's source and target must both be.
func fileType(m hook.Mount) uint32 {
	if m.Dir {
		return unix.S_IFDIR
	}
	return unix.S_IFREG
}

func typeName(t uint32) string {
	if t == unix.S_IFDIR {
		return "directory"
	}
	return "regular file"
}

// openTarget opens the last component without following it: a symlink there
// is refused, whatever it points to.
func openTarget(parent int, base, target string) (int, fileID, string, error) {
	fd, err := unix.Openat(parent, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return -1, fileID{}, fmt.Sprintf("%s does not exist in the container", target), nil
		}
		return -1, fileID{}, "", fmt.Errorf("open target %s: %w", target, err)
	}
	st, err := fstatCached(fd)
	if err != nil {
		unix.Close(fd)
		return -1, fileID{}, "", fmt.Errorf("stat target %s: %w", target, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		unix.Close(fd)
		return -1, fileID{}, "", fmt.Errorf("%w: target %s is a symlink in the container: not following it", ErrRefused, target)
	}
	return fd, st, "", nil
}

// openInRoot opens dir, a path in the rootfs, with every component resolved
// as if root were "/" (openat2 RESOLVE_IN_ROOT, with magic links refused).
// That is the kernel's own containment, which pathrs-lite uses too; calling
// it directly skips pathrs-lite's naming of the handle through a private
// procfs instance, a fifth of a millisecond of every container start.
// Kernels without openat2 (before 5.6), or a seccomp filter refusing it,
// get pathrs-lite's own walk.
func openInRoot(root int, dir string) (int, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := linux.Openat2(root, dir, how)
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM), errors.Is(err, unix.E2BIG), errors.Is(err, unix.EAGAIN):
		// No openat2 here (an old kernel, or a seccomp filter refusing
		// it), or lookups that kept racing renames: pathrs-lite walks
		// without it, from a handle of its own on the root.
		dup, err := unix.FcntlInt(uintptr(root), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return -1, err
		}
		rootF := os.NewFile(uintptr(dup), "rootfs")
		defer rootF.Close()
		f, err := pathrs.OpenatInRoot(rootF, dir)
		if err != nil {
			return -1, err
		}
		// The *os.File must not close the descriptor handed on.
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		f.Close()
		return fd, err
	default:
		return -1, &os.PathError{Op: "openat2", Path: dir, Err: err}
	}
}

// unmountIn detaches the mount on name in the directory parent. umount2
// takes only a path: the name is looked up from parent, made the thread's
// working directory (its fs_struct is its own, see enter), and a symlink
// there is not followed. /proc/thread-self/fd paths are no way in a running
// container, whose /proc belongs to its own pid namespace, where this
// thread has no entry.
func unmountIn(parent int, name string) error {
	if err := unix.Fchdir(parent); err != nil {
		return fmt.Errorf("enter the directory: %w", err)
	}
	return unix.Unmount(name, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
}

// fdPath names an fd for mount(2), which takes paths: the magic link resolves
// to exactly the file the fd holds, with no second path walk to race.
func fdPath(fd int) string {
	return "/proc/thread-self/fd/" + strconv.Itoa(fd)
}

// fileID is what the checks here need of a file: its type and identity.
type fileID struct {
	Mode uint32
	Dev  uint64
	Ino  uint64
}

// kernelNamed says whether a file system's names are the kernel's own.
func kernelNamed(fsType int64) bool {
	return fsType == unix.PROC_SUPER_MAGIC || fsType == unix.SYSFS_MAGIC
}

// fstatCached stats fd without asking a FUSE server for fresh attributes
// (AT_STATX_DONT_SYNC): type, device and inode never change, and each
// GETATTR on a view is a round trip to the daemon, two per view on every
// container start.
func fstatCached(fd int) (fileID, error) { return statAt(fd, "") }

// statAt is fstatCached of name in directory dir ("": dir itself), not
// following a symlink.
func statAt(dir int, name string) (fileID, error) {
	flags := unix.AT_STATX_DONT_SYNC | unix.AT_SYMLINK_NOFOLLOW
	if name == "" {
		flags |= unix.AT_EMPTY_PATH
	}
	var stx unix.Statx_t
	if err := unix.Statx(dir, name, flags, unix.STATX_TYPE|unix.STATX_INO, &stx); err != nil {
		return fileID{}, err
	}
	return fileID{Mode: uint32(stx.Mode), Dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), Ino: stx.Ino}, nil
}
