package pollwake

import (
	"os"
	"slices"
	"strconv"
	"testing"
)

// A table passed to another process (here: opened again from its memfd)
// shows what the worker kept, Drain empties it, and released slots are
// neither drained nor lost for the next claim.
func TestKeepReleaseDrain(t *testing.T) {
	w, err := Create()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	a, b, c := w.Claim(), w.Claim(), w.Claim()
	w.Set(a, 11)
	w.Set(b, 22)
	w.Set(c, 33)
	w.Set(b, 23) // the same poller polled again
	w.Release(c)
	if again := w.Claim(); again != c {
		t.Errorf("Claim after Release = %d, want the released slot %d", again, c)
	}

	dup, err := os.OpenFile("/proc/self/fd/"+strconv.Itoa(int(w.File().Fd())), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := Open(dup)
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	got := sup.Drain()
	slices.Sort(got)
	if want := []uint64{11, 23}; !slices.Equal(got, want) {
		t.Errorf("Drain = %v, want %v", got, want)
	}
	if got := sup.Drain(); len(got) != 0 {
		t.Errorf("second Drain = %v, want nothing", got)
	}
}

func TestClaimBounded(t *testing.T) {
	w, err := Create()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := range Slots {
		if got := w.Claim(); got != i {
			t.Fatalf("Claim %d = %d", i, got)
		}
	}
	if got := w.Claim(); got != -1 {
		t.Errorf("Claim past %d slots = %d, want -1", Slots, got)
	}
	w.Set(-1, 5) // an unclaimed poller: ignored
	var none *Table
	if none.Claim() != -1 {
		t.Error("a nil table has a slot")
	}
	none.Set(0, 1)
	none.Release(0)
}

func TestOpenRefusesOtherFiles(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(f); err == nil {
		t.Error("Open accepted an empty file")
	}
	f.Close()
}
