// Package sdnotify keeps a file descriptor in systemd's per-service fd store
// and takes it back after a restart (sd_notify FDSTORE=1 and sd_listen_fds).
// go-systemd covers plain notifications and socket activation, not passing
// descriptors with a notification, so that one message is written here.
package sdnotify

import (
	"fmt"
	"os"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"
)

// Store sends f to the service manager's fd store under name. It returns
// false, nil when not running under a service manager (no NOTIFY_SOCKET).
// The unit needs FileDescriptorStoreMax= of at least 1, or systemd drops it.
func Store(name string, f *os.File) (bool, error) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return false, nil
	}
	if strings.ContainsAny(name, ":\n") || name == "" {
		return false, fmt.Errorf("fd store name %q: must be non-empty without ':' or newlines", name)
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open a socket for NOTIFY_SOCKET: %w", err)
	}
	defer unix.Close(fd)
	addr := &unix.SockaddrUnix{Name: sock}
	if strings.HasPrefix(sock, "@") {
		addr.Name = "\x00" + sock[1:] // abstract socket
	}
	msg := "FDSTORE=1\nFDNAME=" + name + "\n"
	if err := unix.Sendmsg(fd, []byte(msg), unix.UnixRights(int(f.Fd())), addr, 0); err != nil {
		return false, fmt.Errorf("send fd to NOTIFY_SOCKET %s: %w", sock, err)
	}
	return true, nil
}

// Take returns the descriptors systemd passed to this process whose names
// start with prefix, keyed by full name, and unsets the LISTEN_* variables
// so children do not inherit them.
func Take(prefix string) map[string]*os.File {
	out := map[string]*os.File{}
	for name, files := range activation.FilesWithNames() {
		if strings.HasPrefix(name, prefix) && len(files) > 0 {
			out[name] = files[0]
		}
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	return out
}

// Remove drops name from the service manager's fd store (FDSTOREREMOVE=1).
func Remove(name string) (bool, error) {
	sock := os.Getenv("NOTIFY_SOCKET")
	if sock == "" {
		return false, nil
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open a socket for NOTIFY_SOCKET: %w", err)
	}
	defer unix.Close(fd)
	addr := &unix.SockaddrUnix{Name: sock}
	if strings.HasPrefix(sock, "@") {
		addr.Name = "\x00" + sock[1:]
	}
	if err := unix.Sendmsg(fd, []byte("FDSTOREREMOVE=1\nFDNAME="+name+"\n"), nil, addr, 0); err != nil {
		return false, fmt.Errorf("remove %s from the fd store: %w", name, err)
	}
	return true, nil
}
