package view

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestUptime(t *testing.T) {
	tests := []struct {
		since, cpu time.Duration
		want       string
	}{
		{3723*time.Second + 456*time.Millisecond, 23 * time.Second, "3723.46 3700.46\n"},
		{10 * time.Second, 25 * time.Second, "10.00 0.00\n"}, // busy multi-CPU container
		{-time.Second, 0, "0.00 0.00\n"},                     // clock skew
		{5 * time.Second, -time.Second, "5.00 5.00\n"},
		{0, 0, "0.00 0.00\n"},
		{math.MaxInt64, 0, "9223372036.85 9223372036.85\n"},
	}
	for _, tc := range tests {
		if got := string(Uptime(tc.since, tc.cpu)); got != tc.want {
			t.Errorf("Uptime(%v, %v) = %q, want %q", tc.since, tc.cpu, got, tc.want)
		}
	}
}

func TestLoadavg(t *testing.T) {
	got := string(Loadavg(LoadAvg{Load1: 0.5, Load5: 1.234, Load15: 12.345678, Running: 2, Total: 37, LastPid: 4242}))
	if want := "0.50 1.23 12.35 2/37 4242\n"; got != want {
		t.Errorf("Loadavg = %q, want %q", got, want)
	}
	if got := string(Loadavg(LoadAvg{})); got != "0.00 0.00 0.00 0/0 0\n" {
		t.Errorf("zero Loadavg = %q", got)
	}
}

var testIO = []IOStat{
	{Major: 8, Minor: 0, ReadBytes: 1024 * 1024, WriteBytes: 4096, ReadIOs: 10, WriteIOs: 2, DiscardBytes: 512 * 3, DiscardIOs: 1},
	{Major: 7, Minor: 0}, // all zero: omitted
	{Major: 259, Minor: 0, ReadBytes: 1000, ReadIOs: 1},
	{Major: 254, Minor: 0, WriteBytes: 512, WriteIOs: 1},
	{Major: 9, Minor: 9, ReadIOs: 5}, // not on the host
}

func TestDiskstats(t *testing.T) {
	tests := []struct {
		fixture string
		want    string
	}{
		{"diskstats-14", "" +
			"   8       0 sda 10 0 2048 0 2 0 8 0 0 0 0\n" +
			" 259       0 nvme0n1 1 0 1 0 0 0 0 0 0 0 0\n"},
		{"diskstats-18", "" +
			"   8       0 sda 10 0 2048 0 2 0 8 0 0 0 0 1 0 3 0\n" +
			" 259       0 nvme0n1 1 0 1 0 0 0 0 0 0 0 0 0 0 0 0\n"},
		{"diskstats", "" + // this machine's: 20 fields, vda is 254:0
			" 254       0 vda 0 0 0 0 1 0 1 0 0 0 0 0 0 0 0 0 0\n"},
	}
	for _, tc := range tests {
		got := string(AppendDiskstats(nil, fixture(t, tc.fixture), testIO))
		if got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.fixture, got, tc.want)
		}
		host := string(fixture(t, tc.fixture))
		hostNF := len(strings.Fields(strings.SplitN(host, "\n", 2)[0]))
		for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
			if nf := len(strings.Fields(line)); nf != hostNF {
				t.Errorf("%s: line %q has %d fields, host %d", tc.fixture, line, nf, hostNF)
			}
		}
	}
	for _, io := range [][]IOStat{nil, {}} {
		if got := AppendDiskstats(nil, fixture(t, "diskstats-14"), io); got == nil || len(got) != 0 {
			t.Errorf("no I/O: got %q, want empty non-nil", got)
		}
	}
	garbage := "junk\n8 0\n8 0 sda x\n8 0 sda 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\n8 0 sda 7\n"
	if got := string(AppendDiskstats(nil, []byte(garbage), testIO)); got != "   8       0 sda 10\n" {
		t.Errorf("garbage: got %q", got)
	}
}

// TestAppendKeepsDst: the Append renderers add to dst and leave what it
// held, whatever path they take (the host's file unchanged included), so a
// caller may render into a reused buffer.
func TestAppendKeepsDst(t *testing.T) {
	m := Memory{Limit: 512 * miB, Usage: 100 * miB, Stat: baseStat, SwapAccounting: true, SwapLimit: giB}
	for _, tc := range []struct {
		name   string
		render func(dst []byte) []byte
	}{
		{"meminfo", func(dst []byte) []byte { return AppendMeminfo(dst, fixture(t, "meminfo"), m) }},
		{"meminfo without MemTotal", func(dst []byte) []byte { return AppendMeminfo(dst, []byte("Cached: 1 kB\n"), m) }},
		{"cpuinfo", func(dst []byte) []byte { return AppendCpuinfo(dst, fixture(t, "cpuinfo-4cpu"), []int{1, 3}) }},
		{"cpuinfo no cpus", func(dst []byte) []byte { return AppendCpuinfo(dst, fixture(t, "cpuinfo-4cpu"), nil) }},
		{"stat", func(dst []byte) []byte {
			return AppendStat(dst, fixture(t, "stat-4cpu"), []int{2}, CPUUsage{Total: CPUTime{User: time.Second}})
		}},
		{"stat no cpus", func(dst []byte) []byte { return AppendStat(dst, fixture(t, "stat-4cpu"), nil, CPUUsage{}) }},
		{"diskstats", func(dst []byte) []byte { return AppendDiskstats(dst, fixture(t, "diskstats-14"), testIO) }},
		{"diskstats no I/O", func(dst []byte) []byte { return AppendDiskstats(dst, fixture(t, "diskstats-14"), nil) }},
		{"swaps", func(dst []byte) []byte { return AppendSwaps(dst, fixture(t, "swaps"), fixture(t, "meminfo-swap"), m) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			alone := tc.render(nil)
			dst := make([]byte, 0, 8)
			dst = append(dst, "prefix\n"...)
			got := tc.render(dst)
			if want := "prefix\n" + string(alone); string(got) != want {
				t.Errorf("appended to %q:\n%q\nwant the prefix and then what it renders alone:\n%q", "prefix\n", got, want)
			}
		})
	}
}
