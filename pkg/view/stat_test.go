package view

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func TestStatV1PerCPU(t *testing.T) {
	host := fixture(t, "stat-4cpu")
	// Host cpu1 and cpu3 each have 10000+25+5000+85000+200+0+100+0 = 100325
	// elapsed ticks (guest excluded: it is part of user).
	u := CPUUsage{PerCPU: map[int]CPUTime{
		0: {User: 99 * time.Second, System: time.Second},
		1: {User: 12*time.Second + 345*time.Millisecond, System: 6780 * time.Millisecond},
		2: {User: time.Hour},
		3: {User: 2 * time.Second, System: 999 * time.Millisecond}, // partial tick dropped
	}}
	out := AppendStat(nil, host, []int{1, 3}, u)
	cpu, order, other := parseStatOut(t, out)
	if !slices.Equal(order, []string{"cpu", "cpu1", "cpu3"}) {
		t.Fatalf("cpu lines %v, want the host's ids", order)
	}
	if want := []uint64{1234, 0, 678, 100325 - 1234 - 678, 0, 0, 0, 0, 0, 0}; !slices.Equal(cpu["cpu1"], want) {
		t.Errorf("cpu1 = %v, want %v", cpu["cpu1"], want)
	}
	if want := []uint64{200, 0, 99, 100325 - 200 - 99, 0, 0, 0, 0, 0, 0}; !slices.Equal(cpu["cpu3"], want) {
		t.Errorf("cpu3 = %v, want %v", cpu["cpu3"], want)
	}
	for f := range 10 {
		if cpu["cpu"][f] != cpu["cpu1"][f]+cpu["cpu3"][f] {
			t.Errorf("aggregate field %d = %d, want sum %d", f, cpu["cpu"][f], cpu["cpu1"][f]+cpu["cpu3"][f])
		}
	}
	if !slices.Equal(other, nonCPULines(host)) {
		t.Errorf("non-cpu lines changed:\n%v\nwant\n%v", other, nonCPULines(host))
	}
	if !bytes.HasPrefix(out, []byte("cpu  1434 0 777 ")) {
		t.Errorf("aggregate line layout: %q", out[:30])
	}

	// Usage above a CPU's elapsed time floors idle at 0.
	out = AppendStat(nil, host, []int{2}, u)
	cpu, _, _ = parseStatOut(t, out)
	if want := []uint64{360000, 0, 0, 0, 0, 0, 0, 0, 0, 0}; !slices.Equal(cpu["cpu2"], want) {
		t.Errorf("overused cpu2 = %v, want %v", cpu["cpu2"], want)
	}
	// A CPU missing from PerCPU reads as idle.
	out = AppendStat(nil, host, []int{0}, CPUUsage{PerCPU: map[int]CPUTime{}})
	cpu, _, _ = parseStatOut(t, out)
	if want := []uint64{0, 0, 0, 100325, 0, 0, 0, 0, 0, 0}; !slices.Equal(cpu["cpu0"], want) {
		t.Errorf("unused cpu0 = %v, want %v", cpu["cpu0"], want)
	}
}

func TestStatV2Spread(t *testing.T) {
	host := fixture(t, "stat-4cpu")
	u := CPUUsage{Total: CPUTime{User: 100 * time.Millisecond, System: 50 * time.Millisecond}} // 10 and 5 ticks
	out := AppendStat(nil, host, []int{0, 1, 3}, u)
	cpu, order, _ := parseStatOut(t, out)
	if !slices.Equal(order, []string{"cpu", "cpu0", "cpu1", "cpu3"}) {
		t.Fatalf("cpu lines %v", order)
	}
	wantUser := []uint64{4, 3, 3}
	wantSys := []uint64{2, 2, 1}
	for i, name := range []string{"cpu0", "cpu1", "cpu3"} {
		l := cpu[name]
		if l[0] != wantUser[i] || l[2] != wantSys[i] {
			t.Errorf("%s user/system = %d/%d, want %d/%d", name, l[0], l[2], wantUser[i], wantSys[i])
		}
		if l[0]+l[2]+l[3] != 100325 {
			t.Errorf("%s total %d, want host elapsed 100325", name, l[0]+l[2]+l[3])
		}
		if l[1]+l[4]+l[5]+l[6]+l[7]+l[8]+l[9] != 0 {
			t.Errorf("%s other fields not zero: %v", name, l)
		}
	}
	if cpu["cpu"][0] != 10 || cpu["cpu"][2] != 5 || cpu["cpu"][3] != 3*100325-15 {
		t.Errorf("aggregate = %v", cpu["cpu"])
	}
}

