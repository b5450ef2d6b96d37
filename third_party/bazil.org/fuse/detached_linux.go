// This file is not part of upstream bazil.org/fuse: lxcfs-oci adds it to
// make a FUSE mount that is not yet attached anywhere (the new mount API),
// so a daemon can serve it before it places it below another of its own
// mounts. See PATCHES.md beside it.

package fuse

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// MountDetached mounts a new FUSE connection without attaching it to a
// directory (fsopen, fsmount: Linux 5.2) and performs the INIT handshake. It
// returns the connection and the detached mount, which the caller attaches
// with unix.MoveMount(mnt, "", ..., MOVE_MOUNT_F_EMPTY_PATH) and then
// closes; closing it unattached unmounts it. It needs CAP_SYS_ADMIN.
func MountDetached(options ...MountOption) (*Conn, *os.File, error) {
	conf := mountConfig{
		options:   make(map[string]string),
		initFlags: InitAsyncDIO | InitSetxattrExt,
	}
	for _, option := range options {
		if err := option(&conf); err != nil {
			return nil, nil, err
		}
	}
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return nil, nil, err
	}
	fsfd, err := unix.Fsopen("fuse", unix.FSOPEN_CLOEXEC)
	if err != nil {
		dev.Close()
		return nil, nil, fmt.Errorf("fsopen fuse: %w", err)
	}
	defer unix.Close(fsfd)
	set := func(k, v string) error {
		if k == "fsname" {
			k = "source"
		}
		if v == "" {
			return unix.FsconfigSetFlag(fsfd, k)
		}
		return unix.FsconfigSetString(fsfd, k, v)
	}
	params := map[string]string{
		"fd":       strconv.Itoa(int(dev.Fd())),
		"rootmode": "40000",
		"user_id":  strconv.Itoa(os.Getuid()),
		"group_id": strconv.Itoa(os.Getgid()),
	}
	for k, v := range conf.options {
		params[k] = v
	}
	for k, v := range params {
		if err := set(k, v); err != nil {
			dev.Close()
			return nil, nil, fmt.Errorf("fsconfig %s=%q: %w", k, v, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		dev.Close()
		return nil, nil, fmt.Errorf("fsconfig create: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		dev.Close()
		return nil, nil, fmt.Errorf("fsmount: %w", err)
	}
	mnt := os.NewFile(uintptr(mfd), "fuse-mount")
	c := &Conn{dev: dev}
	if err := initMount(c, &conf); err != nil {
		c.Close()
		mnt.Close()
		return nil, nil, err
	}
	return c, mnt, nil
}
