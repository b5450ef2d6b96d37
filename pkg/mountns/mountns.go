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

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

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
}

// Result tells what BindReadOnly did, for the log.
type Result struct {
	Mounted []hook.Mount
	Skipped []Skip
}

// flags of the read-only remount: a view is data, never a device, program or
// setuid file.
const roFlags = unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC

// BindReadOnly joins the mount namespace of pid (the container's init, on
// the host) and bind-mounts each Source over Target resolved inside rootfs,
// then makes the bind read-only. Targets that do not exist in the container
// are skipped. It refuses to act when pid shares the caller's mount
// namespace, when rootfs is a symlink, or when a target is a symlink or of
// another file type than its source. It stops at the first error, returning
// what was done so far.
func BindReadOnly(pid int, rootfs string, mounts []hook.Mount) (Result, error) {
	if pid <= 0 {
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
		res, err := bindInNamespace(pid, rootfs, mounts)
		ch <- outcome{res, err}
	}()
	o := <-ch
	return o.res, o.err
}

func bindInNamespace(pid int, rootfs string, mounts []hook.Mount) (Result, error) {
	var res Result
	gone := func(err error) error {
		return fmt.Errorf("%w: container process %d does not exist (exited before the hook ran?): %w", ErrRefused, pid, err)
	}
	// A pidfd pins which process pid is: if it is still alive after its
	// namespace file is open, that file is its own and not a process's
	// that got the pid since (kernels before 5.3 have no pidfd_open and go
	// without the check).
	pidfd, err := unix.PidfdOpen(pid, 0)
	switch {
	case err == nil:
		defer unix.Close(pidfd)
	case errors.Is(err, unix.ESRCH):
		return res, gone(err)
	default:
		pidfd = -1
	}
	nsPath := "/proc/" + strconv.Itoa(pid) + "/ns/mnt"
	nsFd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ESRCH) {
			return res, gone(fmt.Errorf("open %s: %w", nsPath, err))
		}
		return res, fmt.Errorf("open %s: %w", nsPath, err)
	}
	defer unix.Close(nsFd)
	if pidfd >= 0 {
		if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
			return res, gone(err)
		}
	}
	var theirs, ours unix.Stat_t
	if err := unix.Fstat(nsFd, &theirs); err != nil {
		return res, fmt.Errorf("stat %s: %w", nsPath, err)
	}
	if err := unix.Stat("/proc/thread-self/ns/mnt", &ours); err != nil {
		return res, fmt.Errorf("stat own mount namespace: %w", err)
	}
	if theirs.Dev == ours.Dev && theirs.Ino == ours.Ino {
		return res, fmt.Errorf("%w: process %d shares the hook's own mount namespace, so it is not a container init: mounting there would cover the host's files (is the hook configured at the createRuntime stage, and is state.pid the container's?)", ErrRefused, pid)
	}
	// The hook may itself run in a namespace of its own (a DaemonSet's, or
	// unshare'd); the host's is pid 1's. Where that is unreadable (a
	// hardened /proc, or a sandbox such as the one this project is tested
	// in, where root may not look at pid 1's namespaces), the check above
	// is what is left.
	if hostMountNS(theirs) {
		return res, fmt.Errorf("%w: process %d is in the host's mount namespace (pid 1's), so it is not a container init: mounting there would cover the host's files", ErrRefused, pid)
	}

	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return res, fmt.Errorf("unshare CLONE_FS: %w", err)
	}
	if err := unix.Setns(nsFd, unix.CLONE_NEWNS); err != nil {
		return res, fmt.Errorf("join mount namespace of process %d: %w", pid, err)
	}

	// The rootfs is resolved in the container's namespace: the runtime has
	// bound it onto itself there and mounted procfs and sysfs under it.
	var rst unix.Stat_t
	if err := unix.Lstat(rootfs, &rst); err != nil {
		return res, fmt.Errorf("stat rootfs %s in the container's mount namespace: %w", rootfs, err)
	}
	if rst.Mode&unix.S_IFMT == unix.S_IFLNK {
		return res, fmt.Errorf("%w: rootfs %s is a symlink: give the runtime the real directory", ErrRefused, rootfs)
	}
	if rst.Mode&unix.S_IFMT != unix.S_IFDIR {
		return res, fmt.Errorf("rootfs %s is not a directory", rootfs)
	}
	rootFd, err := os.OpenFile(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return res, fmt.Errorf("open rootfs %s: %w", rootfs, err)
	}
	defer rootFd.Close()

	// Most views share a directory (/proc): each is resolved once.
	parents := map[string]*os.File{}
	defer func() {
		for _, f := range parents {
			f.Close()
		}
	}()
	for _, m := range mounts {
		skipped, err := bindOne(rootFd, parents, m)
		if err != nil {
			return res, err
		}
		if skipped != "" {
			res.Skipped = append(res.Skipped, Skip{Mount: m, Reason: skipped})
			continue
		}
		res.Mounted = append(res.Mounted, m)
	}
	return res, nil
}

