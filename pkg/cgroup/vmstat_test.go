package cgroup

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// TestMemStatValues renders /proc/vmstat from the v1 and v2 fixture trees:
// the lines memory.stat answers are the container's, in pages, and the v1
// keys are the hierarchical ones.
func TestMemStatValues(t *testing.T) {
	host := "nr_anon_pages 999\nnr_file_pages 999\nnr_kernel_stack 999\npgpgin 999\npgfault 999\npgmajfault 999\npswpin 999\npswpout 999\nworkingset_refault_file 999\nnr_free_pages 999\n"
	for _, tc := range []struct {
		name string
		g    *Group
		want string
	}{
		{
			name: "v1 total_ keys",
			g:    v1Group(t, v1Root, "/machine/ctr1"),
			// total_rss 134217728, total_cache 104857600, total_pgfault 1334530,
			// total_pgmajfault 728; v1 has no kernel stack or swap-in counts.
			want: "nr_anon_pages 32768\nnr_file_pages 25600\nnr_kernel_stack 999\npgpgin 999\npgfault 1334530\npgmajfault 728\npswpin 999\npswpout 999\nworkingset_refault_file 999\nnr_free_pages 999\n",
		},
		{
			name: "v2",
			g:    v2Group(t, v2Root, "/machine.slice/ctr1"),
			want: "nr_anon_pages 25600\nnr_file_pages 38400\nnr_kernel_stack 240\npgpgin 999\npgfault 38476\npgmajfault 12\npswpin 3\npswpout 7\nworkingset_refault_file 12\nnr_free_pages 999\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := tc.g.MemStatValues()
			if err != nil {
				t.Fatal(err)
			}
			if got := string(view.AppendVmstat(nil, []byte(host), st, 4096)); got != tc.want {
				t.Errorf("vmstat:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestMemStatValuesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file, content string
		v2, remove          bool
		inErr               string
		notExist            bool
	}{
		{name: "v1 only local keys", file: "memory/machine/ctr1/memory.stat", content: "pgfault 5\n", inErr: "no parsable line"},
		{name: "v1 empty", file: "memory/machine/ctr1/memory.stat", content: "\n", inErr: "empty"},
		{name: "v2 garbage", v2: true, file: "machine.slice/ctr1/memory.stat", content: "what\n", inErr: "no parsable line"},
		{name: "v2 missing", v2: true, file: "machine.slice/ctr1/memory.stat", remove: true, inErr: "memory.stat", notExist: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := damagedGroup(t, tc.v2, tc.file, tc.content, tc.remove)
			_, err := g.MemStatValues()
			if err == nil || !strings.Contains(err.Error(), tc.inErr) {
				t.Fatalf("MemStatValues() error = %v, want one mentioning %q", err, tc.inErr)
			}
			if errors.Is(err, fs.ErrNotExist) != tc.notExist {
				t.Errorf("errors.Is(%v, ErrNotExist) = %v, want %v", err, !tc.notExist, tc.notExist)
			}
		})
	}
}
