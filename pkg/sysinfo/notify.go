// Package sysinfo answers sysinfo(2) for containers through seccomp user
// notification: runc or crun connect to a listener socket once a
// container's filter is loaded (OCI linux.seccomp.listenerPath) and pass the
// filter's notification fd; every sysinfo call in the container then waits
// until the daemon writes the container's figures into the caller's struct,
// or tells the kernel to run the real call (the host's figures).
//
// Safety rules, in the order they apply to each call: a call from another
// architecture or syscall is continued; the figures are computed with a
// deadline and continued past it; the caller's memory is opened through
// /proc/TID/mem and the notification checked to be still pending after
// opening (so the opened memory is the caller's, not a process that reused
// its pid) and again after writing; any failure continues the call.
package sysinfo

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// The kernel's seccomp notification ABI (include/uapi/linux/seccomp.h);
// golang.org/x/sys/unix has the ioctl numbers for RECV and SEND and the
// flags, not these structs.
type seccompData struct {
	Nr                 int32
	Arch               uint32
	InstructionPointer uint64
	Args               [6]uint64
}

type notif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  seccompData
}

type notifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// ioctlNotifIDValid is SECCOMP_IOCTL_NOTIF_ID_VALID, _IOW('!', 2, __u64);
// x/sys/unix does not define it.
const ioctlNotifIDValid = 0x40082102

func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(p))
	if e != 0 {
		return e
	}
	return nil
}

func recvNotif(fd int, n *notif) error {
	*n = notif{} // the kernel refuses a struct that is not zeroed
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(n))
}

func sendResp(fd int, r *notifResp) error {
	return ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(r))
}

// idValid reports whether notification id is still waiting for its answer:
// its task has not been killed or interrupted meanwhile.
func idValid(fd int, id uint64) bool {
	return ioctlPtr(fd, ioctlNotifIDValid, unsafe.Pointer(&id)) == nil
}

// Continue tells the kernel to run the real call for notification id.
func Continue(fd int, id uint64) error {
	return sendResp(fd, &notifResp{ID: id, Flags: unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE})
}

// nativeArch is the AUDIT_ARCH of the calls answered: the struct written is
// this architecture's. A profile listing other architectures (x86 beside
// x86_64) sends their sysinfo here too; those calls are continued.
var nativeArch = map[string]uint32{
	"amd64":   unix.AUDIT_ARCH_X86_64,
	"arm64":   unix.AUDIT_ARCH_AARCH64,
	"ppc64le": unix.AUDIT_ARCH_PPC64LE,
	"s390x":   unix.AUDIT_ARCH_S390X,
	"riscv64": unix.AUDIT_ARCH_RISCV64,
}[runtime.GOARCH]

// Encode lays v out as this architecture's struct sysinfo, mem_unit 1.
func Encode(v view.Sysinfo) []byte {
	si := unix.Sysinfo_t{
		Uptime:    v.Uptime,
		Loads:     v.Loads,
		Totalram:  v.TotalRAM,
		Freeram:   v.FreeRAM,
		Sharedram: v.SharedRAM,
		Bufferram: v.BufferRAM,
		Totalswap: v.TotalSwap,
		Freeswap:  v.FreeSwap,
		Procs:     v.Procs,
		Unit:      1,
	}
	b := make([]byte, unsafe.Sizeof(si))
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&si)), len(b)))
	return b
}

// Host is the host's own sysinfo, in bytes.
func Host() (view.Sysinfo, error) {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return view.Sysinfo{}, fmt.Errorf("sysinfo: %w", err)
	}
	unit := max(uint64(si.Unit), 1)
	return view.Sysinfo{
		Uptime: si.Uptime, Loads: si.Loads,
		TotalRAM: si.Totalram * unit, FreeRAM: si.Freeram * unit,
		SharedRAM: si.Sharedram * unit, BufferRAM: si.Bufferram * unit,
		TotalSwap: si.Totalswap * unit, FreeSwap: si.Freeswap * unit,
		Procs: si.Procs,
	}, nil
}

// errGone says the call's task was killed or interrupted while answered:
// nothing is owed to it any more.
var errGone = errors.New("notification no longer pending")

// writeAnswer writes b at addr in the memory of task tid, the caller of
// pending notification id on fd, and answers the call with success. On an
// error other than errGone the caller must continue the call.
func writeAnswer(fd int, id uint64, tid uint32, addr uint64, b []byte) error {
	if addr == 0 || addr > 1<<63-uint64(len(b)) {
		return fmt.Errorf("struct address %#x", addr)
	}
	mem, err := unix.Open(fmt.Sprintf("/proc/%d/mem", tid), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if !idValid(fd, id) {
			return errGone
		}
		return fmt.Errorf("open the caller's memory: %w", err)
	}
	defer unix.Close(mem)
	// The memory opened is the caller's only if the call is still pending
	// now: a task waiting in a notified call cannot exit, so its tid was not
	// reused between the notification and the open.
	if !idValid(fd, id) {
		return errGone
	}
	if n, err := unix.Pwrite(mem, b, int64(addr)); err != nil || n != len(b) {
		return fmt.Errorf("write the caller's struct at %#x: %d bytes, %v", addr, n, err)
	}
	if !idValid(fd, id) {
		return errGone
	}
	err = sendResp(fd, &notifResp{ID: id})
	if errors.Is(err, unix.ENOENT) {
		return errGone
	}
	return err
}
