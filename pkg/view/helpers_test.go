package view

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

// parseMeminfoOut maps every "Key: N ..." line to N and records key order.
func parseMeminfoOut(t testing.TB, b []byte) (map[string]uint64, []string) {
	t.Helper()
	vals := map[string]uint64{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			t.Fatalf("meminfo line without colon: %q", sc.Text())
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			t.Fatalf("meminfo line without value: %q", sc.Text())
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			t.Fatalf("meminfo line %q: %v", sc.Text(), err)
		}
		vals[k] = n
		order = append(order, k)
	}
	return vals, order
}

// parseStatOut returns the cpu lines' fields ("cpu", "cpu0", ...) and the
// non-cpu lines verbatim.
func parseStatOut(t testing.TB, b []byte) (map[string][]uint64, []string, []string) {
	t.Helper()
	cpu := map[string][]uint64{}
	var cpuOrder, other []string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "cpu") {
			other = append(other, line)
			continue
		}
		var vals []uint64
		for _, s := range f[1:] {
			n, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				t.Fatalf("stat line %q: %v", line, err)
			}
			vals = append(vals, n)
		}
		cpu[f[0]] = vals
		cpuOrder = append(cpuOrder, f[0])
	}
	return cpu, cpuOrder, other
}

func nonCPULines(b []byte) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if !strings.HasPrefix(line, "cpu") {
			out = append(out, line)
		}
	}
	return out
}

func sum(v []uint64) uint64 {
	var s uint64
	for _, x := range v {
		s += x
	}
	return s
}
