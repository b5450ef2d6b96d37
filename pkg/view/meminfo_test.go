package view

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
)

const (
	kiB = 1024
	miB = 1024 * kiB
	giB = 1024 * miB
)

// virtualised lists the meminfo keys Meminfo may rewrite; all others must be
// the host's bytes.
var virtualised = []string{
	"MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached",
	"Active", "Inactive", "Active(anon)", "Inactive(anon)", "Active(file)",
	"Inactive(file)", "Unevictable", "Shmem", "AnonPages", "Mapped",
	"Slab", "SReclaimable", "SUnreclaim", "SwapTotal", "SwapFree",
}

var baseStat = MemStat{
	ActiveAnon:   300 * miB,
	InactiveAnon: 100 * miB,
	ActiveFile:   100 * miB,
	InactiveFile: 50 * miB,
	Unevictable:  4 * miB,
	Shmem:        20 * miB,
	Cache:        170 * miB,
	Mapped:       10 * miB,
}

func TestMeminfo(t *testing.T) {
	host := fixture(t, "meminfo-swap") // MemTotal 16314352 kB, SwapTotal 8388604 kB
	v2Stat := baseStat
	v2Stat.HasSlab = true
	v2Stat.Slab = 30 * miB
	v2Stat.SlabReclaimable = 20 * miB
	v2Stat.SlabUnreclaimable = 10 * miB
	shmemHeavy := baseStat
	shmemHeavy.Shmem = 500 * miB
	bigFiles := baseStat
	bigFiles.ActiveFile = 900 * miB

	tests := []struct {
		name string
		m    Memory
		want map[string]uint64
		host []string // keys that must keep the host's line
	}{
		{
			name: "unlimited v1",
			m:    Memory{Limit: math.MaxUint64, Usage: 1 * giB, Stat: baseStat},
			want: map[string]uint64{
				"MemTotal": 16314352, "MemFree": 16314352 - 1048576,
				"MemAvailable": 16314352 - 1048576 + 153600,
				"Buffers":      0, "Cached": 174080, "SwapCached": 0,
				"Active": 409600, "Inactive": 153600,
				"Active(anon)": 307200, "Inactive(anon)": 102400,
				"Active(file)": 102400, "Inactive(file)": 51200,
				"Unevictable": 4096, "Shmem": 20480,
				"AnonPages": 409600 - 20480, "Mapped": 10240,
				"SwapTotal": 0, "SwapFree": 0,
				"Slab": 0, "SReclaimable": 0, "SUnreclaim": 0,
			},
			host: []string{"Mlocked", "KReclaimable", "Committed_AS", "VmallocTotal", "HugePages_Total"},
		},
		{
			name: "limit above host total but not max",
			m:    Memory{Limit: 64 * giB, Usage: 0, Stat: MemStat{}},
			want: map[string]uint64{"MemTotal": 16314352, "MemFree": 16314352, "MemAvailable": 16314352},
		},
		{
			name: "limited v1",
			m:    Memory{Limit: 1 * giB, Usage: 256 * miB, Stat: baseStat},
			want: map[string]uint64{
				"MemTotal": 1048576, "MemFree": 786432,
				"MemAvailable": 786432 + 153600, "Mapped": 10240,
				"Slab": 0, "SReclaimable": 0, "SUnreclaim": 0,
			},
		},
		{
			name: "usage above limit does not wrap",
			m:    Memory{Limit: 512 * miB, Usage: 600 * miB, Stat: baseStat},
			want: map[string]uint64{"MemTotal": 524288, "MemFree": 0, "MemAvailable": 153600},
		},
		{
			name: "available capped at total",
			m:    Memory{Limit: 1 * giB, Usage: 100 * miB, Stat: bigFiles},
			want: map[string]uint64{"MemTotal": 1048576, "MemFree": 1048576 - 102400, "MemAvailable": 1048576},
		},
		{
			name: "v2 slab",
			m:    Memory{Limit: 1 * giB, Usage: 256 * miB, Stat: v2Stat},
			want: map[string]uint64{
				"MemAvailable": 786432 + 153600 + 20480,
				"Slab":         30720, "SReclaimable": 20480, "SUnreclaim": 10240,
				"Mapped": 10240,
			},
			host: []string{"KReclaimable"},
		},
		{
			name: "anon pages floor at zero",
			m:    Memory{Limit: 1 * giB, Usage: 256 * miB, Stat: shmemHeavy},
			want: map[string]uint64{"AnonPages": 0, "Shmem": 512000},
		},
		{
			name: "swap without accounting",
			m:    Memory{Limit: 1 * giB, SwapAccounting: false, SwapLimit: 1 * giB, SwapUsage: 1 * miB},
			want: map[string]uint64{"SwapTotal": 0, "SwapFree": 0},
		},
		{
			name: "swap limited",
			m:    Memory{Limit: 1 * giB, SwapAccounting: true, SwapLimit: 1 * giB, SwapUsage: 256 * miB},
			want: map[string]uint64{"SwapTotal": 1048576, "SwapFree": 786432},
		},
		{
			name: "swap unlimited: host swap",
			m:    Memory{Limit: 1 * giB, SwapAccounting: true, SwapLimit: math.MaxUint64, SwapUsage: 1 * giB},
			want: map[string]uint64{"SwapTotal": 8388604, "SwapFree": 8388604 - 1048576},
		},
		{
			name: "swap limit larger than host",
			m:    Memory{Limit: 1 * giB, SwapAccounting: true, SwapLimit: 100 * giB, SwapUsage: 9 * giB},
			want: map[string]uint64{"SwapTotal": 8388604, "SwapFree": 0},
		},
		{
			name: "swap usage above limit",
			m:    Memory{Limit: 1 * giB, SwapAccounting: true, SwapLimit: 100 * miB, SwapUsage: 200 * miB},
			want: map[string]uint64{"SwapTotal": 102400, "SwapFree": 0},
		},
		{
			name: "swap accounting with zero limit",
			m:    Memory{Limit: 1 * giB, SwapAccounting: true, SwapLimit: 0},
			want: map[string]uint64{"SwapTotal": 0, "SwapFree": 0},
		},
	}
	hostVals, hostOrder := parseMeminfoOut(t, host)
	hostLines := meminfoLinesByKey(host)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := AppendMeminfo(nil, host, tc.m)
			got, order := parseMeminfoOut(t, out)
			if !slices.Equal(order, hostOrder) {
				t.Fatalf("key order changed:\n got %v\nwant %v", order, hostOrder)
			}
			for k, want := range tc.want {
				if got[k] != want {
					t.Errorf("%s = %d, want %d", k, got[k], want)
				}
			}
			if got["MemFree"] > got["MemTotal"] || got["MemAvailable"] > got["MemTotal"] {
				t.Errorf("MemFree %d / MemAvailable %d above MemTotal %d", got["MemFree"], got["MemAvailable"], got["MemTotal"])
			}
			if got["SwapFree"] > got["SwapTotal"] {
				t.Errorf("SwapFree %d above SwapTotal %d", got["SwapFree"], got["SwapTotal"])
			}
			outLines := meminfoLinesByKey(out)
			for _, k := range tc.host {
				if outLines[k] != hostLines[k] {
					t.Errorf("%s line = %q, want host's %q", k, outLines[k], hostLines[k])
				}
			}
			for k, line := range hostLines {
				if !slices.Contains(virtualised, k) && outLines[k] != line {
					t.Errorf("pass-through line %s = %q, want %q", k, outLines[k], line)
				}
			}
			_ = hostVals
		})
	}
}

