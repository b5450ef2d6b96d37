package caller

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A container's ID means the same container to every resolver over the same
// file (a replacement worker, an upgraded binary), and no other container
// ever: not a second container, not one started after the first died.
func TestIDsSharedAndNeverReused(t *testing.T) {
	needRoot(t)
	file := filepath.Join(t.TempDir(), "ids")
	r1, err := NewResolver("/proc", file)
	if err != nil {
		t.Fatal(err)
	}
	defer r1.Close()
	initA, childA := startInNewPidNS(t)
	a, err := r1.Resolve(childA)
	if err != nil || a == nil || a.ID == 0 {
		t.Fatalf("resolve A: %+v, %v; want a container with an ID", a, err)
	}
	_, childB := startInNewPidNS(t)
	b, err := r1.Resolve(childB)
	if err != nil || b == nil || b.ID == 0 || b.ID == a.ID {
		t.Fatalf("resolve B: %+v, %v; want an ID of its own (A has %d)", b, err, a.ID)
	}

	// A second resolver, as a new worker: same IDs, same containers.
	r2, err := NewResolver("/proc", file)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	for _, want := range []*Container{a, b} {
		got, err := r2.Lookup(want.ID)
		if err != nil || got.InitPid != want.InitPid || got.StartTicks != want.StartTicks {
			t.Errorf("new resolver: ID %d = %+v, %v; want init %d", want.ID, got, err, want.InitPid)
		}
	}
	if again, err := r2.Resolve(childA); err != nil || again.ID != a.ID {
		t.Errorf("new resolver resolved A to ID %v (%v), want the recorded %d", again, err, a.ID)
	}
	if _, err := r2.Lookup(b.ID + 100); err == nil {
		t.Errorf("an ID never given resolved to a container")
	}

	// A dies: its ID names nothing any more, and a new container gets
	// a new ID.
	initA.Process.Kill()
	initA.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r2.Prune()
		if _, err := r2.Lookup(a.ID); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ID %d of a dead container still resolves", a.ID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r3, err := NewResolver("/proc", file)
	if err != nil {
		t.Fatal(err)
	}
	defer r3.Close()
	if _, err := r3.Lookup(a.ID); err == nil {
		t.Errorf("ID %d of a dead container resolves in a resolver started after it died", a.ID)
	}
	_, childC := startInNewPidNS(t)
	c, err := r3.Resolve(childC)
	if err != nil || c.ID == a.ID || c.ID == b.ID || c.ID == 0 {
		t.Errorf("container C got ID %v (%v); A had %d, B %d", c, err, a.ID, b.ID)
	}
}

// A file left by another boot names processes that are not there any more
// (their pids and start times may be taken again): it is started afresh.
func TestIDFileOfAnotherBoot(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ids")
	reg, err := openRegistry(file, "boot-one")
	if err != nil {
		t.Fatal(err)
	}
	id, err := reg.assign(idRecord{pid: 42, start: 1000, ns: 7})
	if err != nil || id != 1 {
		t.Fatalf("first ID %d, %v; want 1", id, err)
	}
	reg.close()
	same, err := openRegistry(file, "boot-one")
	if err != nil {
		t.Fatal(err)
	}
	if rec, ok := same.record(1); !ok || rec.pid != 42 {
		t.Errorf("same boot: record 1 = %+v, %v", rec, ok)
	}
	same.close()
	other, err := openRegistry(file, "boot-two")
	if err != nil {
		t.Fatal(err)
	}
	defer other.close()
	if rec, ok := other.record(1); ok {
		t.Errorf("another boot's record 1 still read: %+v", rec)
	}
	b, _ := os.ReadFile(file)
	if len(b) != recSize {
		t.Errorf("a file started afresh holds %d bytes, want only its header", len(b))
	}
}

// A reserved ID (the daemon warms its tree before any container starts) is
// given to exactly one registered container, through the ID file like any
// other; until then it answers for nobody, and a container registered
// twice keeps its first ID and leaves the spare for the next.
func TestSpareGivenOnce(t *testing.T) {
	needRoot(t)
	file := filepath.Join(t.TempDir(), "ids")
	r, err := NewResolver("/proc", file)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	register := func(init *exec.Cmd) uint32 {
		t.Helper()
		pidfd, err := unix.PidfdOpen(init.Process.Pid, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(pidfd)
		id, err := r.Register(pidfd)
		if err != nil {
			t.Fatalf("register %d: %v", init.Process.Pid, err)
		}
		return id
	}

	initA, _ := startInNewPidNS(t)
	plain := register(initA)
	spare, err := r.Reserve()
	if err != nil {
		t.Fatal(err)
	}
	if spare <= plain {
		t.Fatalf("reserved ID %d, not above the last given (%d)", spare, plain)
	}
	if !r.Spare(spare) {
		t.Fatalf("reserved ID %d is not a spare", spare)
	}
	if _, err := r.Lookup(spare); err == nil {
		t.Fatalf("reserved ID %d resolved to a container before any registration", spare)
	}
	initB, _ := startInNewPidNS(t)
	if got := register(initB); got == spare {
		t.Fatalf("a spare not offered yet was given (ID %d)", got)
	}

	r.Offer(spare)
	if got := register(initA); got != plain || r.Ready() != 1 {
		t.Fatalf("container A registered again: ID %d, %d spares ready; want its own %d and the spare left", got, r.Ready(), plain)
	}
	initC, _ := startInNewPidNS(t)
	if got := register(initC); got != spare {
		t.Fatalf("container C got ID %d, want the offered spare %d", got, spare)
	}
	select {
	case <-r.Taken():
	default:
		t.Errorf("taking the spare was not signalled")
	}
	if g := r.Given(); len(g) != 1 || g[0] != spare {
		t.Errorf("given spares %v, want [%d]", g, spare)
	}
	if r.Spare(spare) || r.Ready() != 0 {
		t.Errorf("the given spare is still a spare (%v) or ready (%d)", r.Spare(spare), r.Ready())
	}

	// Another process over the same file finds C under that ID, and the
	// next container gets a new one.
	r2, err := NewResolver("/proc", file)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	c, err := r2.Lookup(spare)
	if err != nil || c.InitPid != initC.Process.Pid {
		t.Fatalf("new resolver: ID %d = %+v, %v; want init %d", spare, c, err, initC.Process.Pid)
	}
	initD, _ := startInNewPidNS(t)
	if got := register(initD); got == spare || got == plain {
		t.Errorf("container D got ID %d, already given", got)
	}
}
