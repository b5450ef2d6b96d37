package supervise

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestJournalEnv(t *testing.T) {
	for _, tc := range []struct {
		in              string
		fd, bank, after int
		ok              bool
	}{
		{encodeJournal(4, 0, -1), 4, 0, -1, true},
		{encodeJournal(4, 1, 5), 4, 1, 5, true},
		{"fd=4,bank=1,after=5", 4, 1, 5, true},
		{"", 0, 0, 0, false},
		{"fd=4", 0, 0, 0, false},        // no bank
		{"fd=2,bank=0", 0, 0, 0, false}, // a standard stream
		{"fd=4,bank=2", 0, 0, 0, false}, // no such bank
		{"fd=4,bank=0,after=1", 0, 0, 0, false},
		{"fd=4,bank=-1", 0, 0, 0, false},
		{"fd=4,bank=0,slots=3", 0, 0, 0, false},
		{"fd=x,bank=0", 0, 0, 0, false},
	} {
		fd, bank, after, err := decodeJournal(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("decodeJournal(%q): %v, want ok %v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && (fd != tc.fd || bank != tc.bank || after != tc.after) {
			t.Errorf("decodeJournal(%q) = %d %d %d, want %d %d %d", tc.in, fd, bank, after, tc.fd, tc.bank, tc.after)
		}
	}
}

func FuzzDecodeJournal(f *testing.F) {
	f.Add("fd=4,bank=0")
	f.Add("fd=4,bank=1,after=5")
	f.Fuzz(func(t *testing.T, s string) {
		fd, bank, after, err := decodeJournal(s)
		if err != nil {
			return
		}
		if fd < 3 || bank < 0 || bank > 1 || (after != -1 && after < 3) {
			t.Fatalf("accepted fd %d bank %d after %d", fd, bank, after)
		}
		if _, _, _, err := decodeJournal(encodeJournal(fd, bank, after)); err != nil {
			t.Fatalf("re-encoded %q does not decode: %v", s, err)
		}
	})
}

func TestLeaderExited(t *testing.T) {
	if leaderExited(os.Getpid()) {
		t.Error("this process's main thread counted as exited")
	}
	if leaderExited(1 << 30) {
		t.Error("a pid that does not exist counted as dying")
	}
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Skip(err)
	}
	defer unix.Close(fd)
	if got := pidfdPid(fd); got != os.Getpid() {
		t.Errorf("pidfdPid = %d, want %d", got, os.Getpid())
	}
}
