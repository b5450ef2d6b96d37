package view

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr string
	}{
		{in: "", want: nil},
		{in: "\n", want: nil},
		{in: "0", want: []int{0}},
		{in: "0\n", want: []int{0}},
		{in: " 0-2,5 \n", want: []int{0, 1, 2, 5}},
		{in: "0-2,5", want: []int{0, 1, 2, 5}},
		{in: "5,0-2", want: []int{0, 1, 2, 5}},
		{in: "0-3,2-5,5", want: []int{0, 1, 2, 3, 4, 5}},
		{in: "3,3,3", want: []int{3}},
		{in: "7-7", want: []int{7}},
		{in: "65535", want: []int{65535}},
		{in: "abc", wantErr: `parse cpu list "abc"`},
		{in: "1-", wantErr: "missing cpu id"},
		{in: "-1", wantErr: "missing cpu id"},
		{in: "3-1", wantErr: "range end before start"},
		{in: "0,,1", wantErr: "empty item"},
		{in: "0,", wantErr: "empty item"},
		{in: "1-2-3", wantErr: "cpu id"},
		{in: "0-7:2/4", wantErr: "cpu id"},
		{in: "+1", wantErr: "cpu id"},
		{in: "65536", wantErr: "out of range"},
		{in: "0-4294967295", wantErr: "out of range"},
		{in: "0-99999999999999999999", wantErr: "cpu id"},
	}
	for _, tc := range tests {
		got, err := ParseCPUList(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseCPUList(%q) error = %v, want containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseCPUList(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("ParseCPUList(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestParseCPUListHugeOverlaps(t *testing.T) {
	// Many overlapping full ranges must cost one range, not 1000.
	in := strings.Repeat("0-65535,", 1000) + "0"
	got, err := ParseCPUList(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxCPUs || got[0] != 0 || got[len(got)-1] != MaxCPUs-1 {
		t.Fatalf("got %d ids [%d..%d], want %d", len(got), got[0], got[len(got)-1], MaxCPUs)
	}
}

func TestFormatCPUList(t *testing.T) {
	tests := []struct {
		in   []int
		want string
	}{
		{nil, ""},
		{[]int{}, ""},
		{[]int{0}, "0"},
		{[]int{0, 1, 2, 5}, "0-2,5"},
		{[]int{0, 2, 4}, "0,2,4"},
		{[]int{5, 0, 2, 1, 1}, "0-2,5"},
		{[]int{-1, 0, 1}, "0-1"},
		{[]int{3, 4, 5, 6, 10, 11}, "3-6,10-11"},
	}
	for _, tc := range tests {
		if got := FormatCPUList(tc.in); got != tc.want {
			t.Errorf("FormatCPUList(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Round trip.
	for _, s := range []string{"0-2,5", "0", "1,3,5-9,64-127"} {
		ids, err := ParseCPUList(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := FormatCPUList(ids); got != s {
			t.Errorf("round trip %q -> %q", s, got)
		}
	}
}

func TestVisibleCPUs(t *testing.T) {
	host := []int{0, 1, 2, 3, 4, 5, 6, 7}
	tests := []struct {
		name   string
		cpuset []int
		quota  float64
		host   []int
		cfs    bool
		want   []int
	}{
		{"no cpuset: host", nil, 0, host, false, host},
		{"empty cpuset: host", []int{}, 0, host, true, host},
		{"cpuset", []int{2, 3, 5}, 0, host, false, []int{2, 3, 5}},
		{"cpuset unsorted dup", []int{5, 2, 3, 2}, 0, host, false, []int{2, 3, 5}},
		{"cpuset outside host", []int{6, 7, 8, 9}, 0, host, false, []int{6, 7}},
		{"cpuset all outside host", []int{10, 11}, 0, host, false, nil},
		{"no host list: no filter", []int{10, 11}, 0, nil, false, []int{10, 11}},
		{"quota ignored without cfs", []int{2, 3, 5}, 1, host, false, []int{2, 3, 5}},
		{"quota 0.5 -> 1", []int{2, 3, 5}, 0.5, host, true, []int{2}},
		{"quota 1 -> 1", []int{2, 3, 5}, 1, host, true, []int{2}},
		{"quota 1.5 -> 2", []int{2, 3, 5}, 1.5, host, true, []int{2, 3}},
		{"quota above cpuset", []int{2, 3, 5}, 7, host, true, []int{2, 3, 5}},
		{"quota tiny", nil, 0.001, host, true, []int{0}},
		{"quota 0 = none", nil, 0, host, true, host},
		{"quota negative = none", nil, -1, host, true, host},
		{"quota NaN = none", nil, math.NaN(), host, true, host},
		{"quota +Inf = none", nil, math.Inf(1), host, true, host},
		{"quota over host", nil, 2.5, host, true, []int{0, 1, 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := VisibleCPUs(tc.cpuset, tc.quota, tc.host, tc.cfs)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("VisibleCPUs = %v, want %v", got, tc.want)
			}
		})
	}
	// The result must not alias the caller's slices.
	got := VisibleCPUs(nil, 0, host, false)
	got[0] = 99
	if host[0] != 0 {
		t.Fatal("VisibleCPUs result aliases hostCPUs")
	}
}

func TestOnline(t *testing.T) {
	tests := []struct {
		cpus []int
		want string
	}{
		{[]int{0, 1, 2, 5}, "0-2,5\n"},
		{[]int{7}, "7\n"},
		{[]int{4, 3}, "3-4\n"},
	}
	for _, tc := range tests {
		if got := string(Online(tc.cpus)); got != tc.want {
			t.Errorf("Online(%v) = %q, want %q", tc.cpus, got, tc.want)
		}
	}
	if got := Online(nil); got != nil {
		t.Errorf("Online(nil) = %q, want nil", got)
	}
	if got := Online([]int{}); got != nil {
		t.Errorf("Online(empty) = %q, want nil", got)
	}
}

func TestCPUDirHidden(t *testing.T) {
	cpus := []int{1, 3}
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"cpu0", true}, {"cpu1", false}, {"cpu2", true}, {"cpu3", false}, {"cpu70000", true},
		{"cpu", false}, {"cpufreq", false}, {"cpuidle", false}, {"cpu01", false}, {"cpu1a", false},
		{"online", false}, {"vulnerabilities", false}, {"kernel_max", false},
	} {
		if got := CPUDirHidden(tc.name, cpus); got != tc.want {
			t.Errorf("CPUDirHidden(%q, %v) = %v, want %v", tc.name, cpus, got, tc.want)
		}
	}
	if CPUDirHidden("cpu5", nil) {
		t.Errorf("no visible CPUs known: cpu5 hidden, want the host's entries")
	}
}
