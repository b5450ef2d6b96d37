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
