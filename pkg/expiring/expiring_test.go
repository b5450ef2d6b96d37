package expiring

import (
	"errors"
	"testing"
	"time"
)

// TestGet walks one key through a sequence of calls at given offsets from a
// start, and checks which calls load.
func TestGet(t *testing.T) {
	other := errors.New("EIO")
	type call struct {
		at     time.Duration // since the start
		maxAge time.Duration
		err    error // what the load returns, if it runs
		loads  bool  // whether it must run
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		calls []call
	}{
		{"kept while younger than max age", []call{
			{0, time.Second, nil, true},
			{999 * time.Millisecond, time.Second, nil, false},
			{time.Second, time.Second, nil, true},
		}},
		{"max age 0 loads every time and keeps nothing", []call{
			{0, 0, nil, true},
			{0, 0, nil, true},
			{0, time.Second, nil, true},
		}},
		{"a shorter max age reloads what a longer one kept", []call{
			{0, time.Second, nil, true},
			{10 * time.Millisecond, 5 * time.Millisecond, nil, true},
		}},
		{"errors are not kept", []call{
			{0, time.Second, other, true},
			{0, time.Second, other, true},
			{0, time.Second, nil, true},
			{0, time.Second, nil, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Cache[string, int]
			var want error
			for i, cl := range tc.calls {
				loaded := false
				v, err := c.Get("k", start.Add(cl.at), cl.maxAge, func() (int, error) {
					loaded = true
					return i, cl.err
				})
				if loaded != cl.loads {
					t.Fatalf("call %d: loaded = %v, want %v", i, loaded, cl.loads)
				}
				if loaded {
					want = cl.err
				}
				if !errors.Is(err, want) || (err == nil && loaded && v != i) {
					t.Fatalf("call %d: got %d, %v; want the last load's result (err %v)", i, v, err, want)
				}
			}
		})
	}
}

// TestForget: values too old to be handed out are dropped, so a cache keyed
// by paths does not grow with every container that ever ran.
func TestForget(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var c Cache[int, int]
	one := func() (int, error) { return 1, nil }
	for i := range 100 {
		c.Get(i, start, time.Minute, one)
	}
	if c.Len() != 100 {
		t.Fatalf("Len = %d after 100 keys, want 100", c.Len())
	}
	c.Get(-1, start.Add(59*time.Second), time.Minute, one)
	if c.Len() != 101 {
		t.Fatalf("Len = %d with every value still young, want 101", c.Len())
	}
	c.Get(-2, start.Add(time.Minute), time.Minute, one)
	if c.Len() != 2 {
		t.Errorf("Len = %d once the first 100 aged past the max age, want 2", c.Len())
	}
	c.Reset()
	if c.Len() != 0 {
		t.Errorf("Len = %d after Reset", c.Len())
	}
}

// TestOlderLoadNotKept: a load that started before the kept value was
// loaded (two callers racing) does not replace it.
func TestOlderLoadNotKept(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var c Cache[struct{}, string]
	c.Get(struct{}{}, start, time.Second, func() (string, error) {
		// While this load runs, a later caller loads and keeps its value.
		c.Get(struct{}{}, start.Add(time.Millisecond), time.Second, func() (string, error) { return "new", nil })
		return "old", nil
	})
	got, _ := c.Get(struct{}{}, start.Add(2*time.Millisecond), time.Second, func() (string, error) { return "reloaded", nil })
	if got != "new" {
		t.Errorf("got %q, want the newer load kept", got)
	}
}
