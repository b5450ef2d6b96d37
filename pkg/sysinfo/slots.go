package sysinfo

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Slots is shared memory where a worker records, per listener, the id of
// the call it is answering. A call the kernel handed to a worker that then
// died is pending in the kernel with nobody to answer it, and would wait
// until its task is signalled: the supervisor, which maps the same memory,
// continues it (see Recover). The memory is a memfd passed like the other
// descriptors, so it survives the worker and an upgrade of the supervisor.
type Slots struct {
	f   *os.File
	mem []byte
}

// MaxSlots bounds the listeners one daemon serves at once (8 bytes each;
// pages are only allocated where used).
const MaxSlots = 1 << 16

// NewSlots creates the shared memory for one worker.
func NewSlots() (*Slots, error) {
	fd, err := unix.MemfdCreate("lxcfs-sysinfo-slots", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd for sysinfo slots: %w", err)
	}
	f := os.NewFile(uintptr(fd), "lxcfs-sysinfo-slots")
	if err := f.Truncate(MaxSlots * 8); err != nil {
		f.Close()
		return nil, fmt.Errorf("size sysinfo slots: %w", err)
	}
	s, err := OpenSlots(f)
	if err != nil {
		f.Close()
	}
	return s, err
}

// OpenSlots maps slots memory passed by another process.
func OpenSlots(f *os.File) (*Slots, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, MaxSlots*8, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map sysinfo slots: %w", err)
	}
	return &Slots{f: f, mem: mem}, nil
}

// File is the memfd, to pass on.
func (s *Slots) File() *os.File { return s.f }

// Close unmaps and closes.
func (s *Slots) Close() error {
	unix.Munmap(s.mem)
	return s.f.Close()
}

func (s *Slots) word(i int) *uint64 {
	return (*uint64)(unsafe.Pointer(&s.mem[i*8]))
}

func (s *Slots) set(i int, id uint64) {
	if s != nil && i >= 0 && i < MaxSlots {
		atomic.StoreUint64(s.word(i), id)
	}
}

func (s *Slots) clear(i int, id uint64) {
	if s != nil && i >= 0 && i < MaxSlots {
		atomic.CompareAndSwapUint64(s.word(i), id, 0)
	}
}

// Recover continues the call a dead worker left in progress on each
// listener (slot -> notification fd), and returns how many it continued.
// The call gets the host's figures: it was already waiting, and answering
// it now is worth more than computing the container's.
func (s *Slots) Recover(fds map[int]int) int {
	n := 0
	for slot, fd := range fds {
		if slot < 0 || slot >= MaxSlots {
			continue
		}
		id := atomic.SwapUint64(s.word(slot), 0)
		if id != 0 && idValid(fd, id) && Continue(fd, id) == nil {
			n++
		}
	}
	return n
}
