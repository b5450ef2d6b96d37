package hook

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// FUSESuperMagic is statfs's f_type of a FUSE file system.
const FUSESuperMagic = 0x65735546

// ErrNotServing is wrapped by Serving's errors.
var ErrNotServing = errors.New("views not served")

// Serving checks that root is a live FUSE mount serving proc/meminfo, as
// lxcfs-fused and LXCFS do. Binding files of a dead or absent daemon would
// give the container ENOTCONN or the bare directory instead of /proc files.
func Serving(root string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil {
		if errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("%w: %s is a dead FUSE mount (ENOTCONN): restart lxcfs-fused, after `umount -l %s`: %w", ErrNotServing, root, root, err)
		}
		return fmt.Errorf("%w: statfs %s: %w: start lxcfs-fused with --mountpoint %s", ErrNotServing, root, err, root)
	}
	if uint32(st.Type) != FUSESuperMagic {
		return fmt.Errorf("%w: %s is not a FUSE mount (f_type %#x): start lxcfs-fused with --mountpoint %s, or pass the daemon's mountpoint with --lxcfs-root", ErrNotServing, root, uint32(st.Type), root)
	}
	meminfo := filepath.Join(root, "proc", "meminfo")
	if _, err := statCached(meminfo); err != nil {
		if errors.Is(err, unix.ENOTCONN) {
			return fmt.Errorf("%w: %s: daemon gone (ENOTCONN): restart lxcfs-fused: %w", ErrNotServing, meminfo, err)
		}
		return fmt.Errorf("%w: stat %s: %w", ErrNotServing, meminfo, err)
	}
	return nil
}

// statCached is stat that takes the attributes the kernel already has
// (AT_STATX_DONT_SYNC): on the views mount, a plain stat of a file makes
// the daemon render it to report its size, a round trip the hook, which
// only asks whether the file is there and what kind it is, has no use for.
func statCached(path string) (fs.FileMode, error) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_DONT_SYNC, unix.STATX_TYPE, &stx); err != nil {
		return 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	switch stx.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return 0, nil
	case unix.S_IFDIR:
		return fs.ModeDir, nil
	}
	return fs.ModeIrregular, nil
}
