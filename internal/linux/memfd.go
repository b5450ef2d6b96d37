package linux

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Memfd makes an anonymous shared-memory file of size bytes, close-on-exec:
// the memory the daemon's processes hand each other (the request journal,
// the sysinfo and poll-wakeup tables) and keep in systemd's fd store, which
// outlives whichever process wrote it. Its pages are allocated only when
// touched.
func Memfd(name string, size int64) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	if err := f.Truncate(size); err != nil {
		f.Close()
		return nil, fmt.Errorf("size memfd %s to %d bytes: %w", name, size, err)
	}
	return f, nil
}

// MapShared maps the first size bytes of f, readable and writable, shared
// with every other process that maps it.
func MapShared(f *os.File, size int) ([]byte, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", f.Name(), err)
	}
	return mem, nil
}
