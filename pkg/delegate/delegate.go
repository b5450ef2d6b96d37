// Package delegate is the hook's request that lxcfs-fused run
// create-runtime for it, and the answer: the wire format and the hook's
// side. The daemon holds every container's files, reserves their IDs ahead
// (looked up before the container starts) and has everything create-runtime
// needs already loaded, so a hook that delegates is a small process that
// reads the state, asks, writes the answer's log lines and exits.
//
// The request goes over the registration socket (pkg/register): the byte
// Byte, the lengths of the two parts that follow, the hook's flags (one
// "name=value" line each) and the OCI state as the runtime gave it. The
// hook sends no pidfd: the daemon opens one from the state's pid, once it
// has checked that the hook (the runtime's child) is in its own pid
// namespace, where that pid means the same process. The answer is one line,
// "done CODE MSGLEN" or "fallback REASON", then for done the message the
// hook prints on stderr and the run's log lines.
//
// Neither side encodes JSON here: a process's first encoding/json call
// costs it some 0.1 ms (measured on a 2-CPU VM), and the hook pays every
// such cost at every container start. A daemon from before delegation reads
// the request as a registration without its pidfd and answers an error, or
// resets the connection: the work is then done in the hook's process
// (lxcfs-hook-cli), as on any failure to get an answer.
package delegate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
)

// SocketName is the registration socket's name in the state directory
// (pkg/register serves it).
const SocketName = "register.sock"

// Byte is the request's first byte on the registration socket.
const Byte = 'a'

// MaxRequest bounds a request: the OCI state and a few flags (Kubernetes
// caps a pod's annotations at 256 KiB).
const MaxRequest = 1 << 20

// maxAnswer bounds an answer: the run's log lines.
const maxAnswer = 1 << 20

// HeadLen is a request's head: Byte and the two parts' lengths.
const HeadLen = 9

// Request is create-runtime's input besides the state: the hook's flags.
type Request struct {
	Root       string // --lxcfs-root, absolute
	StateDir   string // --state-dir, absolute
	LogLevel   string
	FailClosed bool
	Always     bool
}

// Answer is what the daemon did.
type Answer struct {
	// Fallback, when set, says why the daemon did not run create-runtime
	// (the hook's views root is not its mountpoint, another pid
	// namespace): it runs in the hook's process (lxcfs-hook-cli).
	Fallback string
	// Code is the hook's exit status, Msg what it prints on stderr
	// besides Log, the run's log lines at the requested level.
	Code int
	Msg  string
	Log  string
}

// ErrNotDelegated is wrapped by Ask's error when the daemon answered but
// did not run create-runtime: a Fallback, or a release from before
// delegation.
var ErrNotDelegated = errors.New("not run by the daemon")