func meminfoLinesByKey(b []byte) map[string]string {
	m := map[string]string{}
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok {
			m[k] = line
		}
	}
	return m
}

func TestMeminfoAlignment(t *testing.T) {
	host := fixture(t, "meminfo")
	out := AppendMeminfo(nil, host, Memory{Limit: 512 * miB, Usage: 100 * miB, Stat: baseStat})
	want := strings.Join([]string{
		"MemTotal:         524288 kB",
		"MemFree:          421888 kB",
		"MemAvailable:     524288 kB", // 421888+153600 capped at MemTotal
		"Buffers:               0 kB",
	}, "\n") + "\n"
	if !bytes.HasPrefix(out, []byte(want)) {
		t.Fatalf("output starts\n%s\nwant\n%s", out[:len(want)], want)
	}
	// Every line keeps the host's width since all values fit in 8 digits.
	hl := strings.Split(string(host), "\n")
	ol := strings.Split(string(out), "\n")
	if len(hl) != len(ol) {
		t.Fatalf("line count %d, want %d", len(ol), len(hl))
	}
	for i := range hl {
		if len(hl[i]) != len(ol[i]) {
			t.Errorf("line %d width changed: %q -> %q", i, hl[i], ol[i])
		}
	}
}

func TestMeminfoOverflowingColumn(t *testing.T) {
	// The kernel pads values to 8 digits; a longer host value pushed the
	// column right, a shorter replacement goes back to the kernel layout.
	host := []byte("MemTotal:       134217728 kB\nMemFree:        100000000 kB\nSwapTotal:             0 kB\n")
	out := string(AppendMeminfo(nil, host, Memory{Limit: 2 * giB, Usage: 1 * giB}))
	want := "MemTotal:        2097152 kB\nMemFree:         1048576 kB\nSwapTotal:             0 kB\n"
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
	// A replacement longer than the host's value grows to the right.
	host = []byte("MemTotal: 5 kB\nMemFree: 5 kB\n")
	out = string(AppendMeminfo(nil, host, Memory{Limit: math.MaxUint64}))
	if out != "MemTotal: 5 kB\nMemFree: 5 kB\n" {
		t.Fatalf("got %q", out)
	}
}

