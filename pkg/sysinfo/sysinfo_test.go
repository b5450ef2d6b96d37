package sysinfo

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// TestEncode: the bytes written into a caller are this architecture's
// struct sysinfo, as the libc and Go read it.
func TestEncode(t *testing.T) {
	v := view.Sysinfo{Uptime: 42, Loads: [3]uint64{1, 2, 3}, TotalRAM: 64 << 20, FreeRAM: 60 << 20,
		SharedRAM: 1 << 20, BufferRAM: 0, TotalSwap: 8 << 20, FreeSwap: 4 << 20, Procs: 17}
	b := Encode(v)
	var si unix.Sysinfo_t
	if len(b) != int(unsafe.Sizeof(si)) {
		t.Fatalf("%d bytes, want %d", len(b), unsafe.Sizeof(si))
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&si)), len(b)), b)
	if si.Uptime != 42 || si.Loads != [3]uint64{1, 2, 3} || si.Totalram != 64<<20 || si.Freeram != 60<<20 ||
		si.Sharedram != 1<<20 || si.Totalswap != 8<<20 || si.Freeswap != 4<<20 || si.Procs != 17 || si.Unit != 1 {
		t.Errorf("decoded %+v", si)
	}
}

func TestSlotsRecover(t *testing.T) {
	s, err := NewSlots()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Another mapping of the same memory, as the supervisor has.
	dup, err := unix.Dup(int(s.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	other, err := OpenSlots(os.NewFile(uintptr(dup), "dup"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	s.set(3, 99)
	s.set(4, 7)
	s.clear(4, 7)
	s.clear(3, 98) // another call's id leaves it
	if got := *other.word(3); got != 99 {
		t.Fatalf("slot 3 seen by the other mapping: %d, want 99", got)
	}
	// A pipe is not a notification fd: nothing is continued, and the slot
	// is emptied so it is never tried again.
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	if n := other.Recover(map[int]int{3: p[0], 4: p[0], MaxSlots: p[0]}, true); n != 0 {
		t.Errorf("continued %d calls on a pipe", n)
	}
	if got := *s.word(3); got != 0 {
		t.Errorf("slot 3 after Recover: %d", got)
	}
	var nilSlots *Slots
	nilSlots.set(1, 1) // a worker without slots records nothing
}

// register sends msg with fds on one end of a socket pair and reads it as
// a registration from the other.
func register(t *testing.T, msg []byte, fds ...int) (Registration, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("registrations are accepted from root only; run as root (make test does)")
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(pair[1]), "ours")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if err := unix.Sendmsg(pair[0], msg, oob, nil, 0); err != nil {
		t.Fatal(err)
	}
	unix.Close(pair[0])
	return ReadRegistration(c.(*net.UnixConn), "/proc")
}

func TestReadRegistrationRejects(t *testing.T) {
	state := func(fds []string, pid int) []byte {
		b, _ := json.Marshal(specs.ContainerProcessState{Version: "1.0.2", Fds: fds, Pid: pid,
			State: specs.State{ID: "c1", Pid: pid, Status: specs.StateCreating}})
		return b
	}
	var p [2]int
	if err := unix.Pipe(p[:]); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[1])
	for _, tt := range []struct {
		name string
		msg  []byte
		fds  []int
		want string
	}{
		{"not JSON", []byte("{oops"), nil, "parse the runtime's container process state"},
		{"no fd passed", state([]string{"seccompFd"}, os.Getpid()), nil, "no seccompFd among the fds"},
		{"fd not named", state([]string{"other"}, os.Getpid()), []int{p[0]}, "no seccompFd among the fds"},
		{"not a seccomp fd", state([]string{"seccompFd"}, os.Getpid()), []int{p[0]}, "not a seccomp notification fd"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := register(t, tt.msg, tt.fds...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestReadRegistrationProbe: a connection closed without a message is the
// hook checking that the daemon listens, told apart from a failed
// registration (which the daemon warns about).
func TestReadRegistrationProbe(t *testing.T) {
	if _, err := register(t, nil); !errors.Is(err, ErrProbe) {
		t.Errorf("err = %v, want ErrProbe", err)
	}
	if _, err := register(t, []byte("{oops")); errors.Is(err, ErrProbe) {
		t.Errorf("a message taken for a probe")
	}
}

// TestSlotsLastIDs: the last id taken outlives the call's clearing and
// goes on to the next worker's slots; slots an older binary made (only the
// ids in progress) still open, without it.
func TestSlotsLastIDs(t *testing.T) {
	s, err := NewSlots()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.set(5, 41)
	s.clear(5, 41)
	next, err := NewSlots()
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	next.CopyLast(s)
	if got := *next.lastWord(5); got != 41 {
		t.Errorf("last id in the next worker's slots: %d, want 41", got)
	}
	fd, err := unix.MemfdCreate("old-slots", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "old-slots")
	if err := f.Truncate(MaxSlots * 8); err != nil {
		t.Fatal(err)
	}
	old, err := OpenSlots(f)
	if err != nil {
		t.Fatalf("an older binary's slots: %v", err)
	}
	defer old.Close()
	old.set(5, 7)
	old.taking(5, true)
	if old.lastWord(5) != nil || old.takingWord(5) != nil {
		t.Error("an older binary's slots have last ids")
	}
	next.CopyLast(old) // nothing to copy, and no fault
}