// bindOne mounts m and returns a non-empty reason when it skipped it.
// parents holds the directories already resolved in the rootfs.
func bindOne(rootFd *os.File, parents map[string]*os.File, m hook.Mount) (string, error) {
	src, err := os.OpenFile(m.Source, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open source %s: %w", m.Source, err)
	}
	defer src.Close()
	sst, err := fstatCached(int(src.Fd()))
	if err != nil {
		return "", fmt.Errorf("stat source %s: %w", m.Source, err)
	}
	wantType := uint32(unix.S_IFREG)
	if m.Dir {
		wantType = unix.S_IFDIR
	}
	if sst.Mode&unix.S_IFMT != wantType {
		return "", fmt.Errorf("source %s is not a %s", m.Source, typeName(wantType))
	}

	dir, base := path.Split(path.Clean("/" + m.Target))
	if base == "" || base == "." || base == ".." {
		return "", fmt.Errorf("%w: target %q names no file", ErrRefused, m.Target)
	}
	parent, ok := parents[dir]
	if !ok {
		// Every component but the last is resolved as if rootfs were /,
		// so a symlink (absolute or with "..") cannot lead out of it.
		parent, err = openInRoot(rootFd, dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Sprintf("%s does not exist in the container", dir), nil
			}
			return "", fmt.Errorf("resolve %s in rootfs %s: %w", dir, rootFd.Name(), err)
		}
		parents[dir] = parent
	}
	target, tst, reason, err := openTarget(parent, base, m.Target)
	if err != nil || reason != "" {
		return reason, err
	}
	defer target.Close()

	if tst.Mode&unix.S_IFMT != sst.Mode&unix.S_IFMT {
		return "", fmt.Errorf("%w: target %s is not a %s like its source %s (mode %#o)", ErrRefused, m.Target, typeName(wantType), m.Source, tst.Mode&unix.S_IFMT)
	}
	var tfs unix.Statfs_t
	if err := unix.Fstatfs(int(target.Fd()), &tfs); err == nil && uint32(tfs.Type) == hook.FUSESuperMagic {
		// prestart and createRuntime both listing the hook, or a second
		// hook run, must not stack views.
		return fmt.Sprintf("%s is already a FUSE file (served view?)", m.Target), nil
	}
	if m.Dir && tfs.Type == unix.TMPFS_MAGIC && mountedOn(parent, tst) {
		// Runtimes mask a directory with a read-only tmpfs: the
		// container was meant not to see these entries, and a view
		// would show them.
		return fmt.Sprintf("%s is a tmpfs (masked by the runtime)", m.Target), nil
	}

	if done, err := attachClone(src, target, m); done || err != nil {
		return "", err
	}
	// Kernels before 5.12: bind, then remount read-only.
	if err := unix.Mount(fdPath(src), fdPath(target), "", unix.MS_BIND, ""); err != nil {
		return "", fmt.Errorf("bind %s over %s: %w", m.Source, m.Target, err)
	}
	// The handle still points at the file under the new mount: look the name
	// up again to reach the mount itself.
	top, _, reason, err := openTarget(parent, base, m.Target)
	if err == nil && reason != "" {
		err = fmt.Errorf("%s vanished after the bind: %s", m.Target, reason)
	}
	if err != nil {
		return "", fmt.Errorf("reopen %s after the bind: %w", m.Target, err)
	}
	defer top.Close()
	st, err := fstatCached(int(top.Fd()))
	if err != nil {
		return "", fmt.Errorf("stat %s after the bind: %w", m.Target, err)
	}
	if st.Dev != sst.Dev || st.Ino != sst.Ino {
		// Something else sits on top now (a race in the container's
		// namespace): leave it, and say so.
		return "", fmt.Errorf("%s is not the bound view after the bind", m.Target)
	}
	flags := uintptr(roFlags)
	if m.Writable {
		flags &^= unix.MS_RDONLY
	}
	if err := unix.Mount("", fdPath(top), "", flags, ""); err != nil {
		// A view that cannot be made read-only is removed rather than left
		// writable.
		_ = unix.Unmount(fdPath(top), unix.MNT_DETACH)
		return "", fmt.Errorf("make %s read-only: %w", m.Target, err)
	}
	return "", nil
}

func typeName(t uint32) string {
	if t == unix.S_IFDIR {
		return "directory"
	}
	return "regular file"
}

// viewAttrs are a view mount's attributes: data, never a device, program or
// setuid file.
const viewAttrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC

