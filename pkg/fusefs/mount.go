package fusefs

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"bazil.org/fuse"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// FSName is the source shown in /proc/mounts and `df`, so operators can tell
// our mount from LXCFS's ("lxcfs").
const FSName = "lxcfs-oci"

// Mount mounts a read-only FUSE file system at mountpoint, creating the
// directory if needed. A mount left by a crashed daemon ("transport endpoint
// is not connected") is detached first; a live one is an error, since
// another daemon is serving there.
// maxBackground is the FUSE connection's max_background: how many RELEASE
// (and other background) requests the kernel keeps in flight to the daemon.
const maxBackground = 256

func Mount(mountpoint string, log *slog.Logger) (*fuse.Conn, error) {
	if err := os.MkdirAll(mountpoint, 0o755); err != nil && !errors.Is(err, unix.ENOTCONN) && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("create mountpoint %s: %w", mountpoint, err)
	}
	if err := clearStale(mountpoint, log); err != nil {
		return nil, err
	}
	c, err := fuse.Mount(mountpoint, mountOptions()...)
	if err != nil {
		return nil, fmt.Errorf("mount FUSE at %s: %w (is the fuse3 package installed and /dev/fuse present?)", mountpoint, err)
	}
	return c, nil
}

// MountDetached makes the containers' own connection (FS.ServeOwn): a FUSE
// mount attached nowhere yet, with Mount's options. It goes below the first
// mount (Attach), whose directory can only be looked up once a worker serves
// the first connection; the caller closes mnt once attached.
func MountDetached() (conn *fuse.Conn, mnt *os.File, err error) {
	conn, mnt, err = fuse.MountDetached(mountOptions()...)
	if err != nil {
		return nil, nil, fmt.Errorf("mount the containers' own FUSE connection: %w (needs Linux 5.2+ for fsopen and fsmount)", err)
	}
	return conn, mnt, nil
}

// Attach places the detached mount mnt (MountDetached) at mountpoint, a
// dead mount left there by a killed daemon detached first.
func Attach(mnt *os.File, mountpoint string, log *slog.Logger) error {
	if err := clearStale(mountpoint, log); err != nil {
		return err
	}
	if err := unix.MoveMount(int(mnt.Fd()), "", unix.AT_FDCWD, mountpoint, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("attach the containers' own FUSE mount at %s: %w", mountpoint, err)
	}
	return nil
}

func mountOptions() []fuse.MountOption {
	return []fuse.MountOption{
		fuse.FSName(FSName),
		fuse.Subtype(FSName),
		fuse.AllowOther(),
		// Not read-only: a program registers a PSI trigger by writing
		// to a pressure file. The daemon refuses every other write, and
		// the views are bound into containers read-only but for those.
		// Containers read these files concurrently through one mount.
		fuse.AsyncRead(),
		// RELEASE is a background request, and the kernel sends at most
		// max_background of those at once (12 by default) while OPENs
		// and READs keep coming: with 500 containers reading, 13,000
		// requests waited and every unreleased handle kept its rendered
		// snapshot, 100 MiB of the daemon's memory within seconds.
		fuse.MaxBackground(maxBackground),
		fuse.CongestionThreshold(maxBackground * 3 / 4),
	}
}

func clearStale(mountpoint string, log *slog.Logger) error {
	_, err := os.Stat(mountpoint)
	switch {
	case errors.Is(err, unix.ENOTCONN), errors.Is(err, unix.ECONNABORTED):
		log.Warn("replacing a dead FUSE mount left by a previous daemon", "mountpoint", mountpoint)
		return Unmount(mountpoint)
	case err != nil:
		return fmt.Errorf("stat mountpoint %s: %w", mountpoint, err)
	}
	mounted, err := mountinfo.Mounted(mountpoint)
	if err != nil {
		return fmt.Errorf("check whether %s is mounted: %w", mountpoint, err)
	}
	if mounted {
		return fmt.Errorf("%s is already a mount point: another daemon may be serving it; stop it or unmount it (umount %s) first", mountpoint, mountpoint)
	}
	return nil
}

// Unmount removes the mount at mountpoint, detaching it when it is busy.
// Nothing mounted there (EINVAL), or no such path, is not an error. It is
// the project's one unmount of a path in the caller's own namespace; in a
// container's, pkg/mountns detaches by name from a resolved directory.
func Unmount(mountpoint string) error {
	err := unix.Unmount(mountpoint, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(mountpoint, unix.MNT_DETACH)
	}
	if errors.Is(err, unix.EPERM) {
		// Not root: the setuid helper can still unmount our own mount.
		err = fuse.Unmount(mountpoint)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	return nil
}
