// Package register lets the hook tell the daemon which process is a new
// container's init, so the daemon can serve that container files of its own
// (per-container views), whoever reads them. Containers that share a pid
// namespace with the host or with each other cannot be told apart by their
// readers' pid namespace; a registered container needs no such telling.
//
// The hook sends a pidfd of the init over a unix socket that only root can
// connect to: a pidfd names one process and cannot be forged or outlive
// it, unlike a pid. The daemon answers with the container's ID and, when
// asked, the files it serves each container: the hook then binds them
// without listing the container's directory (a round trip to the daemon
// per directory, on every container start).
package register

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/delegate"
)

// SocketName is the socket's name in the state directory.
const SocketName = delegate.SocketName

// Func registers the process behind pidfd (an open pidfd the callee may not
// keep) and returns its container's ID.
type Func func(pidfd int) (uint32, error)

// The request's one byte: register, or register and list the files.
// Daemons before the list answer every request with the ID alone.
const (
	reqRegister = 'r'
	reqList     = 'l'
)

// maxAnswer bounds the daemon's answer: an ID and a few dozen file names.
const maxAnswer = 4096

// Handlers answer the requests on the socket.
type Handlers struct {
	// Register registers a container.
	Register Func
	// Files are what the daemon serves under each container's directory
	// (slash-separated, relative to it, as hook.Entries gives them), sent
	// to hooks that ask.
	Files []string
	// Delegate runs create-runtime for a hook that asks (pkg/delegate):
	// head and body are the request (delegate.Decode), peer the hook's
	// pid (SO_PEERCRED, in the daemon's pid namespace). It returns the
	// answer to send, and what to do once it is sent (or nil). Nil: such a
	// request is refused as a registration without a pidfd, as by a
	// release from before delegation.
	Delegate func(head, body []byte, peer int) (answer []byte, after func())
}

// delegateWithin bounds a delegated create-runtime, which joins the
// container's mount namespace, as the hook's own deadline does.
const delegateWithin = time.Minute

// Serve answers requests on a unix socket at path (replacing a stale one)
// until ctx is done. Only root may connect.
func Serve(ctx context.Context, path string, h Handlers, log *slog.Logger) error {
	// Made under another name and renamed over the path: a hook that
	// connects while a new worker replaces the socket finds the old one
	// (refused, and tried again) or the new one, never no socket at all,
	// which it takes for a daemon that does not register. The name is no
	// longer than the path's (a socket's path has at most 107 bytes).
	tmp := filepath.Join(filepath.Dir(path), ".r"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return fmt.Errorf("listen on %s: %w", tmp, err)
	}
	l.SetUnlinkOnClose(false) // a newer worker may have taken the path
	// Connecting needs write permission on the socket; the peer's uid is
	// checked too.
	if err := os.Chmod(tmp, 0o600); err != nil {
		l.Close()
		os.Remove(tmp)
		return fmt.Errorf("restrict %s to root: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		l.Close()
		os.Remove(tmp)
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("accept on %s: %w", path, err)
		}
		go serveOne(c, h, log)
	}
}

func serveOne(c *net.UnixConn, h Handlers, log *slog.Logger) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	reply := func(format string, args ...any) { fmt.Fprintf(c, format+"\n", args...) }
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err != nil || cred.Uid != 0 {
		reply("error only root may register containers")
		return
	}
	buf, oob := make([]byte, 16), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		reply("error read: %v", err)
		return
	}
	fds := linux.Rights(oob[:oobn])
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if n > 0 && buf[0] == delegate.Byte && h.Delegate != nil {
		head, body, err := readBody(c, buf[:n])
		if err != nil {
			log.Warn("delegated create-runtime refused", "err", err)
			reply("error %v", err)
			return
		}
		c.SetDeadline(time.Now().Add(delegateWithin))
		answer, after := h.Delegate(head, body, int(cred.Pid))
		c.Write(answer)
		// The hook reads to the end: what is left to do waits for no one.
		c.Close()
		if after != nil {
			after()
		}
		return
	}
	if len(fds) != 1 {
		reply("error want exactly one pidfd")
		return
	}
	id, err := h.Register(fds[0])
	if err != nil {
		log.Warn("container registration refused", "err", err)
		reply("error %v", err)
		return
	}
	// A list the hook could not read whole is left out: it lists then.
	if list := strings.Join(h.Files, " "); n > 0 && buf[0] == reqList && list != "" && len(list) < maxAnswer-32 {
		reply("ok %d %s", id, list)
		return
	}
	reply("ok %d", id)
}

