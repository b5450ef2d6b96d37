// Command psiprog registers a PSI trigger the way programs in containers
// do (systemd-oomd, Android's lmkd, Facebook's oomd), for the PSI trigger
// integration tests (built static by them, run in a busybox container).
//
//	psiprog wait FILE SPEC SECONDS   register SPEC on FILE and poll: print
//	                                 "event" on POLLPRI, "pollerr" on
//	                                 POLLERR, "timeout" after SECONDS
//	psiprog loop FILE SPEC DIR       register and poll in a loop until
//	                                 DIR/stop exists; on POLLERR close and
//	                                 register again (as such programs do),
//	                                 counting in DIR/lost; count events in
//	                                 DIR/events
//
// Errors go to stderr and end it with status 1.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: psiprog wait FILE SPEC SECONDS | loop FILE SPEC DIR")
		os.Exit(2)
	}
	file, spec := os.Args[2], os.Args[3]
	switch os.Args[1] {
	case "wait":
		secs, err := strconv.Atoi(os.Args[4])
		if err != nil {
			fail(err)
		}
		fd := register(file, spec)
		fmt.Println(pollOnce(fd, time.Duration(secs)*time.Second))
	case "loop":
		loop(file, spec, os.Args[4])
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "psiprog:", err)
	os.Exit(1)
}

// register opens file for writing and writes the trigger.
func register(file, spec string) int {
	fd, err := unix.Open(file, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		fail(fmt.Errorf("open %s: %w", file, err))
	}
	if _, err := unix.Write(fd, append([]byte(spec), 0)); err != nil {
		fail(fmt.Errorf("write trigger %q to %s: %w", spec, file, err))
	}
	return fd
}

// pollOnce waits up to d for the trigger.
func pollOnce(fd int, d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return "timeout"
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLPRI}}
		n, err := unix.Poll(fds, int(left.Milliseconds())+1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			fail(fmt.Errorf("poll: %w", err))
		}
		switch {
		case n == 0:
			continue
		case fds[0].Revents&unix.POLLERR != 0:
			return "pollerr"
		case fds[0].Revents&unix.POLLPRI != 0:
			return "event"
		}
	}
}

func loop(file, spec, dir string) {
	events, lost := 0, 0
	fd := register(file, spec)
	for {
		if _, err := os.Stat(filepath.Join(dir, "stop")); err == nil {
			return
		}
		switch pollOnce(fd, 500*time.Millisecond) {
		case "event":
			events++
			write(dir, "events", events)
		case "pollerr":
			lost++
			write(dir, "lost", lost)
			unix.Close(fd)
			fd = register(file, spec)
		}
	}
}

// write replaces DIR/name with n, atomically.
func write(dir, name string, n int) {
	tmp := filepath.Join(dir, name+".tmp")
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(n)), 0o644); err != nil {
		fail(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		fail(err)
	}
}
