package supervise

import (
	"testing"

	"bazil.org/fuse"
)

func TestConnRoundTrip(t *testing.T) {
	s := EncodeConn(7, fuse.Protocol{Major: 7, Minor: 33}, fuse.InitFlags(0x1234))
	fd, proto, flags, err := DecodeConn(s)
	if err != nil || fd != 7 || proto.Major != 7 || proto.Minor != 33 || flags != 0x1234 {
		t.Fatalf("DecodeConn(%q) = %d, %v, %#x, %v", s, fd, proto, flags, err)
	}
}

func TestDecodeConnRejects(t *testing.T) {
	for _, s := range []string{
		"", "fd=3", "fd=3,proto=7.33", "fd=1,proto=7.33,flags=0", "fd=x,proto=7.33,flags=0",
		"fd=3,proto=8.1,flags=0", "fd=3,proto=733,flags=0", "fd=3,proto=7.33,flags=-1",
		"fd=3,proto=7.33,flags=0,extra=1", "fd=3;proto=7.33;flags=0",
	} {
		if _, _, _, err := DecodeConn(s); err == nil {
			t.Errorf("DecodeConn(%q) accepted", s)
		}
	}
}

func FuzzDecodeConn(f *testing.F) {
	f.Add("fd=3,proto=7.33,flags=0")
	f.Add("fd=99,proto=7.40,flags=4294967295")
	f.Fuzz(func(t *testing.T, s string) {
		fd, proto, flags, err := DecodeConn(s)
		if err != nil {
			return
		}
		if fd < 3 || proto.Major != 7 {
			t.Fatalf("accepted fd %d proto %v", fd, proto)
		}
		if _, _, _, err := DecodeConn(EncodeConn(fd, proto, flags)); err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", s, err)
		}
	})
}

func TestSysinfoEnvRoundTrip(t *testing.T) {
	h := []Held{{Slot: 0, InitPid: 1234, StartTicks: 99}, {Slot: 7, InitPid: 1, StartTicks: 0}}
	s := fdItem("listen", 5) + " " + fdItem("slots", 6) + " " + encodeHeld(7, h[0]) + " " + encodeHeld(8, h[1])
	listen, ctl, slots, held, fds, err := DecodeSysinfo(s)
	if err != nil || listen != 5 || ctl != -1 || slots != 6 || len(held) != 2 || fds[0] != 7 || fds[1] != 8 ||
		held[0] != h[0] || held[1] != h[1] {
		t.Fatalf("DecodeSysinfo(%q) = %d %d %d %+v %v %v", s, listen, ctl, slots, held, fds, err)
	}
	if _, _, _, held, _, err := DecodeSysinfo(""); err != nil || held != nil {
		t.Errorf("empty value: %v, %v", held, err)
	}
}

func TestDecodeSysinfoRejects(t *testing.T) {
	for _, s := range []string{
		"listen", "listen=2", "ctl=x", "slots=-1", "l=3:0:1", "l=3:0:1:2:5", "l=2:0:1:1", "l=3:65536:1:1",
		"l=3:0:0:1", "l=3:0:99999999:1", "l=3:x:1:1", "other=4",
	} {
		if _, _, _, _, _, err := DecodeSysinfo(s); err == nil {
			t.Errorf("DecodeSysinfo(%q) accepted", s)
		}
	}
}

func FuzzDecodeSysinfo(f *testing.F) {
	f.Add("listen=5 slots=6 l=7:0:1234:99 l=8:7:1:0")
	f.Add("ctl=4 slots=5")
	f.Fuzz(func(t *testing.T, s string) {
		listen, ctl, slots, held, fds, err := DecodeSysinfo(s)
		if err != nil {
			return
		}
		if len(held) != len(fds) {
			t.Fatalf("%d containers, %d fds", len(held), len(fds))
		}
		for _, fd := range append([]int{listen, ctl, slots}, fds...) {
			if fd >= 0 && fd < 3 {
				t.Fatalf("accepted fd %d", fd)
			}
		}
	})
}
