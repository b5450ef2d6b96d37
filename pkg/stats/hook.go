package stats

import (
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// HookFileName is the hook's outcome counters below the state directory.
// Every hook run adds one to its outcome; the daemon exports the counts.
// The file is a fixed page of counters, so it never grows; it is updated
// with an atomic add through a shared mapping, so concurrent hooks lose no
// count and none waits for another (no lock). It is never reset: counts are
// since the state directory was made (a tmpfs: since boot).
const HookFileName = "hook.counts"

// HookPath is the hook's counters file for stateDir.
func HookPath(stateDir string) string { return filepath.Join(stateDir, HookFileName) }

// Outcome is how one hook run ended.
type Outcome int

const (
	Served       Outcome = iota // views mounted
	Skipped                     // the container did not opt in
	NotServing                  // no daemon served the views: started with the host's files
	MountFailed                 // mounting failed: started with some host files
	FailedClosed                // views required but not served: the container was refused
	Refused                     // the hook refused to act (it would have touched the host)
	HookError                   // bad input: state, config or flags
	numOutcomes
)

// Outcomes lists every outcome, for exporters.
var Outcomes = []Outcome{Served, Skipped, NotServing, MountFailed, FailedClosed, Refused, HookError}

func (o Outcome) String() string {
	return [...]string{"served", "skipped", "not_serving", "mount_failed", "failed_closed", "refused", "error"}[o]
}

const (
	hookMagic = "LXCFSHK1"
	hookSize  = 4096 // one page; the counters follow the magic
)

// CountHook adds one to outcome in stateDir's hook counters, creating the
// file when missing. It costs the hook an open, a mapping and an atomic add;
// an error only loses this count, and the caller should not fail for it.
func CountHook(stateDir string, o Outcome) error {
	if o < 0 || o >= numOutcomes {
		return fmt.Errorf("hook outcome %d unknown", o)
	}
	path := HookPath(stateDir)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o644)
	if os.IsNotExist(err) {
		if err = os.MkdirAll(stateDir, 0o755); err == nil {
			f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o644)
		}
	}
	if err != nil {
		return fmt.Errorf("count hook outcome: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("count hook outcome: %w", err)
	}
	switch {
	case !st.Mode().IsRegular() || st.Size() > hookSize:
		return fmt.Errorf("count hook outcome: %s is not a hook counters file; remove it", path)
	case st.Size() < hookSize:
		// A new file: growing it to the same size twice, by two hooks at
		// once, keeps what either wrote.
		if err := f.Truncate(hookSize); err != nil {
			return fmt.Errorf("count hook outcome: %w", err)
		}
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, hookSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("count hook outcome: map %s: %w", path, err)
	}
	defer unix.Munmap(mem)
	switch string(mem[:len(hookMagic)]) {
	case hookMagic:
	case "\x00\x00\x00\x00\x00\x00\x00\x00":
		copy(mem, hookMagic) // the same bytes whoever writes them
	default:
		return fmt.Errorf("count hook outcome: %s is not a hook counters file; remove it", path)
	}
	(*atomic.Uint64)(unsafe.Pointer(&mem[8+int(o)*8])).Add(1)
	return nil
}

// HookCounts reads the hook's counters for stateDir, by Outcome; all zero
// when no hook has counted yet.
func HookCounts(stateDir string) ([]uint64, error) {
	counts := make([]uint64, numOutcomes)
	path := HookPath(stateDir)
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return counts, nil
	}
	if err != nil {
		return counts, err
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || st.Size() != hookSize {
		return counts, fmt.Errorf("%s is not a hook counters file (%v)", path, err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, hookSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return counts, fmt.Errorf("map %s: %w", path, err)
	}
	defer unix.Munmap(mem)
	if string(mem[:len(hookMagic)]) != hookMagic {
		return counts, nil // made, not yet counted in
	}
	for i := range counts {
		counts[i] = (*atomic.Uint64)(unsafe.Pointer(&mem[8+i*8])).Load()
	}
	return counts, nil
}
