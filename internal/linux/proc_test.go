package linux

import (
	"os"
	"testing"

	"github.com/prometheus/procfs"
)

func TestStartTicks(t *testing.T) {
	for _, tt := range []struct {
		line    string
		want    uint64
		wantErr bool
	}{
		{"1 (sh) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 4242 100 1 18446744073709551615", 4242, false},
		// A command may hold spaces and parentheses of its own.
		{"7 (a) b (c)) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0", 99, false},
		{"7 (x) R 1 7 7", 0, true},
		{"no command here", 0, true},
		{"7 (x) R 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0", 0, true},
	} {
		got, err := parseStartTicks([]byte(tt.line))
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("parseStartTicks(%q) = %d, %v; want %d, error %v", tt.line, got, err, tt.want, tt.wantErr)
		}
	}
	// Agrees with prometheus/procfs on a live process.
	own, err := StartTicks("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	p, err := procfs.Self()
	if err != nil {
		t.Fatal(err)
	}
	st, err := p.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if own != st.Starttime {
		t.Errorf("StartTicks(self) = %d, procfs says %d", own, st.Starttime)
	}
	if _, err := StartTicks("/proc", 1<<30); err == nil {
		t.Error("StartTicks of a pid that cannot exist: no error")
	}
}
