package sysinfo

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
)

// Slots is shared memory where a worker records, per listener, the id of
// the call it is answering, the id of the last call it took, and whether
// it is taking one from the kernel. A call the
// kernel handed to a worker that then died is pending in the kernel with
// nobody to answer it, and would wait until its task is signalled: the
// supervisor, which maps the same memory, continues it (see Recover). The
// memory is a memfd passed like the other descriptors, so it survives the
// worker and an upgrade of the supervisor.
type Slots struct {
	f   *os.File
	mem []byte
	// last says the memory has the second and third arrays, the last id
	// taken per listener and the taking flags (a memfd made by an older
	// binary has only the first).
	last bool
}

// MaxSlots bounds the listeners one daemon serves at once (24 bytes each;
// pages are only allocated where used).
const MaxSlots = 1 << 16

// slotsSize is the memory of the ids in progress, then of the last ids,
// then of the taking flags.
const slotsSize = 3 * MaxSlots * 8

// maxScan bounds the ids Recover tries past a listener's last id taken:
// calls that went away before any worker took them (their tasks were
// signalled) leave gaps in the sequence. Only a listener the dead worker
// was taking a call from is scanned.
const maxScan = 4096

// NewSlots creates the shared memory for one worker.
func NewSlots() (*Slots, error) {
	f, err := linux.Memfd("lxcfs-sysinfo-slots", slotsSize)
	if err != nil {
		return nil, fmt.Errorf("sysinfo slots: %w", err)
	}
	s, err := OpenSlots(f)
	if err != nil {
		f.Close()
	}
	return s, err
}

// OpenSlots maps slots memory passed by another process.
func OpenSlots(f *os.File) (*Slots, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat sysinfo slots: %w", err)
	}
	size := slotsSize
	if st.Size < slotsSize {
		size = MaxSlots * 8 // an older binary's: touching past its end would fault
	}
	if st.Size < int64(size) {
		return nil, fmt.Errorf("sysinfo slots: %d bytes, want %d", st.Size, size)
	}
	mem, err := linux.MapShared(f, size)
	if err != nil {
		return nil, fmt.Errorf("sysinfo slots: %w", err)
	}
	return &Slots{f: f, mem: mem, last: size == slotsSize}, nil
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

// lastWord is listener i's last id taken, and takingWord its flag set
// while the worker takes a call; nil without those arrays.
func (s *Slots) lastWord(i int) *uint64 {
	if !s.last {
		return nil
	}
	return (*uint64)(unsafe.Pointer(&s.mem[(MaxSlots+i)*8]))
}

func (s *Slots) takingWord(i int) *uint64 {
	if !s.last {
		return nil
	}
	return (*uint64)(unsafe.Pointer(&s.mem[(2*MaxSlots+i)*8]))
}

// taking marks listener i's worker as taking a call from the kernel (on)
// or done taking it: recorded with set, or none taken.
func (s *Slots) taking(i int, on bool) {
	if s != nil && i >= 0 && i < MaxSlots {
		if w := s.takingWord(i); w != nil {
			v := uint64(0)
			if on {
				v = 1
			}
			atomic.StoreUint64(w, v)
		}
	}
}

func (s *Slots) set(i int, id uint64) {
	if s != nil && i >= 0 && i < MaxSlots {
		atomic.StoreUint64(s.word(i), id)
		if w := s.lastWord(i); w != nil {
			atomic.StoreUint64(w, id)
		}
	}
}

// CopyLast gives a new worker's slots the last ids taken that from had
// for the same listeners, so that a call the new worker takes and dies
// before recording can still be found (Recover).
func (s *Slots) CopyLast(from *Slots) {
	if s == nil || from == nil || !s.last || !from.last {
		return
	}
	copy(s.mem[MaxSlots*8:2*MaxSlots*8], from.mem[MaxSlots*8:2*MaxSlots*8])
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
//
// With scan (no other worker is taking calls on these listeners), a call
// the worker was taking when it died, before it could record its id, is
// found too: the kernel numbers one filter's notifications in sequence, a
// worker takes the oldest first and one at a time per listener, so it is
// the first id after the last one taken that the kernel still holds as
// taken (SECCOMP_IOCTL_NOTIF_SEND succeeds); an id it holds as not yet
// taken (EINPROGRESS) means there is none.
func (s *Slots) Recover(fds map[int]int, scan bool) int {
	n := 0
	for slot, fd := range fds {
		if slot < 0 || slot >= MaxSlots {
			continue
		}
		id := atomic.SwapUint64(s.word(slot), 0)
		wasTaking := false
		if w := s.takingWord(slot); w != nil {
			wasTaking = atomic.SwapUint64(w, 0) != 0
		}
		if id != 0 {
			if idValid(fd, id) && Continue(fd, id) == nil {
				n++
			}
			continue // it answered one call at a time: this was the one
		}
		if w := s.lastWord(slot); scan && wasTaking && w != nil {
			if last := atomic.LoadUint64(w); last != 0 {
				if id, ok := continueUnrecorded(fd, last); ok {
					atomic.StoreUint64(w, id)
					n++
				}
			}
		}
	}
	return n
}

// continueUnrecorded continues the first call after id last that the
// kernel holds as taken on fd, and returns its id.
func continueUnrecorded(fd int, last uint64) (uint64, bool) {
	for id := last + 1; id != last+1+maxScan; id++ {
		switch err := Continue(fd, id); {
		case err == nil:
			return id, true
		case errors.Is(err, unix.EINPROGRESS):
			return 0, false // not taken yet: the calls after it are not either
		case !errors.Is(err, unix.ENOENT):
			return 0, false // not a notification fd, or the filter is gone
		}
	}
	return 0, false
}
