package loadavg

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// One task always runnable: after a minute of 5s ticks load1 is about
// 1-1/e (the kernel's 0.63), and after long enough every average is 1.00.
func TestCalcLoadConverges(t *testing.T) {
	var l1, l5, l15 uint64
	for range 12 {
		l1 = calcLoad(l1, exp1, fixed1)
		l5 = calcLoad(l5, exp5, fixed1)
		l15 = calcLoad(l15, exp15, fixed1)
	}
	if got := float64(l1) / fixed1; math.Abs(got-0.63) > 0.02 {
		t.Errorf("load1 after 1 minute of one busy task = %.3f, want about 0.63", got)
	}
	if !(l15 < l5 && l5 < l1) {
		t.Errorf("slower averages should lag: l1=%d l5=%d l15=%d", l1, l5, l15)
	}
	for range 2000 {
		l1 = calcLoad(l1, exp1, fixed1)
		l15 = calcLoad(l15, exp15, fixed1)
	}
	if l1 != fixed1 || l15 != fixed1 {
		t.Errorf("steady one-task load converged to %d/%d, want %d", l1, l15, fixed1)
	}
	// And back to zero when idle.
	for range 2000 {
		l1 = calcLoad(l1, exp1, 0)
	}
	if l1 != 0 {
		t.Errorf("idle load1 stuck at %d", l1)
	}
}

func TestTaskState(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		content string
		want    byte
		wantErr bool
	}{
		{"123 (sh) R 1 123 123 0 -1", 'R', false},
		{"123 (my) D) D 1 123", 'D', false}, // ')' inside the command name
		{"123 (a b) S 1", 'S', false},
		{"garbage", 0, true},
		{"123 (x)", 0, true},
		{"", 0, true},
	}
	for i, tt := range tests {
		p := filepath.Join(dir, "stat"+string(rune('a'+i)))
		if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := taskState(p)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("taskState(%q) = %q, %v; want %q, err %v", tt.content, got, err, tt.want, tt.wantErr)
		}
	}
}

// A fake /proc with one process of three threads: R, D and S.
func TestCount(t *testing.T) {
	proc := t.TempDir()
	for tid, st := range map[string]string{"40": "R", "41": "D", "42": "S"} {
		d := filepath.Join(proc, "40", "task", tid)
		os.MkdirAll(d, 0o755)
		os.WriteFile(filepath.Join(d, "stat"), []byte(tid+" (app) "+st+" 1 40"), 0o644)
	}
	os.WriteFile(filepath.Join(proc, "40", "status"), []byte("Name:\tapp\nNSpid:\t40\t7\n"), 0o644)
	s := New(proc, nil)
	active, running, total, last := s.count([]int{40, 99}) // 99 has exited
	if active != 2 || running != 1 || total != 3 || last != 7 {
		t.Errorf("count = active %d running %d total %d last %d; want 2 1 3 7", active, running, total, last)
	}
}