// readBody reads a delegation request's head and body, of which the first
// read gave got.
func readBody(c *net.UnixConn, got []byte) (head, body []byte, err error) {
	head = make([]byte, delegate.HeadLen)
	k := copy(head, got)
	if _, err := io.ReadFull(c, head[k:]); err != nil {
		return nil, nil, fmt.Errorf("read the request: %w", err)
	}
	size, err := delegate.BodyLen(head)
	if err != nil {
		return nil, nil, err
	}
	body = make([]byte, size)
	k = 0
	if len(got) > delegate.HeadLen {
		k = copy(body, got[delegate.HeadLen:])
	}
	if _, err := io.ReadFull(c, body[k:]); err != nil {
		return nil, nil, fmt.Errorf("read the request: %w", err)
	}
	return head, body, nil
}

// Register sends a pidfd of pid to the daemon's socket at path and returns
// the container's ID, and the files the daemon serves it (nil from a daemon
// that does not say: list its directory then). It gives up after timeout: a
// daemon that does not answer (an older release, LXCFS) must not hold the
// container's start.
//
// It runs at every container start, in a process that does nothing else
// with the network: plain blocking syscalls bounded by the socket's own
// timeouts, rather than the net package, spare the Go poller's set-up
// (epoll and eventfd creation, registration, a parked goroutine woken by
// another thread) on every start.
func Register(path string, pid int, timeout time.Duration) (uint32, []string, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return 0, nil, fmt.Errorf("pidfd_open %d: %w", pid, err)
	}
	defer unix.Close(pidfd)
	deadline := time.Now().Add(timeout)
	fd, err := linux.DialUnix(path, deadline)
	// Refused: the socket is there but no worker listens, as for the
	// moment a killed worker is being replaced. No socket at all is a
	// daemon that does not register: no waiting then.
	for errors.Is(err, unix.ECONNREFUSED) && time.Now().Add(20*time.Millisecond).Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		fd, err = linux.DialUnix(path, deadline)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("connect to the daemon at %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Sendmsg(fd, []byte{reqList}, unix.UnixRights(pidfd), nil, unix.MSG_NOSIGNAL); err != nil {
		return 0, nil, fmt.Errorf("send to the daemon at %s: %w", path, err)
	}
	line, err := readLine(fd)
	if err != nil {
		return 0, nil, fmt.Errorf("no answer from the daemon at %s: %w", path, err)
	}
	line = strings.TrimSpace(line)
	if msg, ok := strings.CutPrefix(line, "error "); ok {
		return 0, nil, errors.New("the daemon refused: " + msg)
	}
	v, ok := strings.CutPrefix(line, "ok ")
	fields := strings.Fields(v)
	var id uint64
	if len(fields) > 0 {
		id, err = strconv.ParseUint(fields[0], 10, 32)
	}
	if !ok || len(fields) == 0 || err != nil || id == 0 {
		return 0, nil, fmt.Errorf("unexpected answer from the daemon at %s: %q", path, line)
	}
	if len(fields) == 1 {
		return uint32(id), nil, nil
	}
	return uint32(id), fields[1:], nil
}

// readLine reads the daemon's one-line answer, up to the newline or EOF.
func readLine(fd int) (string, error) {
	var buf [maxAnswer]byte
	n := 0
	for n < len(buf) {
		m, err := linux.Read(fd, buf[n:])
		switch {
		case errors.Is(err, unix.EAGAIN):
			return "", os.ErrDeadlineExceeded
		case err != nil:
			return "", err
		case m == 0:
			return "", io.ErrUnexpectedEOF
		}
		n += m
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return string(buf[:i]), nil
		}
	}
	return "", fmt.Errorf("answer longer than %d bytes", len(buf))
}
