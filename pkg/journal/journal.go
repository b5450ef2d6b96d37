// Package journal keeps the FUSE requests a serving worker has read but not
// yet answered in memory the supervisor holds (a memfd), so that the next
// worker can answer them when one dies. Linux 6.9+ does this itself
// (FUSE_NOTIFY_RESEND); on older kernels a request that reached a process
// which then died is never answered, and its reader waits uninterruptibly
// for as long as the connection lives.
//
// The file is a header page and then Banks banks of slots, each slot big
// enough for the largest request. A worker reads each request straight into
// a free slot of its own bank (so the bytes are in the shared file the
// moment read(2) returns) and clears the slot after the reply was written.
// A slot whose header is not cleared holds a request that may be unanswered.
// Two banks let a new worker start while the one it replaces still serves
// (an upgrade): each uses its own.
//
// Clearing after the reply, not before, means a worker that dies between
// writing a reply and clearing its slot leaves a request that is answered
// again by the next worker. The kernel drops a reply to a unique ID it no
// longer waits for (the write fails with ENOENT) and never reuses an ID on a
// connection, so the reader is answered once; clearing first would instead
// lose the request and hang its reader.
package journal

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
)

// Banks is how many workers may serve one connection at once: the current
// one and, during an upgrade, the one it replaces.
const Banks = 2

const (
	headerSize = 4096
	magic      = 0x6c78_6a31 // "lxj1"
	// inHeaderSize is struct fuse_in_header: len, opcode, unique, nodeid,
	// uid, gid, pid, padding.
	inHeaderSize = 40
)

// Opcodes the kernel expects no reply to (include/uapi/linux/fuse.h).
const (
	opForget      = 2
	opInterrupt   = 36
	opBatchForget = 42
)

// NeedsReply says whether a request with this opcode waits for an answer.
// FORGET and BATCH_FORGET only tell the server to drop lookup counts, and
// INTERRUPT asks to cancel a request: no reader waits on them, so a dead
// worker's are dropped rather than replayed.
func NeedsReply(opcode uint32) bool {
	switch opcode {
	case opForget, opInterrupt, opBatchForget:
		return false
	}
	return true
}

// Create makes the journal file for slots requests per bank of up to
// slotSize bytes each. The file is close-on-exec; its pages are allocated
// only when a request is written into them.
func Create(slots, slotSize int) (*os.File, error) {
	if slots < 1 || slotSize < inHeaderSize || slotSize%4096 != 0 {
		return nil, fmt.Errorf("journal: %d slots of %d bytes: want at least 1 slot of a whole number of pages", slots, slotSize)
	}
	f, err := linux.Memfd("lxcfs-journal", int64(headerSize+Banks*slots*slotSize))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], magic)
	binary.LittleEndian.PutUint32(h[4:], Banks)
	binary.LittleEndian.PutUint32(h[8:], uint32(slots))
	binary.LittleEndian.PutUint32(h[12:], uint32(slotSize))
	if _, err := f.WriteAt(h[:], 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("journal: write the header: %w", err)
	}
	return f, nil
}

// Journal is one worker's view of the journal file.
type Journal struct {
	mem      []byte
	slots    int
	slotSize int
	bank     int
	free     chan int // slot numbers in bank free for a new request
	left     []bool   // slots of bank that held a request at Open
	done     []func() // per slot of bank: clear it and free it (see Slot)
	// Unjournaled counts reads made without a slot, all slots being taken
	// (requests the dead worker left in this bank not yet replayed).
	Unjournaled atomic.Int64
}

