package view

import (
	"bytes"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var processorRE = regexp.MustCompile(`(?m)^processor\t: (\d+)$`)

func processorIDs(b []byte) []string {
	var ids []string
	for _, m := range processorRE.FindAllSubmatch(b, -1) {
		ids = append(ids, string(m[1]))
	}
	return ids
}

// blockFor returns host's block for processor id with its number line
// stripped, to compare with a renumbered output block.
func blocks(b []byte) []string {
	var out []string
	for _, blk := range strings.Split(string(b), "\n\n") {
		if strings.HasPrefix(blk, "processor") {
			_, body, _ := strings.Cut(blk, "\n")
			out = append(out, body)
		}
	}
	return out
}

func TestCpuinfoX86(t *testing.T) {
	host := fixture(t, "cpuinfo-4cpu")
	hostBlocks := blocks(host)
	tests := []struct {
		cpus     []int
		wantHost []int // host blocks expected, in order
	}{
		{[]int{0, 1, 2, 3}, []int{0, 1, 2, 3}},
		{[]int{1, 3}, []int{1, 3}},
		{[]int{3, 2}, []int{2, 3}},
		{[]int{2}, []int{2}},
		{[]int{2, 9}, []int{2}}, // 9 is not a host CPU
	}
	for _, tc := range tests {
		out := AppendCpuinfo(nil, host, tc.cpus)
		var wantIDs []string
		for _, id := range tc.wantHost {
			wantIDs = append(wantIDs, string(rune('0'+id)))
		}
		if got := processorIDs(out); !slices.Equal(got, wantIDs) {
			t.Errorf("cpus %v: processor ids %v, want %v", tc.cpus, got, wantIDs)
		}
		gotBlocks := blocks(out)
		if len(gotBlocks) != len(tc.wantHost) {
			t.Fatalf("cpus %v: %d blocks, want %d", tc.cpus, len(gotBlocks), len(tc.wantHost))
		}
		for i, h := range tc.wantHost {
			if gotBlocks[i] != hostBlocks[h] {
				t.Errorf("cpus %v: block %d differs from host block %d", tc.cpus, i, h)
			}
		}
		if !bytes.HasSuffix(out, []byte("\n\n")) {
			t.Errorf("cpus %v: output does not end with the block separator", tc.cpus)
		}
		// core id 3 identifies host block 3.
		if slices.Contains(tc.wantHost, 3) != bytes.Contains(out, []byte("core id\t\t: 3\n")) {
			t.Errorf("cpus %v: block 3 presence wrong", tc.cpus)
		}
	}
	if got := AppendCpuinfo(nil, host, nil); !bytes.Equal(got, host) {
		t.Error("nil cpus: host not returned unchanged")
	}
	if got := AppendCpuinfo(nil, host, []int{}); !bytes.Equal(got, host) {
		t.Error("empty cpus: host not returned unchanged")
	}
}

func TestCpuinfoRealHost(t *testing.T) {
	host := fixture(t, "cpuinfo")
	n := len(processorIDs(host))
	out := AppendCpuinfo(nil, host, []int{n - 1})
	if got := processorIDs(out); !slices.Equal(got, []string{strconv.Itoa(n - 1)}) {
		t.Fatalf("processor ids %v, want [%d]", got, n-1)
	}
	hb, ob := blocks(host), blocks(out)
	if len(ob) != 1 || ob[0] != hb[n-1] {
		t.Fatalf("kept block is not the host's last block")
	}
}

func TestCpuinfoARM(t *testing.T) {
	host := fixture(t, "cpuinfo-arm")
	out := string(AppendCpuinfo(nil, host, []int{1, 3}))
	if got := processorIDs([]byte(out)); !slices.Equal(got, []string{"1", "3"}) {
		t.Fatalf("processor ids %v, want the host's [1 3]", got)
	}
	if strings.Count(out, "model name") != 2 {
		t.Errorf("want 2 blocks, got:\n%s", out)
	}
	trailer := "\nHardware\t: BCM2835\nRevision\t: a02082\nSerial\t\t: 00000000a1b2c3d4\nModel\t\t: Raspberry Pi 3 Model B Rev 1.2\n"
	if !strings.HasSuffix(out, "CPU revision\t: 4\n"+trailer) {
		t.Errorf("trailer not passed through after the last kept block:\n%s", out)
	}
}

func TestCpuinfoOldARM64(t *testing.T) {
	host := fixture(t, "cpuinfo-arm64-old")
	out := string(AppendCpuinfo(nil, host, []int{0, 2}))
	want := "Processor\t: AArch64 Processor rev 4 (aarch64)\nprocessor\t: 0\nprocessor\t: 2\n" +
		"Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32\n"
	if !strings.HasPrefix(out, want) {
		t.Fatalf("got\n%s\nwant prefix\n%s", out, want)
	}
	if !strings.HasSuffix(out, "Hardware\t: Qualcomm Technologies, Inc MSM8953\n") {
		t.Errorf("trailer lost:\n%s", out)
	}
	// Keeping the last CPU keeps the blank line closing the list.
	out = string(AppendCpuinfo(nil, host, []int{3}))
	if !strings.Contains(out, "processor\t: 3\n\nFeatures") {
		t.Errorf("got\n%s", out)
	}
}

func TestCpuinfoGarbage(t *testing.T) {
	// A repeated id is shown once.
	if got := string(AppendCpuinfo(nil, []byte("processor\t: 1\na\n\nprocessor\t: 1\nb\n\n"), []int{1})); got != "processor\t: 1\na\n\n" {
		t.Errorf("repeated id: got %q", got)
	}
	for _, host := range []string{"", "\n\n", "processor\t: x\n", "processor : 99999999999999999999999\n", "no blocks here\n"} {
		if got := string(AppendCpuinfo(nil, []byte(host), []int{0})); got != host {
			t.Errorf("AppendCpuinfo(nil, %q) = %q, want pass-through", host, got)
		}
	}
}
