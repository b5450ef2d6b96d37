package sdnotify

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestStoreSendsFDAndName(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", sock)

	f, err := os.CreateTemp(t.TempDir(), "payload")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("hello")
	ok, err := Store("lxcfs-fuse.7.33", f)
	if !ok || err != nil {
		t.Fatalf("Store = %v, %v", ok, err)
	}
	buf, oob := make([]byte, 256), make([]byte, 256)
	n, oobn, _, _, err := l.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "FDSTORE=1\nFDNAME=lxcfs-fuse.7.33\n" {
		t.Errorf("message = %q", got)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages: %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights: %v, %v", fds, err)
	}
	got := os.NewFile(uintptr(fds[0]), "received")
	defer got.Close()
	b := make([]byte, 5)
	if _, err := got.ReadAt(b, 0); err != nil || string(b) != "hello" {
		t.Errorf("received fd reads %q, %v; want the stored file", b, err)
	}
}

func TestStoreWithoutServiceManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if ok, err := Store("x", os.Stdin); ok || err != nil {
		t.Errorf("Store without NOTIFY_SOCKET = %v, %v; want false, nil", ok, err)
	}
	t.Setenv("NOTIFY_SOCKET", "/nonexistent")
	if _, err := Store("a:b", os.Stdin); err == nil || !strings.Contains(err.Error(), "':'") {
		t.Errorf("a name with ':' was accepted: %v", err)
	}
}
