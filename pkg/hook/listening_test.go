package hook

import (
	"net"
	"path/filepath"
	"testing"
)

// TestSysinfoListening: only a socket someone accepts on counts; a missing
// file and a socket file left by a killed daemon do not (the runtime would
// fail the container).
func TestSysinfoListening(t *testing.T) {
	dir := t.TempDir()
	if err := SysinfoListening(filepath.Join(dir, "missing.sock")); err == nil {
		t.Error("a missing socket counted as listening")
	}
	live := filepath.Join(dir, "live.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: live, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	if err := SysinfoListening(live); err != nil {
		t.Errorf("a listening socket: %v", err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if err := SysinfoListening(live); err == nil {
		t.Error("a socket file nobody listens on counted as listening")
	}
}
