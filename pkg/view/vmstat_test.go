package view

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// parseVmstat maps each "name value" line to value and keeps the order.
func parseVmstat(t *testing.T, b []byte) (map[string]uint64, []string) {
	t.Helper()
	vals := map[string]uint64{}
	var order []string
	for line := range strings.SplitSeq(strings.TrimSuffix(string(b), "\n"), "\n") {
		name, v, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("vmstat line without value: %q", line)
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("vmstat line %q: %v", line, err)
		}
		vals[name] = n
		order = append(order, name)
	}
	return vals, order
}

func TestVmstat(t *testing.T) {
	host := fixture(t, "vmstat")
	hostVals, hostOrder := parseVmstat(t, host)
	tests := []struct {
		name string
		st   CgroupMemStat
		page uint64
		want map[string]uint64
		// host lists lines that must stay the host's although memory.stat
		// has a key of a similar name.
		host []string
	}{
		{
			name: "v2",
			st: CgroupMemStat{V2: true, Values: map[string]uint64{
				"anon": 100 << 20, "file": 150 << 20, "file_mapped": 20 << 20, "file_dirty": 4096,
				"shmem": 4 << 20, "inactive_anon": 8 << 20, "active_file": 90 << 20,
				"slab_reclaimable": 6 << 20, "kernel_stack": 245760, "pagetables": 1 << 20,
				"pgfault": 38476, "pgmajfault": 12, "pswpin": 3, "pswpout": 7,
				"workingset_refault_file": 12, "pgscan": 5, "anon_thp": 2 << 20,
			}},
			page: 4096,
			want: map[string]uint64{
				"nr_anon_pages": 25600, "nr_file_pages": 38400, "nr_mapped": 5120, "nr_dirty": 1,
				"nr_shmem": 1024, "nr_inactive_anon": 2048, "nr_zone_inactive_anon": 2048,
				"nr_active_file": 23040, "nr_zone_active_file": 23040,
				"nr_slab_reclaimable": 1536, "nr_kernel_stack": 240, "nr_page_table_pages": 256,
				"pgfault": 38476, "pgmajfault": 12, "pswpin": 3, "pswpout": 7,
				"workingset_refault_file": 12,
			},
			host: []string{"nr_anon_transparent_hugepages", "pgpgin", "nr_free_pages", "nr_slab_unreclaimable", "workingset_refault_anon"},
		},
		{
			name: "v1",
			st: CgroupMemStat{Values: map[string]uint64{
				"cache": 100 << 20, "rss": 128 << 20, "mapped_file": 20 << 20, "dirty": 225280,
				"shmem": 4 << 20, "active_anon": 120 << 20, "pgfault": 1334530, "pgmajfault": 728,
				"pgpgin": 1013858, "workingset_refault_file": 7340,
				// v1 has no slab keys of vmstat's meaning: a stray one is ignored.
				"slab_reclaimable": 1 << 20,
			}},
			page: 4096,
			want: map[string]uint64{
				"nr_file_pages": 25600, "nr_anon_pages": 32768, "nr_mapped": 5120, "nr_dirty": 55,
				"nr_shmem": 1024, "nr_active_anon": 30720, "nr_zone_active_anon": 30720,
				"pgfault": 1334530, "pgmajfault": 728, "workingset_refault_file": 7340,
			},
			host: []string{"pgpgin", "pswpin", "pswpout", "nr_slab_reclaimable", "nr_kernel_stack"},
		},
		{
			name: "64 KiB pages",
			st:   CgroupMemStat{V2: true, Values: map[string]uint64{"anon": 1 << 20}},
			page: 64 << 10,
			want: map[string]uint64{"nr_anon_pages": 16},
		},
		{
			name: "empty memory.stat: the host's file",
			st:   CgroupMemStat{V2: true},
			page: 4096,
			want: map[string]uint64{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := AppendVmstat([]byte("prefix:"), host, tc.st, tc.page)
			rest, ok := bytes.CutPrefix(out, []byte("prefix:"))
			if !ok {
				t.Fatalf("dst not kept: %q", out[:20])
			}
			got, order := parseVmstat(t, rest)
			if strings.Join(order, ",") != strings.Join(hostOrder, ",") {
				t.Fatalf("line order differs from the host's")
			}
			for name, v := range got {
				want, replaced := tc.want[name]
				if !replaced {
					want = hostVals[name]
				}
				if v != want {
					t.Errorf("%s = %d, want %d (replaced: %v)", name, v, want, replaced)
				}
			}
			for name := range tc.want {
				if _, ok := got[name]; !ok {
					t.Errorf("%s missing from the output", name)
				}
			}
			for _, name := range tc.host {
				if got[name] != hostVals[name] {
					t.Errorf("%s = %d, want the host's %d", name, got[name], hostVals[name])
				}
			}
			if len(tc.want) == 0 && !bytes.Equal(rest, host) {
				t.Errorf("nothing to replace, yet the output differs from the host's file")
			}
		})
	}
}

func TestVmstatOddLines(t *testing.T) {
	host := []byte("pgfault 5\ngarbage\nnr_dirty\npgmajfault 1")
	st := CgroupMemStat{V2: true, Values: map[string]uint64{"pgfault": 9, "pgmajfault": 2, "file_dirty": 4096}}
	got := string(AppendVmstat(nil, host, st, 4096))
	want := "pgfault 9\ngarbage\nnr_dirty\npgmajfault 2\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
