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
	for range 5 {
		runtime.GC() // runs the finalizer of an unreachable file
		time.Sleep(10 * time.Millisecond)
	}
	// A message with no descriptor is refused and the loop goes on; a
	// closed worker end makes the send fail.
	for i := range 3 {
		if err := unix.Sendmsg(int(sup.Fd()), []byte("bad"), nil, nil, unix.MSG_DONTWAIT); err != nil {
			t.Fatalf("send %d to the worker's control socket: %v (its end was closed)", i, err)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}
