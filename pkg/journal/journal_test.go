package journal

import (
	"encoding/binary"
	"os"
	"testing"
)

// request returns the bytes of a FUSE request: a header of opcode and
// unique ID, then body.
func request(opcode uint32, unique uint64, body string) []byte {
	b := make([]byte, inHeaderSize+len(body))
	binary.LittleEndian.PutUint32(b[0:], uint32(len(b)))
	binary.LittleEndian.PutUint32(b[4:], opcode)
	binary.LittleEndian.PutUint64(b[8:], unique)
	copy(b[inHeaderSize:], body)
	return b
}

const (
	opLookup = 1
	opRead   = 15
)

func newJournal(t *testing.T, slots int) *os.File {
	t.Helper()
	f, err := Create(slots, 8192)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func open(t *testing.T, f *os.File, bank int) *Journal {
	t.Helper()
	j, err := Open(f, bank)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

// TestReplay: a worker reads requests into its slots and answers some; a
// worker that replaces it after it died finds exactly the unanswered ones
// that need a reply, with their bytes, and each only once.
func TestReplay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reqs     [][]byte
		answered []bool
		want     []uint64 // uniques pending for the next worker
	}{
		{"none taken", nil, nil, nil},
		{"all answered", [][]byte{request(opLookup, 2, "meminfo\x00"), request(opRead, 4, "")}, []bool{true, true}, nil},
		{"one unanswered", [][]byte{request(opLookup, 2, "meminfo\x00"), request(opRead, 4, "x")}, []bool{true, false}, []uint64{4}},
		{"all unanswered", [][]byte{request(opLookup, 2, "a\x00"), request(opRead, 4, "")}, []bool{false, false}, []uint64{2, 4}},
		{"forget and interrupt need no reply", [][]byte{request(opForget, 6, "12345678"), request(opInterrupt, 8, "12345678"), request(opBatchForget, 10, ""), request(opRead, 12, "")}, []bool{false, false, false, false}, []uint64{12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newJournal(t, 4)
			w1 := open(t, f, 0)
			for i, r := range tc.reqs {
				buf, done, ok := w1.Slot()
				if !ok {
					t.Fatal("no free slot")
				}
				copy(buf, r) // what read(2) does
				if tc.answered[i] {
					done()
				}
			}
			// w1 dies; w2 serves from the other bank.
			w2 := open(t, f, 1)
			got := w2.Pending(0)
			if len(got) != len(tc.want) {
				t.Fatalf("pending %d requests, want %d", len(got), len(tc.want))
			}
			for i, e := range got {
				if u := binary.LittleEndian.Uint64(e.Raw[8:]); u != tc.want[i] {
					t.Errorf("pending[%d] unique %d, want %d", i, u, tc.want[i])
				}
				if string(e.Raw) != string(tc.reqs[e.Slot]) {
					t.Errorf("pending[%d] bytes %q, want %q", i, e.Raw, tc.reqs[e.Slot])
				}
				w2.Done(e)
			}
			if again := w2.Pending(0); len(again) != 0 {
				t.Errorf("%d requests pending after they were answered", len(again))
			}
			// A third worker after w2 (bank 0 again) finds nothing to
			// answer and every slot free.
			w3 := open(t, f, 0)
			if p := w3.Pending(0); len(p) != 0 {
				t.Errorf("bank 0 left %d requests for a third worker", len(p))
			}
			for range 4 {
				if _, _, ok := w3.Slot(); !ok {
					t.Fatal("a slot was not freed")
				}
			}
		})
	}
}

// TestOwnBankLeftovers: slots a dead worker left in the bank the next worker
// serves from are not handed out for new requests until answered, and
// Pending of the own bank lists only those, never the new worker's own
// requests in flight.
func TestOwnBankLeftovers(t *testing.T) {
	f := newJournal(t, 2)
	w1 := open(t, f, 0)
	buf, _, _ := w1.Slot()
	copy(buf, request(opRead, 2, ""))

	w2 := open(t, f, 0)
	b2, done2, ok := w2.Slot()
	if !ok {
		t.Fatal("the free slot was not offered")
	}
	copy(b2, request(opRead, 4, ""))
	if _, _, ok := w2.Slot(); ok {
		t.Fatal("the slot holding the dead worker's request was offered")
	}
	if w2.Unjournaled.Load() != 1 {
		t.Errorf("unjournaled %d, want 1", w2.Unjournaled.Load())
	}
	p := w2.Pending(0)
	if len(p) != 1 || binary.LittleEndian.Uint64(p[0].Raw[8:]) != 2 {
		t.Fatalf("pending %v, want unique 2 alone", p)
	}
	w2.Done(p[0])
	if _, _, ok := w2.Slot(); !ok {
		t.Error("the answered slot was not freed")
	}
	done2()
}

func TestOpenRejects(t *testing.T) {
	good := newJournal(t, 1)
	empty, err := os.CreateTemp(t.TempDir(), "j")
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	junk, _ := os.CreateTemp(t.TempDir(), "j")
	defer junk.Close()
	junk.Truncate(headerSize + 2*8192)
	for _, tc := range []struct {
		name string
		f    *os.File
		bank int
	}{
		{"empty file", empty, 0},
		{"no magic", junk, 0},
		{"bank out of range", good, Banks},
	} {
		if j, err := Open(tc.f, tc.bank); err == nil {
			j.Close()
			t.Errorf("%s: opened", tc.name)
		}
	}
	if _, err := Create(0, 8192); err == nil {
		t.Error("created a journal without slots")
	}
}