func TestStatFewerFields(t *testing.T) {
	tests := []struct {
		fixture string
		nf      int
		elapsed uint64 // per host cpu line
	}{
		{"stat-7fields", 7, 1000 + 5 + 500 + 8500 + 100 + 5 + 15},
		{"stat-4fields", 4, 1000},
	}
	for _, tc := range tests {
		host := fixture(t, tc.fixture)
		out := AppendStat(nil, host, []int{0}, CPUUsage{Total: CPUTime{User: 300 * time.Millisecond, System: 200 * time.Millisecond}})
		cpu, order, other := parseStatOut(t, out)
		if !slices.Equal(order, []string{"cpu", "cpu0"}) {
			t.Fatalf("%s: cpu lines %v", tc.fixture, order)
		}
		for _, name := range order {
			l := cpu[name]
			if len(l) != tc.nf {
				t.Fatalf("%s: %s has %d fields, want %d", tc.fixture, name, len(l), tc.nf)
			}
			if l[0] != 30 || l[2] != 20 || l[3] != tc.elapsed-50 {
				t.Errorf("%s: %s = %v", tc.fixture, name, l)
			}
		}
		if !slices.Equal(other, nonCPULines(host)) {
			t.Errorf("%s: non-cpu lines changed", tc.fixture)
		}
	}
}

func TestStatRealHost(t *testing.T) {
	host := fixture(t, "stat")
	out := AppendStat(nil, host, []int{1}, CPUUsage{})
	cpu, order, other := parseStatOut(t, out)
	if !slices.Equal(order, []string{"cpu", "cpu1"}) {
		t.Fatalf("cpu lines %v", order)
	}
	hostCPU, _, _ := parseStatOut(t, host)
	want := sum(hostCPU["cpu1"][:8])
	if got := cpu["cpu1"][3]; got != want {
		t.Errorf("idle = %d, want host cpu1 elapsed %d", got, want)
	}
	if !slices.Equal(cpu["cpu"], cpu["cpu1"]) {
		t.Errorf("aggregate %v != only line %v", cpu["cpu"], cpu["cpu1"])
	}
	if !slices.Equal(other, nonCPULines(host)) {
		t.Error("non-cpu lines changed")
	}
	if got := AppendStat(nil, host, nil, CPUUsage{}); !bytes.Equal(got, host) {
		t.Error("nil cpus: host not unchanged")
	}
}

func TestStatGarbage(t *testing.T) {
	tests := []struct{ host, want string }{
		{"", ""},
		{"intr 1 2\nctxt 3\n", "intr 1 2\nctxt 3\n"},
		// No aggregate line: ours goes where the cpu lines were.
		{"x 1\ncpu0 10 0 10 80\ny 2\n", "x 1\ncpu  0 0 0 100\ncpu0 0 0 0 100\ny 2\n"},
		// Only unparseable cpu lines: they are dropped.
		{"cpu  a b c d\nz\n", "z\n"},
		// Malformed cpu lines are dropped.
		{"cpu  a b c d\ncpu0 1 2\ncpu0 1 1 1 1\n", "cpu  0 0 0 4\ncpu0 0 0 0 4\n"},
		{"cpux 1 2 3 4\n", "cpux 1 2 3 4\n"},
		// A repeated cpu line is shown once.
		{"cpu0 1 1 1 1\ncpu0 1 1 1 1\n", "cpu  0 0 0 4\ncpu0 0 0 0 4\n"},
	}
	for _, tc := range tests {
		if got := string(AppendStat(nil, []byte(tc.host), []int{0}, CPUUsage{})); got != tc.want {
			t.Errorf("AppendStat(nil, %q) = %q, want %q", tc.host, got, tc.want)
		}
	}
}
