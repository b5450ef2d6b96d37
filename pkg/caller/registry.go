package caller

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc64"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
)

// A container's ID is a number the resolver gives it once, kept in a file
// of the state directory, so that every process serving the connection (a
// replacement worker, an upgraded binary, a restarted daemon) reads the same
// number as the same container. fusefs puts it in every handle it gives the
// kernel, which passes the handle back on every read: the content of an open
// file is then always its opener's container's, whoever serves the read.
//
// An ID is never given to another container in the same boot: IDs only
// grow, and the file is started afresh only on a new boot. A container is
// its init process, named by pid and start time (a pair no other process
// has), with its pid namespace as a further check.
//
// The file is an array of fixed records, the ID being the index, so a
// record is one pread away. A container that is gone has its record zeroed
// (and its page freed, where the file system can punch holes).

// MaxID bounds IDs: fusefs keeps them in 31 bits of a handle, and the one
// above MaxID is Unresolved.
const MaxID = 1<<31 - 2

// Unresolved is the ID that names no container, ever: what a reader whose
// container could not be told (it exited before its open was served) is
// answered for. Lookup never finds it, so its files are the host's and
// counted as unresolved fallbacks, and it is never a real container's.
const Unresolved = MaxID + 1

const (
	recSize  = 32
	idsMagic = "lxcfsid1"
)

var crcTable = crc64.MakeTable(crc64.ECMA)

type initKey struct {
	pid   int
	start uint64
}

type idRecord struct {
	pid   int
	start uint64
	ns    uint64
}

type registry struct {
	f *os.File // nil: IDs live in this process only (tests)

	mu     sync.Mutex
	byInit map[initKey]uint32
	inits  map[uint32]idRecord // what this process knows, for the sweep
	last   uint32              // the last ID given, without a file
}

// openRegistry opens (or starts afresh) the ID file at path.
func openRegistry(path, bootID string) (*registry, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open container ID file %s: %w", path, err)
	}
	reg := &registry{f: f, byInit: map[initKey]uint32{}, inits: map[uint32]idRecord{}}
	err = reg.locked(func(size int64) error {
		head := make([]byte, recSize)
		copy(head, idsMagic)
		copy(head[8:], bootID)
		got := make([]byte, recSize)
		if n, _ := f.ReadAt(got, 0); n == recSize && bytes.Equal(got, head) {
			reg.load(size)
			return nil
		}
		// A new file, another boot's (its pids and start times name other
		// processes now) or not ours: start afresh.
		if err := f.Truncate(0); err != nil {
			return err
		}
		_, err := f.WriteAt(head, 0)
		return err
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("container ID file %s: %w", path, err)
	}
	return reg, nil
}