// Encode frames req and state (passed as they are) for the socket.
func Encode(req Request, state []byte) ([]byte, error) {
	var hdr strings.Builder
	for _, kv := range [][2]string{
		{"lxcfs_root", req.Root}, {"state_dir", req.StateDir}, {"log_level", req.LogLevel},
		{"fail_closed", strconv.FormatBool(req.FailClosed)}, {"always", strconv.FormatBool(req.Always)},
	} {
		if strings.ContainsRune(kv[1], '\n') {
			return nil, fmt.Errorf("%s %q has a newline", kv[0], kv[1])
		}
		hdr.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	if hdr.Len()+len(state) > MaxRequest {
		return nil, fmt.Errorf("request of %d bytes, more than %d", hdr.Len()+len(state), MaxRequest)
	}
	msg := make([]byte, HeadLen, HeadLen+hdr.Len()+len(state))
	msg[0] = Byte
	binary.BigEndian.PutUint32(msg[1:], uint32(hdr.Len()))
	binary.BigEndian.PutUint32(msg[5:], uint32(len(state)))
	msg = append(msg, hdr.String()...)
	return append(msg, state...), nil
}

// BodyLen reads, from a request's first HeadLen bytes, the length of the
// body that follows them.
func BodyLen(head []byte) (int, error) {
	if len(head) < HeadLen || head[0] != Byte {
		return 0, errors.New("not a delegation request")
	}
	hdr, state := binary.BigEndian.Uint32(head[1:5]), binary.BigEndian.Uint32(head[5:9])
	if uint64(hdr)+uint64(state) > MaxRequest {
		return 0, fmt.Errorf("request of %d bytes, more than %d", uint64(hdr)+uint64(state), MaxRequest)
	}
	return int(hdr + state), nil
}

// Decode splits a request's head and body into its flags and state. Flags
// it does not know (a newer hook's) are left out.
func Decode(head, body []byte) (Request, []byte, error) {
	var req Request
	n, err := BodyLen(head)
	if err != nil {
		return req, nil, err
	}
	if len(body) != n {
		return req, nil, fmt.Errorf("request body of %d bytes, want %d", len(body), n)
	}
	hdr := int(binary.BigEndian.Uint32(head[1:5]))
	for line := range strings.Lines(string(body[:hdr])) {
		name, value, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
		if !ok {
			return req, nil, fmt.Errorf("request flag %q: want name=value", line)
		}
		switch name {
		case "lxcfs_root":
			req.Root = value
		case "state_dir":
			req.StateDir = value
		case "log_level":
			req.LogLevel = value
		case "fail_closed", "always":
			b, err := strconv.ParseBool(value)
			if err != nil {
				return req, nil, fmt.Errorf("request flag %s: %w", name, err)
			}
			if name == "always" {
				req.Always = b
			} else {
				req.FailClosed = b
			}
		}
	}
	return req, body[hdr:], nil
}

// AppendAnswer encodes a.
func AppendAnswer(b []byte, a Answer) []byte {
	if a.Fallback != "" {
		return append(b, "fallback "+strings.ReplaceAll(a.Fallback, "\n", " ")+"\n"...)
	}
	b = append(b, fmt.Sprintf("done %d %d\n", a.Code, len(a.Msg))...)
	b = append(b, a.Msg...)
	return append(b, a.Log...)
}

// parseAnswer decodes an answer.
func parseAnswer(b []byte) (Answer, error) {
	line, rest, ok := bytes.Cut(b, []byte("\n"))
	if !ok {
		return Answer{}, fmt.Errorf("%w: answered %.40q (a release from before delegation)", ErrNotDelegated, b)
	}
	if reason, ok := bytes.CutPrefix(line, []byte("fallback ")); ok {
		return Answer{Fallback: string(reason)}, fmt.Errorf("%w: %s", ErrNotDelegated, reason)
	}
	f := strings.Fields(string(line))
	if len(f) != 3 || f[0] != "done" {
		return Answer{}, fmt.Errorf("%w: answered %.40q (a release from before delegation)", ErrNotDelegated, line)
	}
	code, err1 := strconv.Atoi(f[1])
	n, err2 := strconv.Atoi(f[2])
	if err1 != nil || err2 != nil || n < 0 || n > len(rest) {
		return Answer{}, fmt.Errorf("answer %q not understood", line)
	}
	return Answer{Code: code, Msg: string(rest[:n]), Log: string(rest[n:])}, nil
}

// Ask sends req and state to the daemon's socket at path and returns its
// answer. It gives up at timeout: whatever went wrong, create-runtime then
// runs in the hook's process (lxcfs-hook-cli), which finds views already
// mounted live and skips them.
//
// Like register.Register, it uses plain blocking syscalls bounded by the
// socket's own timeouts, not the net package.
func Ask(path string, req Request, state []byte, timeout time.Duration) (Answer, error) {
	msg, err := Encode(req, state)
	if err != nil {
		return Answer{}, err
	}
	fd, err := linux.DialUnix(path, time.Now().Add(timeout))
	if err != nil {
		return Answer{}, fmt.Errorf("connect to the daemon at %s: %w", path, err)
	}
	defer unix.Close(fd)
	for sent := 0; sent < len(msg); {
		n, err := linux.Write(fd, msg[sent:])
		if err != nil {
			return Answer{}, fmt.Errorf("send to the daemon at %s: %w", path, err)
		}
		sent += n
	}
	var buf []byte
	chunk := make([]byte, 16<<10)
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
	return parseAnswer(buf)
}