// Open maps the journal file f for a worker serving from bank. Slots of
// bank that hold a request (left by a worker that died) are not free until
// Done is called for them.
func Open(f *os.File, bank int) (*Journal, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if st.Size() < headerSize {
		return nil, fmt.Errorf("journal: file of %d bytes has no header", st.Size())
	}
	var h [16]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("journal: read the header: %w", err)
	}
	banks := binary.LittleEndian.Uint32(h[4:])
	slots := int(binary.LittleEndian.Uint32(h[8:]))
	slotSize := int(binary.LittleEndian.Uint32(h[12:]))
	if binary.LittleEndian.Uint32(h[0:]) != magic || banks != Banks || slots < 1 || slotSize < inHeaderSize ||
		st.Size() != int64(headerSize+Banks*slots*slotSize) {
		return nil, fmt.Errorf("journal: not a journal of this version (header %x, %d bytes)", h, st.Size())
	}
	if bank < 0 || bank >= Banks {
		return nil, fmt.Errorf("journal: bank %d: want 0 to %d", bank, Banks-1)
	}
	mem, err := linux.MapShared(f, int(st.Size()))
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	j := &Journal{mem: mem, slots: slots, slotSize: slotSize, bank: bank, free: make(chan int, slots), left: make([]bool, slots), done: make([]func(), slots)}
	for i := range slots {
		// Made once, not per request: Slot runs for every request read.
		j.done[i] = func() { j.clear(j.bank, i); j.free <- i }
		if _, ok := j.pending(bank, i); ok {
			j.left[i] = true
		} else {
			j.free <- i
		}
	}
	return j, nil
}

// SlotSize is the size of each slot's buffer.
func (j *Journal) SlotSize() int { return j.slotSize }

func (j *Journal) slot(bank, i int) []byte {
	off := headerSize + (bank*j.slots+i)*j.slotSize
	return j.mem[off : off+j.slotSize : off+j.slotSize]
}

// pending returns the request in a slot, if it holds one.
func (j *Journal) pending(bank, i int) ([]byte, bool) {
	b := j.slot(bank, i)
	n := binary.LittleEndian.Uint32(b[0:])
	if n < inHeaderSize || int(n) > len(b) || binary.LittleEndian.Uint64(b[8:]) == 0 {
		return nil, false
	}
	return b[:n], true
}

func (j *Journal) clear(bank, i int) {
	clear(j.slot(bank, i)[:inHeaderSize])
}

// Slot returns a free slot's buffer to read one request into, and done,
// to call once the request was answered (or needed no answer, or reading
// failed). ok is false when every slot of the bank is taken: the caller
// reads into memory of its own, unjournaled.
func (j *Journal) Slot() (buf []byte, done func(), ok bool) {
	if j == nil {
		return nil, nil, false
	}
	select {
	case i := <-j.free:
		return j.slot(j.bank, i), j.done[i], true
	default:
		j.Unjournaled.Add(1)
		return nil, nil, false
	}
}

// Entry is a request a dead worker left unanswered.
type Entry struct {
	Bank, Slot int
	Raw        []byte // the request's bytes, valid until Done
}

// Pending lists the requests in bank that wait for an answer: in this
// worker's own bank, those left there before Open; in another, all (call it
// only once that bank's worker is gone, and once). Requests that need no
// answer (NeedsReply) are cleared instead of listed.
func (j *Journal) Pending(bank int) []Entry {
	var out []Entry
	for i := range j.slots {
		if bank == j.bank {
			if !j.left[i] {
				continue
			}
			j.left[i] = false
		}
		raw, ok := j.pending(bank, i)
		if !ok {
			continue
		}
		e := Entry{Bank: bank, Slot: i, Raw: raw}
		if !NeedsReply(binary.LittleEndian.Uint32(raw[4:])) {
			j.Done(e)
			continue
		}
		out = append(out, e)
	}
	return out
}

// Done clears e's slot once it was answered again (call it after the reply
// was written); a slot of this worker's bank becomes free for new requests.
func (j *Journal) Done(e Entry) {
	j.clear(e.Bank, e.Slot)
	if e.Bank == j.bank {
		j.free <- e.Slot
	}
}

// Bank is the bank this worker reads new requests into.
func (j *Journal) Bank() int { return j.bank }

// Close unmaps the journal; nothing may use its buffers afterwards.
func (j *Journal) Close() error {
	if j == nil || j.mem == nil {
		return nil
	}
	err := unix.Munmap(j.mem)
	j.mem = nil
	return err
}