// attachClone mounts a detached, already read-only clone of the view
// straight onto the target handle (open_tree, mount_setattr, move_mount):
// the mount appears read-only from its first instant, lands exactly on the
// resolved file with no path walk, and costs three syscalls where bind,
// re-lookup and remount cost more. done is false when the kernel lacks the
// new mount API (before 5.12); then nothing was mounted.
func attachClone(src, target *os.File, m hook.Mount) (done bool, err error) {
	tree, err := unix.OpenTree(int(src.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.ENOSYS) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("clone view %s: %w", m.Source, err)
	}
	defer unix.Close(tree)
	attrs := uint64(viewAttrs)
	if m.Writable {
		attrs &^= unix.MOUNT_ATTR_RDONLY
	}
	err = unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: attrs})
	if errors.Is(err, unix.ENOSYS) {
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("make view %s read-only: %w", m.Source, err)
	}
	if err := unix.MoveMount(tree, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return true, fmt.Errorf("attach %s over %s: %w", m.Source, m.Target, err)
	}
	return true, nil
}

// openTarget opens the last component without following it: a symlink there
// is refused, whatever it points to.
func openTarget(parent *os.File, base, target string) (*os.File, fileID, string, error) {
	fd, err := unix.Openat(int(parent.Fd()), base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fileID{}, fmt.Sprintf("%s does not exist in the container", target), nil
		}
		return nil, fileID{}, "", fmt.Errorf("open target %s: %w", target, err)
	}
	st, err := fstatCached(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fileID{}, "", fmt.Errorf("stat target %s: %w", target, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		unix.Close(fd)
		return nil, fileID{}, "", fmt.Errorf("%w: target %s is a symlink in the container: not following it", ErrRefused, target)
	}
	return os.NewFile(uintptr(fd), target), st, "", nil
}

// openInRoot opens dir, a path in the rootfs, with every component resolved
// as if root were "/" (openat2 RESOLVE_IN_ROOT, with magic links refused).
// That is the kernel's own containment, which pathrs-lite uses too; calling
// it directly skips pathrs-lite's naming of the handle through a private
// procfs instance, a fifth of a millisecond of every container start.
// Kernels without openat2 (before 5.6), or a seccomp filter refusing it,
// get pathrs-lite's own walk.
func openInRoot(root *os.File, dir string) (*os.File, error) {
	how := &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for range 16 {
		fd, err := unix.Openat2(int(root.Fd()), dir, how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), dir), nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINTR):
			// A rename raced the lookup; the kernel asks for a retry.
			continue
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM), errors.Is(err, unix.E2BIG):
			// No openat2 here (an old kernel, or a seccomp filter
			// refusing it): pathrs-lite walks without it.
			return pathrs.OpenatInRoot(root, dir)
		default:
			return nil, &os.PathError{Op: "openat2", Path: dir, Err: err}
		}
	}
	return pathrs.OpenatInRoot(root, dir)
}

// fdPath names an fd for mount(2), which takes paths: the magic link resolves
// to exactly the file the fd holds, with no second path walk to race.
func fdPath(f *os.File) string {
	return "/proc/thread-self/fd/" + strconv.Itoa(int(f.Fd()))
}

// fileID is what the checks here need of a file: its type and identity.
type fileID struct {
	Mode uint32
	Dev  uint64
	Ino  uint64
}

// mountedOn reports whether the directory target is the root of a mount
// of its own rather than a directory on its parent's file system: a mask
// is a tmpfs mounted there, while a rootfs that merely lies on a tmpfs
// (a bundle under a tmpfs /tmp, with no /sys mounted) is not masked. When
// in doubt it says mounted, the side that mounts nothing.
func mountedOn(parent *os.File, target fileID) bool {
	pst, err := fstatCached(int(parent.Fd()))
	return err != nil || pst.Dev != target.Dev
}

// fstatCached stats fd without asking a FUSE server for fresh attributes
// (AT_STATX_DONT_SYNC): type, device and inode never change, and each
// GETATTR on a view is a round trip to the daemon, two per view on every
// container start.
func fstatCached(fd int) (fileID, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_DONT_SYNC|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_TYPE|unix.STATX_INO, &stx); err != nil {
		return fileID{}, err
	}
	return fileID{Mode: uint32(stx.Mode), Dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), Ino: stx.Ino}, nil
}

// hostMountNS reports whether ns (a stat of a mount namespace file) is pid
// 1's, the host's. Stat of /proc/1/ns/mnt can be refused where its link is
// still readable ("mnt:[INODE]"; namespaces all live on one nsfs device),
// so the link's inode is the fallback. Neither readable: false, and the
// comparison with the hook's own namespace is what is left.
func hostMountNS(ns unix.Stat_t) bool {
	var host unix.Stat_t
	if err := unix.Stat("/proc/1/ns/mnt", &host); err == nil {
		return ns.Dev == host.Dev && ns.Ino == host.Ino
	}
	link, err := os.Readlink("/proc/1/ns/mnt")
	if err != nil {
		return false
	}
	return link == "mnt:["+strconv.FormatUint(ns.Ino, 10)+"]"
}