// locked runs fn with the file locked against the other processes that
// serve the same connection (during an upgrade two workers serve at once).
func (reg *registry) locked(fn func(size int64) error) error {
	fd := int(reg.f.Fd())
	if err := linux.Flock(fd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer unix.Flock(fd, unix.LOCK_UN)
	st, err := reg.f.Stat()
	if err != nil {
		return err
	}
	return fn(st.Size())
}

func (reg *registry) load(size int64) {
	buf := make([]byte, size)
	n, _ := reg.f.ReadAt(buf, 0)
	for id := 1; (id+1)*recSize <= n; id++ {
		if rec, ok := decodeRecord(buf[id*recSize:(id+1)*recSize], uint32(id)); ok {
			reg.byInit[initKey{rec.pid, rec.start}] = uint32(id)
			reg.inits[uint32(id)] = rec
		}
	}
}

func encodeRecord(id uint32, rec idRecord) []byte {
	b := make([]byte, recSize)
	binary.LittleEndian.PutUint32(b[0:], id)
	binary.LittleEndian.PutUint32(b[4:], uint32(rec.pid))
	binary.LittleEndian.PutUint64(b[8:], rec.start)
	binary.LittleEndian.PutUint64(b[16:], rec.ns)
	binary.LittleEndian.PutUint64(b[24:], crc64.Checksum(b[:24], crcTable))
	return b
}

func decodeRecord(b []byte, id uint32) (idRecord, bool) {
	if len(b) != recSize || binary.LittleEndian.Uint32(b[0:]) != id ||
		binary.LittleEndian.Uint64(b[24:]) != crc64.Checksum(b[:24], crcTable) {
		return idRecord{}, false
	}
	return idRecord{
		pid:   int(binary.LittleEndian.Uint32(b[4:])),
		start: binary.LittleEndian.Uint64(b[8:]),
		ns:    binary.LittleEndian.Uint64(b[16:]),
	}, true
}

// assign returns the ID of the container whose init is rec, giving it the
// next free one if this process has not seen it before.
func (reg *registry) assign(rec idRecord) (uint32, error) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if id, ok := reg.byInit[initKey{rec.pid, rec.start}]; ok {
		return id, nil
	}
	var id uint32
	if reg.f == nil {
		if reg.last == MaxID {
			return 0, fmt.Errorf("all %d container IDs are used", MaxID)
		}
		reg.last++
		id = reg.last
		reg.byInit[initKey{rec.pid, rec.start}] = id
		reg.inits[id] = rec
		return id, nil
	}
	err := reg.locked(func(size int64) error {
		next := (size + recSize - 1) / recSize
		if next > MaxID {
			return fmt.Errorf("all %d container IDs of this boot are used", MaxID)
		}
		id = uint32(next)
		_, err := reg.f.WriteAt(encodeRecord(id, rec), int64(id)*recSize)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("record container ID: %w", err)
	}
	reg.byInit[initKey{rec.pid, rec.start}] = id
	reg.inits[id] = rec
	return id, nil
}

// reserve takes the next free ID for a container not yet known (see
// Resolver.Reserve): the file grows by a record that names nobody, so no
// other process gives the ID, and Lookup does not find it until bind.
func (reg *registry) reserve() (uint32, error) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.f == nil {
		if reg.last == MaxID {
			return 0, fmt.Errorf("all %d container IDs are used", MaxID)
		}
		reg.last++
		return reg.last, nil
	}
	var id uint32
	err := reg.locked(func(size int64) error {
		next := (size + recSize - 1) / recSize
		if next > MaxID {
			return fmt.Errorf("all %d container IDs of this boot are used", MaxID)
		}
		id = uint32(next)
		_, err := reg.f.WriteAt(make([]byte, recSize), int64(id)*recSize)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reserve a container ID: %w", err)
	}
	return id, nil
}

// bind gives the reserved id to the container whose init is rec, unless
// this process knows it under another ID already, which is returned
// instead (and bound false: id stays unused).
func (reg *registry) bind(id uint32, rec idRecord) (got uint32, bound bool, err error) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if known, ok := reg.byInit[initKey{rec.pid, rec.start}]; ok {
		return known, false, nil
	}
	if reg.f != nil {
		err := reg.locked(func(int64) error {
			_, err := reg.f.WriteAt(encodeRecord(id, rec), int64(id)*recSize)
			return err
		})
		if err != nil {
			return 0, false, fmt.Errorf("record container ID: %w", err)
		}
	}
	reg.byInit[initKey{rec.pid, rec.start}] = id
	reg.inits[id] = rec
	return id, true, nil
}

// record reads the container given id, by this or another process.
func (reg *registry) record(id uint32) (idRecord, bool) {
	if id == 0 || id > MaxID {
		return idRecord{}, false
	}
	if reg.f == nil {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		rec, ok := reg.inits[id]
		return rec, ok
	}
	b := make([]byte, recSize)
	if n, _ := reg.f.ReadAt(b, int64(id)*recSize); n != recSize {
		return idRecord{}, false
	}
	rec, ok := decodeRecord(b, id)
	if ok {
		reg.mu.Lock()
		reg.byInit[initKey{rec.pid, rec.start}] = id
		reg.inits[id] = rec
		reg.mu.Unlock()
	}
	return rec, ok
}

// sweep drops the records of containers whose init is gone, as dead(rec)
// says. The IDs are not given again.
func (reg *registry) sweep(dead func(idRecord) bool) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for id, rec := range reg.inits {
		if !dead(rec) {
			continue
		}
		delete(reg.inits, id)
		delete(reg.byInit, initKey{rec.pid, rec.start})
		if reg.f == nil {
			continue
		}
		off := int64(id) * recSize
		if unix.Fallocate(int(reg.f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, recSize) != nil {
			reg.f.WriteAt(make([]byte, recSize), off)
		}
	}
}

// ids lists the IDs this process knows (see Resolver.IDs).
func (reg *registry) ids() []uint32 {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	out := make([]uint32, 0, len(reg.inits))
	for id := range reg.inits {
		out = append(out, id)
	}
	return out
}

// Len reports how many containers this process knows IDs of.
func (reg *registry) len() int {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return len(reg.inits)
}

func (reg *registry) close() {
	if reg.f != nil {
		reg.f.Close()
	}
}
