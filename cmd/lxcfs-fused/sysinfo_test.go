package main

import (
	"io"
	"log/slog"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/sysinfo"
)

// The worker's end of the control socket stays open for as long as it
// receives on it, whatever the collector does: the loop reads the raw
// descriptor, and an *os.File nothing refers to any more is closed by its
// finalizer. In CI a container's second registration (a docker exec) then
// failed with "broken pipe" and its busybox free hung.
func TestReceiveContainersKeepsItsSocket(t *testing.T) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	sup := os.NewFile(uintptr(pair[0]), "supervisor-end")
	defer sup.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go receiveContainers(os.NewFile(uintptr(pair[1]), "worker-end"), &sysinfo.Server{Log: log}, log)
	collect(t) // the finalizer of an unreachable file has run by now
	// A message with no descriptor is refused and the loop goes on; a
	// closed worker end makes the send fail.
	for i := range 3 {
		if err := unix.Sendmsg(int(sup.Fd()), []byte("bad"), nil, nil, unix.MSG_DONTWAIT); err != nil {
			t.Fatalf("send %d to the worker's control socket: %v (its end was closed)", i, err)
		}
		collect(t)
	}
}

// collect runs the collector twice (an object with a finalizer is found in
// one cycle and freed after its finalizer ran) and waits for the finalizer
// goroutine to reach a sentinel made unreachable with everything else: the
// finalizers those cycles queued run in that one goroutine, so the file's
// has run by then or runs beside it. Were it later, the test would pass
// without the fix, never fail with it; it fails 20 runs in 20 without.
func collect(t *testing.T) {
	t.Helper()
	done := make(chan struct{})
	sentinel := new([16]byte)
	runtime.SetFinalizer(sentinel, func(*[16]byte) { close(done) })
	sentinel = nil
	runtime.GC()
	runtime.GC()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("no finalizer ran within 30s of two collections")
	}
}
