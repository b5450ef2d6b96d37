package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestIsFUSEDevice: only /dev/fuse is served as a connection handed back by
// the service manager; a regular file or another device is refused.
func TestIsFUSEDevice(t *testing.T) {
	plain, err := os.Create(filepath.Join(t.TempDir(), "not-fuse"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := isFUSEDevice(plain); err == nil {
		t.Error("a regular file passed for /dev/fuse")
	}
	null, err := os.Open("/dev/null")
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	if err := isFUSEDevice(null); err == nil {
		t.Error("/dev/null (another character device) passed for /dev/fuse")
	}
	fuse, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("needs /dev/fuse (root): %v", err)
	}
	defer fuse.Close()
	if err := isFUSEDevice(fuse); err != nil {
		t.Errorf("/dev/fuse refused: %v", err)
	}
}
