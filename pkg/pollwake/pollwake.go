// Package pollwake keeps the kernel's handles of the polls a worker has
// promised to wake in memory that outlives the worker.
//
// A program polling a served file (a PSI trigger on /proc/pressure/*)
// sleeps in the kernel until the daemon sends FUSE_NOTIFY_POLL with the
// handle (kh) the kernel gave in the POLL request. Only the worker that
// took the POLL knows that handle. If it dies, or is retired by an upgrade,
// the program sleeps until its own timeout, forever for poll(2) with -1.
// So each worker records the handles of its waiting pollers in a Table, a
// memfd the supervisor created and keeps; once the worker is gone the
// supervisor wakes every handle left in it (Drain). A woken program polls
// again, and the next worker answers that its trigger is lost (POLLERR), as
// the kernel's own pressure files do for a broken trigger; the program
// registers again. A wakeup for a file closed meanwhile is ignored by the
// kernel, so a stale handle costs nothing.
package pollwake

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
)

// Slots is how many pollers one worker can have waiting with their wakeup
// kept (8 bytes each; only touched pages are allocated). It is at least
// the daemon's bound on PSI triggers (fusefs.DefaultTriggerTotal), each of
// which has at most one waiting poll handle.
const Slots = 4096

// Table is one worker's handles, shared between it and the supervisor.
type Table struct {
	f   *os.File
	mem []byte

	mu   sync.Mutex
	free []int // the worker's unclaimed slots, filled lazily
	next int   // slots below next were handed out at least once
}

// Create makes an empty table, for a new worker.
func Create() (*Table, error) {
	f, err := linux.Memfd("lxcfs-polls", Slots*8)
	if err != nil {
		return nil, fmt.Errorf("poll wakeup table: %w", err)
	}
	t, err := Open(f)
	if err != nil {
		f.Close()
	}
	return t, err
}

// Open maps a table another process created. It takes f.
func Open(f *os.File) (*Table, error) {
	if st, err := f.Stat(); err != nil || st.Size() != Slots*8 {
		return nil, fmt.Errorf("poll wakeup table %s: not a table of %d slots (%v)", f.Name(), Slots, err)
	}
	mem, err := linux.MapShared(f, Slots*8)
	if err != nil {
		return nil, fmt.Errorf("poll wakeup table: %w", err)
	}
	return &Table{f: f, mem: mem}, nil
}

// File is the memfd, to pass to the worker, across an upgrade or to
// systemd's fd store.
func (t *Table) File() *os.File { return t.f }

// Close unmaps and closes the table.
func (t *Table) Close() error {
	unix.Munmap(t.mem)
	return t.f.Close()
}

func (t *Table) word(i int) *uint64 {
	return (*uint64)(unsafe.Pointer(&t.mem[i*8]))
}

// Claim returns a free slot for one poller's handle, or -1 when all are
// taken (that poller is then not woken after a worker's death). A nil
// table has no slots.
func (t *Table) Claim() int {
	if t == nil {
		return -1
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.free); n > 0 {
		i := t.free[n-1]
		t.free = t.free[:n-1]
		return i
	}
	if t.next < Slots {
		t.next++
		return t.next - 1
	}
	return -1
}

// Set records kh, the kernel's handle of a waiting poller, in slot i.
func (t *Table) Set(i int, kh uint64) {
	if t != nil && i >= 0 && i < Slots {
		atomic.StoreUint64(t.word(i), kh)
	}
}

// Release empties slot i and makes it free again.
func (t *Table) Release(i int) {
	if t == nil || i < 0 || i >= Slots {
		return
	}
	atomic.StoreUint64(t.word(i), 0)
	t.mu.Lock()
	t.free = append(t.free, i)
	t.mu.Unlock()
}

// Drain empties every slot and returns the handles that were in them. The
// supervisor calls it once the table's worker has exited.
func (t *Table) Drain() []uint64 {
	var khs []uint64
	for i := range Slots {
		if kh := atomic.SwapUint64(t.word(i), 0); kh != 0 {
			khs = append(khs, kh)
		}
	}
	return khs
}
