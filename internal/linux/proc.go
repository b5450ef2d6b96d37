package linux

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// statLineMax bounds a /proc/PID/stat line: 52 numbers of at most 20 digits
// and a command of at most 64 bytes.
const statLineMax = 2048

// StartTicks reads a process's start time (clock ticks after boot), field
// 22 of procDir/PID/stat: with the pid, what names one process for the
// whole boot. It runs at every container start, in the hook and in the
// daemon: an open, one read and a close, where os.ReadFile adds the
// poller's checks and a read to find the end, and prometheus/procfs its
// package initialisation (a quarter of a millisecond of a hook's start).
func StartTicks(procDir string, pid int) (uint64, error) {
	path := filepath.Join(procDir, strconv.Itoa(pid), "stat")
	fd, err := Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var buf [statLineMax]byte
	n, err := Read(fd, buf[:])
	if err != nil {
		return 0, &os.PathError{Op: "read", Path: path, Err: err}
	}
	// procfs hands the whole line to one read that has room for it.
	line, ok := bytes.CutSuffix(buf[:n], []byte("\n"))
	if !ok {
		return 0, fmt.Errorf("parse %s: no whole line in %d bytes", path, n)
	}
	v, err := parseStartTicks(line)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

// parseStartTicks takes field 22 from a /proc/PID/stat line. The command
// (field 2) is in parentheses and may itself hold spaces and parentheses, so
// fields are counted from the last ')'.
func parseStartTicks(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no command field")
	}
	const startTime = 22 - 3 // index among the fields after the command
	f := strings.Fields(string(b[i+1:]))
	if len(f) <= startTime {
		return 0, fmt.Errorf("%d fields after the command, want at least %d", len(f), startTime+1)
	}
	v, err := strconv.ParseUint(f[startTime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("start time: %w", err)
	}
	return v, nil
}
