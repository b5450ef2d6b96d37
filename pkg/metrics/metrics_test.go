package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
)

func TestListenAddress(t *testing.T) {
	for _, tc := range []struct {
		flag, want string
		bad        bool
	}{
		{"", "", false},
		{":9617", "127.0.0.1:9617", false},
		{"9617", "127.0.0.1:9617", false},
		{"127.0.0.1:9617", "127.0.0.1:9617", false},
		{"0.0.0.0:9617", "0.0.0.0:9617", false},
		{"10.1.2.3:9617", "10.1.2.3:9617", false},
		{"[::1]:9617", "[::1]:9617", false},
		{"[::]:9617", "[::]:9617", false},
		{"localhost:9617", "localhost:9617", false},
		{":0", "127.0.0.1:0", false},
		{"10.1.2.3", "", true},
		{"10.1.2.3:", "", true},
		{":notaport", "", true},
		{":99999", "", true},
		{"a:b:c", "", true},
	} {
		got, err := ListenAddress(tc.flag)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ListenAddress(%q) = %q, %v; want %q (error %v)", tc.flag, got, err, tc.want, tc.bad)
		}
	}
}

func TestCumulative(t *testing.T) {
	counts := make([]uint64, len(stats.Buckets)+1)
	counts[0], counts[3], counts[len(stats.Buckets)] = 2, 5, 1
	b, n := Cumulative(stats.Histogram{Counts: counts})
	if n != 8 {
		t.Errorf("count %d, want 8", n)
	}
	if b[stats.Buckets[0].Seconds()] != 2 || b[stats.Buckets[2].Seconds()] != 2 || b[stats.Buckets[3].Seconds()] != 7 || b[stats.Buckets[len(stats.Buckets)-1].Seconds()] != 7 {
		t.Errorf("buckets %v", b)
	}
}

// The exported text from a counters file: names, labels and values.
func TestCollect(t *testing.T) {
	dir := t.TempDir()
	region, err := stats.Create(stats.Path(dir), []string{"proc/meminfo"})
	if err != nil {
		t.Fatal(err)
	}
	defer region.Close()
	f := region.File("proc/meminfo")
	f.Observe(stats.OpOpen, 20*time.Microsecond)
	f.Observe(stats.OpRead, 20*time.Microsecond)
	f.Observe(stats.OpRead, 20*time.Microsecond)
	region.Fallback("proc/meminfo", stats.ViewError)
	region.Add(stats.WorkerDeaths, 2)
	region.Add(stats.Upgrades, 1)
	region.Set(stats.NotifyResend, 3) // supervise.ResendJournal
	if err := stats.CountHook(dir, stats.Served); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry(Source{Stats: region, StateDir: dir, Mountpoint: "/nowhere", Version: "v-test"})
	want := `
# HELP lxcfs_oci_reads_total Read requests of a served file.
# TYPE lxcfs_oci_reads_total counter
lxcfs_oci_reads_total{file="proc/meminfo"} 2
# HELP lxcfs_oci_worker_restarts_total Serving workers that died (crash, kill, out of memory) and were replaced.
# TYPE lxcfs_oci_worker_restarts_total counter
lxcfs_oci_worker_restarts_total 2
# HELP lxcfs_oci_upgrades_total Upgrades: the binary re-executed with the connection kept.
# TYPE lxcfs_oci_upgrades_total counter
lxcfs_oci_upgrades_total 1
# HELP lxcfs_oci_containers_served Running containers whose views the hook bound from this daemon's mountpoint.
# TYPE lxcfs_oci_containers_served gauge
lxcfs_oci_containers_served 0
# HELP lxcfs_oci_build_info The running lxcfs-fused build (value 1).
# TYPE lxcfs_oci_build_info gauge
lxcfs_oci_build_info{version="v-test"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "lxcfs_oci_reads_total", "lxcfs_oci_worker_restarts_total",
		"lxcfs_oci_upgrades_total", "lxcfs_oci_containers_served", "lxcfs_oci_build_info"); err != nil {
		t.Error(err)
	}
	out, err := testutil.CollectAndFormat(collector{Source{Stats: region, StateDir: dir, Version: "v"}}, expfmt.TypeTextPlain, "lxcfs_oci_host_fallbacks_total", "lxcfs_oci_hook_outcomes_total", "lxcfs_oci_request_duration_seconds", "lxcfs_oci_held_request_recovery")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`lxcfs_oci_host_fallbacks_total{file="proc/meminfo",reason="view_error"} 1`,
		`lxcfs_oci_host_fallbacks_total{file="proc/meminfo",reason="timeout"} 0`,
		`lxcfs_oci_hook_outcomes_total{outcome="served"} 1`,
		`lxcfs_oci_hook_outcomes_total{outcome="refused"} 0`,
		`lxcfs_oci_request_duration_seconds_bucket{op="read",le="2.5e-05"} 2`,
		`lxcfs_oci_request_duration_seconds_bucket{op="read",le="1e-05"} 0`,
		`lxcfs_oci_request_duration_seconds_count{op="open"} 1`,
		`lxcfs_oci_held_request_recovery{mechanism="journal"} 1`,
	} {
		if !strings.Contains(string(out), line+"\n") {
			t.Errorf("missing %s in:\n%s", line, out)
		}
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Errorf("gather: %d metrics, %v", n, err)
	}
}

// Without a counters file (counting off) the endpoint still answers.
func TestCollectWithoutStats(t *testing.T) {
	reg := NewRegistry(Source{StateDir: t.TempDir(), Version: "v"})
	if _, err := testutil.GatherAndCount(reg); err != nil {
		t.Fatal(err)
	}
}
