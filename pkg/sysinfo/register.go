package sysinfo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Registration is what the runtime sends on the listener socket once a
// container's filter is loaded: the container and its notification fd.
type Registration struct {
	ContainerID string
	InitPid     int    // host pid of the container's init
	StartTicks  uint64 // its start time: with the pid, the container's identity for its whole life
	File        *os.File
}

// maxStateSize caps the state a runtime sends (the container's state with
// its annotations), read on the supervisor's accept path.
const maxStateSize = 1 << 20

// registrationTimeout bounds one registration: the runtime writes the
// message at once, then closes the connection.
const registrationTimeout = 5 * time.Second

// ErrProbe is ReadRegistration's answer to a connection closed without a
// message: lxcfs-hook checking that the daemon listens (hook.SysinfoListening).
var ErrProbe = errors.New("a probe, not a registration")

// ReadRegistration reads one runtime's message from conn: the JSON
// container process state (specs.ContainerProcessState) with the fds it
// names as SCM_RIGHTS, as runc 1.1+ and crun send it. Only root may
// register: the socket is root-only, and the peer is checked again here.
// conn is not closed.
func ReadRegistration(conn *net.UnixConn, procDir string) (Registration, error) {
	var reg Registration
	conn.SetDeadline(time.Now().Add(registrationTimeout))
	if err := checkPeerRoot(conn); err != nil {
		return reg, err
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(16*4))
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if n == 0 && oobn == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return reg, ErrProbe
	}
	if err != nil {
		return reg, fmt.Errorf("read the runtime's message: %w", err)
	}
	fds, err := parseRights(oob[:oobn])
	if err != nil {
		return reg, err
	}
	keep := -1
	defer func() {
		for i, fd := range fds {
			if i != keep {
				unix.Close(fd)
			}
		}
	}()
	data := append([]byte(nil), buf[:n]...)
	// runc writes the whole message and closes; crun may keep the
	// connection open, so stop as soon as the JSON is whole.
	for !json.Valid(data) && len(data) <= maxStateSize {
		k, err := conn.Read(buf)
		data = append(data, buf[:k]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return reg, fmt.Errorf("read the runtime's message: %w", err)
		}
	}
	if len(data) > maxStateSize {
		return reg, fmt.Errorf("the runtime's message is larger than %d bytes", maxStateSize)
	}
	var st specs.ContainerProcessState
	if err := json.Unmarshal(data, &st); err != nil {
		return reg, fmt.Errorf("parse the runtime's container process state: %w", err)
	}
	i := slices.Index(st.Fds, specs.SeccompFdName)
	if i < 0 || i >= len(fds) {
		return reg, fmt.Errorf("container %q: no %s among the fds passed (%v, %d received)", st.State.ID, specs.SeccompFdName, st.Fds, len(fds))
	}
	if err := checkNotifyFd(fds[i]); err != nil {
		return reg, fmt.Errorf("container %q: %w", st.State.ID, err)
	}
	if st.State.Pid <= 0 {
		return reg, fmt.Errorf("container %q: no init pid in the state", st.State.ID)
	}
	fs, err := procfs.NewFS(procDir)
	if err != nil {
		return reg, err
	}
	p, err := fs.Proc(st.State.Pid)
	if err != nil {
		return reg, fmt.Errorf("container %q: init %d: %w", st.State.ID, st.State.Pid, err)
	}
	stat, err := p.Stat()
	if err != nil {
		return reg, fmt.Errorf("container %q: init %d: %w", st.State.ID, st.State.Pid, err)
	}
	keep = i
	reg = Registration{ContainerID: st.State.ID, InitPid: st.State.Pid, StartTicks: stat.Starttime,
		File: os.NewFile(uintptr(fds[i]), "seccomp-notify:"+st.State.ID)}
	return reg, nil
}

func checkPeerRoot(conn *net.UnixConn) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	rc.Control(func(fd uintptr) { cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if cerr != nil {
		return fmt.Errorf("read the peer's credentials: %w", cerr)
	}
	if cred.Uid != 0 {
		return fmt.Errorf("peer pid %d is uid %d: only root registers containers", cred.Pid, cred.Uid)
	}
	return nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse the runtime's control message: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		r, err := unix.ParseUnixRights(&m)
		if err == nil {
			for _, fd := range r {
				unix.CloseOnExec(fd)
			}
			fds = append(fds, r...)
		}
	}
	return fds, nil
}

// checkNotifyFd makes sure fd is a seccomp notification fd, the only kind
// the serving loop may issue its ioctls on.
func checkNotifyFd(fd int) error {
	target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return fmt.Errorf("inspect the fd passed: %w", err)
	}
	if !strings.HasPrefix(target, "anon_inode:seccomp notify") {
		return fmt.Errorf("the fd passed is %q, not a seccomp notification fd", target)
	}
	return nil
}
