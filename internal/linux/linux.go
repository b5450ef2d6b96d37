// Package linux holds the project's syscall wrappers: those that retry
// where the kernel asks for it, so that no caller writes its own loop: EINTR
// (a signal arrived while the call waited; Go's runtime sends them to every
// thread for preemption) and, for openat2, EAGAIN (a rename or mount raced
// the lookup, and the kernel wants it walked again); and the shared memory
// the daemon's processes pass each other (memfd.go).
package linux

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// retry calls fn until it does not fail with EINTR.
func retry[T any](fn func() (T, error)) (T, error) {
	for {
		v, err := fn()
		if !errors.Is(err, unix.EINTR) {
			return v, err
		}
	}
}

// Open is open(2).
func Open(path string, flags int, mode uint32) (int, error) {
	return retry(func() (int, error) { return unix.Open(path, flags, mode) })
}

// Pread is pread(2).
func Pread(fd int, p []byte, off int64) (int, error) {
	return retry(func() (int, error) { return unix.Pread(fd, p, off) })
}

// Poll is poll(2). A timeout that a signal interrupted starts again, so the
// wait may be longer than asked; callers here poll with 0 or for ever.
func Poll(fds []unix.PollFd, timeout int) (int, error) {
	return retry(func() (int, error) { return unix.Poll(fds, timeout) })
}

// Flock is flock(2).
func Flock(fd int, how int) error {
	_, err := retry(func() (struct{}, error) { return struct{}{}, unix.Flock(fd, how) })
	return err
}

// Rights returns the descriptors passed in the control messages oob
// (SCM_RIGHTS), none when they do not parse.
func Rights(oob []byte) []int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var fds []int
	for _, m := range msgs {
		if got, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, got...)
		}
	}
	return fds
}

// Recvmsg is recvmsg(2), returning the data and control message lengths.
func Recvmsg(fd int, p, oob []byte, flags int) (n, oobn int, err error) {
	type got struct{ n, oobn int }
	g, err := retry(func() (got, error) {
		n, oobn, _, _, err := unix.Recvmsg(fd, p, oob, flags)
		return got{n, oobn}, err
	})
	return g.n, g.oobn, err
}

// openat2Tries bounds the walks openat2 is retried for on EAGAIN: a lookup
// that keeps racing renames is someone's attack, not bad luck.
const openat2Tries = 16

// Openat2 is openat2(2), retried on EINTR and, a bounded number of times,
// on EAGAIN.
func Openat2(dirfd int, path string, how *unix.OpenHow) (int, error) {
	var err error
	for range openat2Tries {
		var fd int
		fd, err = retry(func() (int, error) { return unix.Openat2(dirfd, path, how) })
		if !errors.Is(err, unix.EAGAIN) {
			return fd, err
		}
	}
	return -1, err
}

// EpollWait is epoll_wait(2).
func EpollWait(epfd int, events []unix.EpollEvent, msec int) (int, error) {
	return retry(func() (int, error) { return unix.EpollWait(epfd, events, msec) })
}

// Read is read(2).
func Read(fd int, p []byte) (int, error) {
	return retry(func() (int, error) { return unix.Read(fd, p) })
}

// Connect is connect(2) on a unix socket, whose connect a signal may
// interrupt before it is made and which can then be made again.
func Connect(fd int, sa *unix.SockaddrUnix) error {
	_, err := retry(func() (struct{}, error) { return struct{}{}, unix.Connect(fd, sa) })
	return err
}

// DialUnix connects a blocking unix stream socket to path whose connect,
// send and receive each give up at deadline (EAGAIN): a client that runs
// at every container start (the hook) talks to the daemon with plain
// syscalls, sparing the Go poller's set-up that the net package makes.
func DialUnix(path string, deadline time.Time) (int, error) {
	left := time.Until(deadline)
	if left <= 0 {
		return -1, os.ErrDeadlineExceeded
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	tv := unix.NsecToTimeval(left.Nanoseconds())
	for _, opt := range []int{unix.SO_SNDTIMEO, unix.SO_RCVTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	if err := Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// Write is write(2).
func Write(fd int, p []byte) (int, error) {
	return retry(func() (int, error) { return unix.Write(fd, p) })
}

// Sendmsg is sendmsg(2) on a connected socket, with no flags.
func Sendmsg(fd int, p, oob []byte) error {
	_, err := retry(func() (struct{}, error) { return struct{}{}, unix.Sendmsg(fd, p, oob, nil, 0) })
	return err
}