func TestMeminfoGarbage(t *testing.T) {
	for _, host := range []string{"", "garbage", "MemFree: 12 kB\n", "\x00\xff:\n:::\n"} {
		out := AppendMeminfo(nil, []byte(host), Memory{Limit: 1 * giB})
		if string(out) != host {
			t.Errorf("AppendMeminfo(nil, %q) = %q, want host unchanged", host, out)
		}
	}
	// Unparseable lines pass through around recomputed ones.
	host := "MemTotal:    100000 kB\nweird line\nMemFree: lots kB\nCached:   5 kB"
	out := string(AppendMeminfo(nil, []byte(host), Memory{Limit: 10 * miB, Stat: MemStat{Cache: 2 * kiB}}))
	want := "MemTotal:     10240 kB\nweird line\nMemFree: lots kB\nCached:   2 kB"
	if out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}

func TestSwaps(t *testing.T) {
	header := "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
	swapMeminfo := fixture(t, "meminfo-swap") // SwapTotal 8388604
	tests := []struct {
		name       string
		swaps, mem []byte
		m          Memory
		want       string
	}{
		{
			name:  "no accounting: header only",
			swaps: fixture(t, "swaps-device"), mem: swapMeminfo,
			m:    Memory{SwapAccounting: false, SwapLimit: giB},
			want: header,
		},
		{
			name:  "host without swap: header only",
			swaps: fixture(t, "swaps"), mem: fixture(t, "meminfo"),
			m:    Memory{SwapAccounting: true, SwapLimit: math.MaxUint64},
			want: header,
		},
		{
			name:  "limited",
			swaps: fixture(t, "swaps-device"), mem: swapMeminfo,
			m:    Memory{SwapAccounting: true, SwapLimit: giB, SwapUsage: 256 * miB},
			want: header + "none                                    virtual\t\t1048576\t\t262144\t\t0\n",
		},
		{
			name:  "unlimited: host total, big values one tab",
			swaps: fixture(t, "swaps-device"), mem: []byte("MemTotal: 1 kB\nSwapTotal: 20000000 kB\n"),
			m:    Memory{SwapAccounting: true, SwapLimit: math.MaxUint64, SwapUsage: 15000000 * kiB},
			want: header + "none                                    virtual\t\t20000000\t15000000\t0\n",
		},
		{
			name:  "host total from swaps when meminfo lacks it",
			swaps: fixture(t, "swaps-device"), mem: nil,
			m:    Memory{SwapAccounting: true, SwapLimit: math.MaxUint64},
			want: header + "none                                    virtual\t\t8388604\t\t0\t\t0\n",
		},
		{
			name:  "missing header",
			swaps: nil, mem: swapMeminfo,
			m:    Memory{SwapAccounting: true, SwapLimit: 1 * miB},
			want: header + "none                                    virtual\t\t1024\t\t0\t\t0\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(AppendSwaps(nil, tc.swaps, tc.mem, tc.m)); got != tc.want {
				t.Fatalf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestShowsSwap(t *testing.T) {
	for _, tc := range []struct {
		meminfo string
		want    bool
	}{
		{"MemTotal: 100 kB\nSwapTotal: 2048 kB\n", true},
		{"MemTotal: 100 kB\nSwapTotal:       0 kB\n", false},
		{"MemTotal: 100 kB\n", false},
		{"", false},
	} {
		if got := ShowsSwap([]byte(tc.meminfo)); got != tc.want {
			t.Errorf("ShowsSwap(%q) = %v, want %v", tc.meminfo, got, tc.want)
		}
		// What it promises: without it, no swap figure can show.
		if !tc.want {
			m := Memory{Limit: giB, SwapAccounting: true, SwapLimit: giB, SwapUsage: miB}
			without := m
			without.SwapAccounting, without.SwapLimit, without.SwapUsage = false, 0, 0
			host := []byte(tc.meminfo + "SwapFree: 0 kB\n")
			if a, b := AppendMeminfo(nil, host, m), AppendMeminfo(nil, host, without); string(a) != string(b) {
				t.Errorf("host %q: meminfo differs with and without swap figures:\n%s\n%s", tc.meminfo, a, b)
			}
		}
	}
}
