package stats

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

func TestRegionCountsSurviveReopen(t *testing.T) {
	path := Path(t.TempDir())
	sup, err := Create(path, []string{"proc/meminfo", "proc/stat"})
	if err != nil {
		t.Fatal(err)
	}
	defer sup.Close()
	// A worker maps the same file and counts; the supervisor sees it.
	worker, err := Open(path, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	mem := worker.File("proc/meminfo")
	mem.Observe(OpOpen, 3*time.Microsecond)
	mem.Observe(OpRead, 30*time.Microsecond)
	mem.Observe(OpRead, time.Hour)
	mem.RenderError()
	worker.Fallback("proc/meminfo", ViewError)
	worker.Fallback("proc/stat", Timeout)
	worker.Fallback("proc/unknown", Timeout) // no slot: not counted, no panic
	sup.Add(WorkerStarts, 1)
	worker.Close() // a killed worker: the counts stay in the file

	// An upgraded supervisor reopens the file and names a file its binary added.
	up, err := Open(path, true, []string{"proc/meminfo", "proc/stat", "proc/pressure/io"})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	s := up.Snapshot()
	if s.Counters[WorkerStarts] != 1 {
		t.Errorf("worker starts %d, want 1", s.Counters[WorkerStarts])
	}
	want := []FileCounts{
		{Name: "proc/meminfo", Opens: 1, Reads: 2, RenderErrors: 1, Fallbacks: map[string]uint64{"timeout": 0, "view_error": 1, "unresolved": 0}},
		{Name: "proc/stat", Fallbacks: map[string]uint64{"timeout": 1, "view_error": 0, "unresolved": 0}},
		{Name: "proc/pressure/io", Fallbacks: map[string]uint64{"timeout": 0, "view_error": 0, "unresolved": 0}},
	}
	if len(s.Files) != len(want) {
		t.Fatalf("files %+v, want %+v", s.Files, want)
	}
	for i, w := range want {
		g := s.Files[i]
		if g.Name != w.Name || g.Opens != w.Opens || g.Reads != w.Reads || g.RenderErrors != w.RenderErrors {
			t.Errorf("file %d: %+v, want %+v", i, g, w)
		}
		for k, v := range w.Fallbacks {
			if g.Fallbacks[k] != v {
				t.Errorf("%s fallbacks %s: %d, want %d", w.Name, k, g.Fallbacks[k], v)
			}
		}
	}
	open, read := s.Hists[OpOpen], s.Hists[OpRead]
	if open.Counts[0] != 1 || read.Counts[3] != 1 || read.Counts[len(Buckets)] != 1 {
		t.Errorf("histograms open %v read %v: want 3us in the first bucket, 30us in the 50us one, 1h beyond all", open.Counts, read.Counts)
	}
	if read.Sum != time.Hour+30*time.Microsecond {
		t.Errorf("read sum %v", read.Sum)
	}
	if r, fb := s.Errors(); r != 1 || fb["timeout"] != 1 || fb["view_error"] != 1 {
		t.Errorf("errors: render %d fallbacks %v", r, fb)
	}

	// A fresh start begins at zero.
	fresh, err := Create(path, []string{"proc/meminfo"})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if s := fresh.Snapshot(); s.Files[0].Reads != 0 || s.Counters[WorkerStarts] != 0 || !s.Created.After(up.Created().Add(-time.Nanosecond)) {
		t.Errorf("fresh file not zeroed: %+v", s)
	}
}

func TestBucketBounds(t *testing.T) {
	r, err := Create(Path(t.TempDir()), []string{"f"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f := r.File("f")
	for i, b := range Buckets {
		f.Observe(OpRead, b) // exactly on a bound: counted in that bucket
		if got := r.Snapshot().Hists[OpRead].Counts[i]; got != 1 {
			t.Fatalf("%v counted %d times in bucket %d (le %v)", b, got, i, b)
		}
	}
}

func TestOpenRejectsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"short":     []byte("LXCFSST2"),
		"wrong":     make([]byte, size),
		"truncated": nil,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
		if r, err := Open(p, false, nil); err == nil {
			r.Close()
			t.Errorf("%s: opened", name)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing"), false, nil); !os.IsNotExist(err) {
		t.Errorf("missing file: %v, want not exist", err)
	}
}

func TestNilRegionCountsNothing(t *testing.T) {
	var r *Region
	r.Add(WorkerStarts, 1)
	r.Fallback("x", Timeout)
	r.File("x").Observe(OpRead, time.Second)
	r.File("x").RenderError()
	if r.Get(WorkerStarts) != 0 || len(r.Snapshot().Files) != 0 {
		t.Error("nil region counted")
	}
}

func TestTooManyFiles(t *testing.T) {
	names := make([]string, numSlots+1)
	for i := range names {
		names[i] = string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	if _, err := Create(Path(t.TempDir()), names); err == nil {
		t.Error("more files than slots accepted")
	}
}

func TestCountHookConcurrent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // made by the first count
	const hooks, each = 8, 50
	var wg sync.WaitGroup
	for range hooks {
		wg.Go(func() {
			for range each {
				if err := CountHook(dir, Served); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := CountHook(dir, Refused); err != nil {
		t.Fatal(err)
	}
	counts, err := HookCounts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if counts[Served] != hooks*each || counts[Refused] != 1 || counts[Skipped] != 0 {
		t.Errorf("counts %v, want %d served and 1 refused", counts, hooks*each)
	}
	if st, err := os.Stat(HookPath(dir)); err != nil || st.Size() != hookSize {
		t.Errorf("hook file: %v size %d, want %d", err, st.Size(), hookSize)
	}
}

func TestCountHookLeavesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(HookPath(dir), []byte("something else entirely"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CountHook(dir, Served); err == nil {
		t.Error("counted into a foreign file")
	}
	big := make([]byte, hookSize+1)
	if err := os.WriteFile(HookPath(dir), big, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CountHook(dir, Served); err == nil {
		t.Error("counted into an oversized file")
	}
	if b, _ := os.ReadFile(HookPath(dir)); len(b) != hookSize+1 {
		t.Errorf("foreign file changed to %d bytes", len(b))
	}
	if err := os.Remove(HookPath(dir)); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", HookPath(dir)); err != nil {
		t.Fatal(err)
	}
	if err := CountHook(dir, Served); err == nil {
		t.Error("followed a symlink")
	}
	if counts, err := HookCounts(t.TempDir()); err != nil || counts[Served] != 0 {
		t.Errorf("no file: %v %v, want zeros", counts, err)
	}
	if err := CountHook(t.TempDir(), Outcome(99)); err == nil {
		t.Error("unknown outcome counted")
	}
}

func TestOutcomeNames(t *testing.T) {
	seen := map[string]bool{}
	for _, o := range Outcomes {
		n := o.String()
		if n == "" || seen[n] {
			t.Errorf("outcome %d: name %q empty or repeated", o, n)
		}
		seen[n] = true
	}
	if len(Outcomes) != int(numOutcomes) {
		t.Errorf("Outcomes lists %d of %d", len(Outcomes), numOutcomes)
	}
}

// BenchmarkCountHook is what counting adds to every container start.
func BenchmarkCountHook(b *testing.B) {
	dir := b.TempDir()
	for b.Loop() {
		if err := CountHook(dir, Served); err != nil {
			b.Fatal(err)
		}
	}
}
