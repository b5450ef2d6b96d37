// Package delegate is the hook's request that lxcfs-fused run
// create-runtime for it, and the answer: the wire format and the hook's
// side. The daemon holds every container's files, reserves their IDs ahead
// (looked up before the container starts) and has everything create-runtime
// needs already loaded, so a hook that delegates is a small process that
// reads the state, asks, writes the answer's log lines and exits.
//
// The request goes over the registration socket (pkg/register): the byte
// Byte with a pidfd of the container's init, the lengths of the two parts
// that follow, the JSON of Request and the state as the runtime gave it. A
// daemon from before reads it as a registration and answers "ok ID" (Ask's
// ErrNotDelegated) or, having left the rest unread, resets the connection:
// the hook then does the work itself, as it does on any failure to get an
// answer.
package delegate

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
)

// Byte is the request's first byte on the registration socket.
const Byte = 'a'

// MaxRequest bounds a request: the OCI state and a few flags (Kubernetes
// caps a pod's annotations at 256 KiB).
const MaxRequest = 1 << 20

// maxAnswer bounds an answer: the run's log lines.
const maxAnswer = 1 << 20

// Request is create-runtime's input besides the state: the hook's flags.
type Request struct {
	// Pid is the state's pid, as the hook sees it: the daemon acts only
	// when the pidfd names the same pid for it (one pid namespace).
	Pid        int    `json:"pid"`
	Root       string `json:"lxcfs_root"`
	FailClosed bool   `json:"fail_closed,omitempty"`
	Always     bool   `json:"always,omitempty"`
	LogLevel   string `json:"log_level"`
	StateDir   string `json:"state_dir"`
}

// Answer is what the daemon did.
type Answer struct {
	// Fallback, when set, says why the daemon did not run create-runtime
	// (the hook's views root is not its mountpoint, another pid
	// namespace): the hook runs it itself.
	Fallback string `json:"fallback,omitempty"`
	// Code is the hook's exit status, Msg what it prints on stderr
	// besides Log, the run's log lines at the requested level.
	Code int    `json:"code"`
	Msg  string `json:"msg,omitempty"`
	Log  string `json:"log,omitempty"`
}

// ErrNotDelegated is wrapped by Ask's error when the daemon answered but
// did not run create-runtime: a release from before delegation, or a
// Fallback.
var ErrNotDelegated = errors.New("not run by the daemon")

// headLen is the request's head: Byte and the two parts' lengths.
const headLen = 9

// Encode frames req and state (passed as they are, not re-encoded) for the
// socket.
func Encode(req Request, state []byte) ([]byte, error) {
	hdr, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if len(hdr)+len(state) > MaxRequest {
		return nil, fmt.Errorf("request of %d bytes, more than %d", len(hdr)+len(state), MaxRequest)
	}
	msg := make([]byte, headLen, headLen+len(hdr)+len(state))
	msg[0] = Byte
	binary.BigEndian.PutUint32(msg[1:], uint32(len(hdr)))
	binary.BigEndian.PutUint32(msg[5:], uint32(len(state)))
	msg = append(msg, hdr...)
	return append(msg, state...), nil
}

// HeadLen is how many bytes BodyLen needs.
const HeadLen = headLen

// BodyLen reads, from a request's first HeadLen bytes, the length of the
// body that follows them.
func BodyLen(head []byte) (int, error) {
	if len(head) < headLen || head[0] != Byte {
		return 0, errors.New("not a delegation request")
	}
	hdr, state := binary.BigEndian.Uint32(head[1:5]), binary.BigEndian.Uint32(head[5:9])
	if uint64(hdr)+uint64(state) > MaxRequest {
		return 0, fmt.Errorf("request of %d bytes, more than %d", uint64(hdr)+uint64(state), MaxRequest)
	}
	return int(hdr + state), nil
}

// Decode splits a request's head and body into its flags and state.
func Decode(head, body []byte) (Request, []byte, error) {
	var req Request
	n, err := BodyLen(head)
	if err != nil {
		return req, nil, err
	}
	hdr := int(binary.BigEndian.Uint32(head[1:5]))
	if len(body) != n {
		return req, nil, fmt.Errorf("request body of %d bytes, want %d", len(body), n)
	}
	if err := json.Unmarshal(body[:hdr], &req); err != nil {
		return req, nil, fmt.Errorf("request: %w", err)
	}
	return req, body[hdr:], nil
}

// Ask sends req and state with pidfd to the daemon's socket at path and
// returns its answer. It gives up at timeout: whatever went wrong, the hook then runs
// create-runtime itself, which finds views already mounted live and skips
// them.
//
// Like register.Register, it uses plain blocking syscalls bounded by the
// socket's own timeouts, not the net package.
func Ask(path string, pidfd int, req Request, state []byte, timeout time.Duration) (Answer, error) {
	msg, err := Encode(req, state)
	if err != nil {
		return Answer{}, err
	}
	fd, err := linux.DialUnix(path, time.Now().Add(timeout))
	if err != nil {
		return Answer{}, fmt.Errorf("connect to the daemon at %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Sendmsg(fd, msg, unix.UnixRights(pidfd), nil, unix.MSG_NOSIGNAL); err != nil {
		return Answer{}, fmt.Errorf("send to the daemon at %s: %w", path, err)
	}
	var buf []byte
	chunk := make([]byte, 64<<10)
	for {
		n, err := linux.Read(fd, chunk)
		if errors.Is(err, unix.EAGAIN) {
			return Answer{}, fmt.Errorf("no answer from the daemon at %s within %s", path, timeout)
		}
		if err != nil {
			return Answer{}, fmt.Errorf("read the daemon's answer at %s: %w", path, err)
		}
		if n == 0 {
			break
		}
		buf = append(buf, chunk[:n]...)
		if len(buf) > maxAnswer {
			return Answer{}, fmt.Errorf("answer from the daemon at %s longer than %d bytes", path, maxAnswer)
		}
	}
	if len(buf) == 0 || buf[0] != '{' {
		return Answer{}, fmt.Errorf("%w: the daemon at %s answered %.40q (a release from before delegation)", ErrNotDelegated, path, buf)
	}
	var a Answer
	if err := json.Unmarshal(buf, &a); err != nil {
		return Answer{}, fmt.Errorf("the daemon's answer at %s: %w", path, err)
	}
	if a.Fallback != "" {
		return a, fmt.Errorf("%w: %s", ErrNotDelegated, a.Fallback)
	}
	return a, nil
}
