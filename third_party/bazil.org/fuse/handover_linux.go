// This file is not part of upstream bazil.org/fuse: lxcfs-oci adds it so a
// process can serve a FUSE connection another process mounted, which is how
// the daemon restarts and upgrades without breaking readers, and to answer
// reads without copying them. See PATCHES.md beside it.

package fuse

import (
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// notifyCodeResend is FUSE_NOTIFY_RESEND (Linux 6.9).
const notifyCodeResend int32 = 7

// devIocClone is FUSE_DEV_IOC_CLONE, _IOR(229, 0, uint32).
const devIocClone = 0x8004e500

// NewConn returns a Conn for an already mounted and initialised FUSE
// connection. dev is the connection's /dev/fuse file (inherited from the
// process that mounted it); proto and flags are what that process
// negotiated in the INIT handshake, which happens once per connection and is
// not repeated.
func NewConn(dev *os.File, proto Protocol, flags InitFlags) *Conn {
	return &Conn{dev: dev, proto: proto, flags: flags}
}

// File returns the connection's /dev/fuse file, to pass it to another
// process. The file stays owned by the Conn.
func (c *Conn) File() *os.File {
	return c.dev
}

// NotifyResend asks the kernel to queue again every request it handed to
// user space and has not seen answered, with the same unique IDs (plus the
// kernel's resend bit). A server that replaces one killed mid-request sends
// it so no reader waits forever. Kernels before 6.9 answer EINVAL.
func (c *Conn) NotifyResend() error {
	buf := newBuffer(0)
	h := (*outHeader)(unsafe.Pointer(&buf[0]))
	h.Error = notifyCodeResend
	return c.sendNotify(buf)
}

// Clone opens a second /dev/fuse file attached to the same connection, so
// several goroutines can read requests without sharing one file (as
// libfuse's clone_fd does). The caller closes it with Close.
func (c *Conn) Clone() (*Conn, error) {
	fd, err := unix.Open("/dev/fuse", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/fuse: %w", err)
	}
	c.rio.RLock()
	src := uint32(c.fd())
	c.rio.RUnlock()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), devIocClone, uintptr(unsafe.Pointer(&src))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("FUSE_DEV_IOC_CLONE: %w", errno)
	}
	return NewConn(os.NewFile(uintptr(fd), "/dev/fuse"), c.proto, c.flags), nil
}

// RespondData answers r with data, like Respond(&ReadResponse{Data: data}),
// but writes the reply header and data together with writev(2) instead of
// copying both into a newly allocated message: a read reply is the one
// message whose size follows the file's, and a daemon answering thousands
// of reads a second otherwise allocates and copies each file twice. data is
// not retained.
func (r *ReadRequest) RespondData(data []byte) {
	out := outHeader{Len: uint32(unsafe.Sizeof(outHeader{})) + uint32(len(data)), Unique: uint64(r.ID)}
	iov := [2]unix.Iovec{{Base: (*byte)(unsafe.Pointer(&out))}}
	iov[0].SetLen(int(unsafe.Sizeof(out)))
	n := 1
	if len(data) > 0 {
		iov[1].Base = &data[0]
		iov[1].SetLen(len(data))
		n = 2
	}
	c := r.Conn
	c.wio.RLock()
	_, _, errno := unix.Syscall(unix.SYS_WRITEV, uintptr(c.fd()), uintptr(unsafe.Pointer(&iov[0])), uintptr(n))
	c.wio.RUnlock()
	if errno != 0 {
		Debug(bugKernelWriteError{Error: errorString(errno), Stack: stack()})
	}
	putMessage(r.msg)
}

// ReadBufferSize is the size of buffer ReadRequestInto needs: the kernel
// refuses a read into less than the largest request it may send.
func ReadBufferSize() int { return bufSize }

// ReadRequestInto is ReadRequest reading into buf, memory the caller owns
// (at least ReadBufferSize bytes), instead of a pooled buffer: the request's
// bytes are in the caller's memory the moment read(2) returns, with no
// window in which only this process knows of them. done is called once the
// request has been answered (after the reply was written), needs no answer,
// or could not be read or parsed; until then buf must not be reused.
func (c *Conn) ReadRequestInto(buf []byte, done func()) (Request, error) {
	m := &message{conn: c, buf: buf, hdr: (*inHeader)(unsafe.Pointer(&buf[0])), done: done}
	c.rio.RLock()
	n, err := unix.Read(c.fd(), buf)
	c.rio.RUnlock()
	return c.parseMessage(m, n, err)
}

// ParseRequest turns raw, the bytes of a request read earlier (possibly by
// another process serving this connection), into a Request whose answer
// goes to the kernel under the request's original unique ID. done is called
// as in ReadRequestInto; raw must stay unchanged until then.
func (c *Conn) ParseRequest(raw []byte, done func()) (Request, error) {
	if len(raw) < inHeaderSize {
		done()
		return nil, fmt.Errorf("fuse: request of %d bytes is shorter than its header", len(raw))
	}
	m := &message{conn: c, buf: raw, hdr: (*inHeader)(unsafe.Pointer(&raw[0])), done: done}
	return c.parseMessage(m, len(raw), nil)
}

// Handle returns the kernel's handle of the polled file (kh), so that a
// wakeup can be kept outside the process that received the POLL.
func (p PollWakeup) Handle() uint64 { return p.kh }

// PollWakeupFor rebuilds the wakeup of the polled file whose kernel handle
// is kh, as Handle returned it in another process serving the same
// connection.
func PollWakeupFor(kh uint64) PollWakeup { return PollWakeup{kh: kh} }
