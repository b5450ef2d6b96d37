package remount

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRecords(t *testing.T) {
	dir := t.TempDir()
	a := Record{ID: "a", Pid: 42, StartTicks: 7, Root: "/var/lib/lxcfs", Targets: []string{"/proc/meminfo"}}
	b := Record{ID: "b", Pid: 43, StartTicks: 8, Root: "/other", Targets: []string{"/proc/stat"}}
	for _, r := range []Record{b, a} {
		if err := Save(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	// Garbage beside them is reported and removed, not fatal.
	os.WriteFile(filepath.Join(dir, "containers", "junk.json"), []byte("{not json"), 0o600)
	os.WriteFile(filepath.Join(dir, "containers", "notes.txt"), []byte("ignored"), 0o600)
	got, errs := Load(dir)
	if len(got) != 2 || got[0].ID != "a" || got[1].Targets[0] != "/proc/stat" {
		t.Fatalf("Load = %+v", got)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "junk.json") {
		t.Errorf("errors = %v, want one about junk.json", errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "containers", "junk.json")); !os.IsNotExist(err) {
		t.Errorf("garbage record kept")
	}
	if err := Remove(dir, "a"); err != nil {
		t.Fatal(err)
	}
	if err := Remove(dir, "a"); err != nil {
		t.Errorf("removing twice: %v", err)
	}
	if got, _ := Load(dir); len(got) != 1 {
		t.Errorf("after Remove: %+v", got)
	}
}

func TestRecordIDsCannotEscape(t *testing.T) {
	for _, id := range []string{"", ".", "..", "../x", "a/b", "a\x00b"} {
		if err := Save(t.TempDir(), Record{ID: id, Pid: 1}); err == nil {
			t.Errorf("Save accepted id %q", id)
		}
	}
}

// A record whose process is gone (or whose pid now belongs to another
// process) is dropped, and only records of the given root are touched.
func TestRunDropsGoneContainers(t *testing.T) {
	dir := t.TempDir()
	start, err := StartTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	Save(dir, Record{ID: "recycled", Pid: os.Getpid(), StartTicks: start + 1, Root: "/r", Targets: []string{"/proc/meminfo"}})
	Save(dir, Record{ID: "dead", Pid: 1 << 30, StartTicks: 1, Root: "/r"})
	Save(dir, Record{ID: "elsewhere", Pid: 1 << 30, StartTicks: 1, Root: "/other"})
	out, errs := Run(context.Background(), dir, "/r", time.Second)
	if len(errs) != 0 || len(out) != 2 || !out[0].Gone || !out[1].Gone {
		t.Fatalf("Run = %+v, %v; want both /r records gone", out, errs)
	}
	left, _ := Load(dir)
	if len(left) != 1 || left[0].ID != "elsewhere" {
		t.Errorf("records left: %+v, want only the other root's", left)
	}
}

// Once the daemon stops (ctx done), Run starts no container: a live
// container's record is kept, reported not re-attached, and its views are
// not touched (their source here does not exist: a started attempt would
// report that error instead).
func TestRunStartsNothingOnceStopping(t *testing.T) {
	dir := t.TempDir()
	start, err := StartTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	Save(dir, Record{ID: "live", Pid: os.Getpid(), StartTicks: start, Root: "/r", Targets: []string{"/proc/meminfo"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out, errs := Run(ctx, dir, "/r", time.Second)
	if len(errs) != 0 || len(out) != 1 || !errors.Is(out[0].Err, context.Canceled) {
		t.Fatalf("Run after stop = %+v, %v; want live not re-attached (context canceled)", out, errs)
	}
	if left, _ := Load(dir); len(left) != 1 {
		t.Errorf("records left: %+v, want the live one kept", left)
	}
}

// CountLive counts the running containers of one root and keeps every
// record (the daemon's start drops the gone ones).
func TestCountLive(t *testing.T) {
	dir := t.TempDir()
	start, err := StartTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	Save(dir, Record{ID: "live", Pid: os.Getpid(), StartTicks: start, Root: "/r"})
	Save(dir, Record{ID: "live-elsewhere", Pid: os.Getpid(), StartTicks: start, Root: "/other"})
	Save(dir, Record{ID: "recycled", Pid: os.Getpid(), StartTicks: start + 1, Root: "/r"})
	Save(dir, Record{ID: "dead", Pid: 1 << 30, StartTicks: 1, Root: "/r/"})
	// A registered container is served from its own files below the root.
	Save(dir, Record{ID: "registered", Pid: os.Getpid(), StartTicks: start, Root: "/r/.containers/3"})
	Save(dir, Record{ID: "lookalike", Pid: os.Getpid(), StartTicks: start, Root: "/r2/.containers/3"})
	if n, errs := CountLive(dir, "/r"); n != 2 || len(errs) != 0 {
		t.Errorf("CountLive = %d, %v; want 2", n, errs)
	}
	if n, _ := CountLive(t.TempDir(), "/r"); n != 0 {
		t.Errorf("no records: %d", n)
	}
	if left, _ := Load(dir); len(left) != 6 {
		t.Errorf("CountLive changed the records: %+v", left)
	}
}
