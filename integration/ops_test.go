package integration

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// statusJSON is the part of `lxcfs-fused status --json` the tests check.
type statusJSON struct {
	Pid        int    `json:"pid"`
	Worker     int    `json:"worker"`
	Generation int    `json:"generation"`
	Mountpoint string `json:"mountpoint"`
	Version    string `json:"version"`
	Metrics    string `json:"metrics_address"`
	Kernel     struct {
		NotifyResend string   `json:"notify_resend"`
		InitFlags    []string `json:"init_flags"`
	} `json:"kernel"`
	Containers int               `json:"containers_served"`
	Counters   map[string]uint64 `json:"counters"`
	Files      []struct {
		Name  string `json:"file"`
		Opens uint64 `json:"opens"`
		Reads uint64 `json:"reads"`
	} `json:"files"`
	Hook map[string]uint64 `json:"hook_outcomes"`
}

func fusedStatus(t *testing.T, d *daemon) statusJSON {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, fusedBin, "status", "--json", "--state-dir", d.stateDir).Output()
	if err != nil {
		t.Fatalf("lxcfs-fused status --json: %v\n%s", err, stderrOf(err))
	}
	var s statusJSON
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return s
}

// scrape fetches /metrics and returns each sample line's value by its
// name and labels as printed, e.g. `lxcfs_oci_reads_total{file="proc/meminfo"}`.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s %v\n%s", addr, resp.Status, err, body)
	}
	samples := map[string]float64{}
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// waitMetrics scrapes until ok holds, for up to 10s.
func waitMetrics(t *testing.T, addr, what string, ok func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := scrape(t, addr)
		if ok(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed %s within 30s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOpsStatusAndMetrics: a container reads its views through a daemon
// started with metrics on a bare port; the version is on the binaries, in
// the logs and in status; status and /metrics count the container, its
// reads and the hook's outcome; the serving worker killed with SIGKILL is
// counted as a restart, and no count is lost or reset with it.
func TestOpsStatusAndMetrics(t *testing.T) {
	requireRoot(t)
	for _, bin := range []string{fusedBin, hookBin} {
		out, err := exec.Command(bin, "--version").Output()
		if err != nil || !strings.Contains(string(out), "version "+testVersion) {
			t.Errorf("%s --version: %q %v, want version %s", bin, out, err, testVersion)
		}
	}

	// A bare port binds loopback only.
	d := startDaemon(t, fusedBin, "", "--metrics-address", ":0")
	st := fusedStatus(t, d)
	if !strings.HasPrefix(st.Metrics, "127.0.0.1:") {
		t.Fatalf("--metrics-address :0 listens on %q, want 127.0.0.1 only", st.Metrics)
	}
	if st.Version != testVersion || st.Mountpoint != d.mp || st.Pid != d.cmd.Process.Pid || st.Worker <= 0 || st.Generation != 0 {
		t.Errorf("status: %+v; want version %s, mountpoint %s, supervisor %d, a worker, generation 0", st, testVersion, d.mp, d.cmd.Process.Pid)
	}
	if st.Kernel.NotifyResend == "" || len(st.Kernel.InitFlags) == 0 {
		t.Errorf("status shows no kernel features: %+v", st.Kernel)
	}
	if log := readFile(t, d.logPath); !strings.Contains(log, `msg=serving version=`+testVersion) || !strings.Contains(log, `msg="worker serving" worker=`+strconv.Itoa(st.Worker)+` version=`+testVersion) {
		t.Errorf("daemon log does not carry the version at start:\n%s", log)
	}

	c := runDetached(t, d.mp, d.stateDir, `grep MemTotal /proc/meminfo; echo READY
while [ ! -e /tmp/stop ]; do cat /proc/meminfo >/dev/null; sleep 0.05; done; echo DONE`)
	waitOutput(t, c, func(out string) bool { return strings.Contains(out, "READY") })
	if out := c.output(t); !regexp.MustCompile(`MemTotal: +65536 kB`).MatchString(out) {
		t.Fatalf("the container does not read its own view:\n%s", out)
	}
	if log := readHookLog(t, c.hookLog); !strings.Contains(log, "version="+testVersion) {
		t.Errorf("hook log does not carry the version:\n%s", log)
	}

	const meminfoReads = `lxcfs_oci_reads_total{file="proc/meminfo"}`
	// Its opens do not reach the daemon (no OPEN on the containers' own
	// connection); its reads do, once per TTL. The daemon that ran the
	// hook's create-runtime counts its outcome once it has answered.
	before := waitMetrics(t, st.Metrics, "the container's reads and its hook's outcome", func(m map[string]float64) bool {
		return m[meminfoReads] >= 2 && m[`lxcfs_oci_hook_outcomes_total{outcome="served"}`] >= 1
	})
	for name, want := range map[string]float64{
		`lxcfs_oci_build_info{version="` + testVersion + `"}`: 1,
		`lxcfs_oci_containers_served`:                         1,
		`lxcfs_oci_hook_outcomes_total{outcome="served"}`:     1,
		`lxcfs_oci_worker_restarts_total`:                     0,
		`lxcfs_oci_worker_starts_total`:                       1,
		`lxcfs_oci_upgrades_total`:                            0,
	} {
		if got, ok := before[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if n := before[`lxcfs_oci_request_duration_seconds_count{op="read"}`]; n < before[meminfoReads] {
		t.Errorf("read latency histogram counts %v reads, fewer than meminfo's %v", n, before[meminfoReads])
	}

	st = fusedStatus(t, d)
	if st.Containers != 1 || st.Hook["served"] != 1 {
		t.Errorf("status: %d containers served, hook outcomes %v; want 1 and 1 served", st.Containers, st.Hook)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	human, err := exec.CommandContext(ctx, fusedBin, "--state-dir", d.stateDir, "status").Output()
	if err != nil || !regexp.MustCompile(`containers served +1\n`).Match(human) || !strings.Contains(string(human), "version             "+testVersion) {
		t.Errorf("status: %v\n%s", err, human)
	}

	// The worker dies; its successor counts on from where it stopped.
	if err := syscall.Kill(st.Worker, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	newWorker := waitWorker(t, d, st.Worker)
	after := waitMetrics(t, st.Metrics, "reads by the new worker and its restart", func(m map[string]float64) bool {
		return m[`lxcfs_oci_worker_restarts_total`] == 1 && m[meminfoReads] > before[meminfoReads]
	})
	if after[`lxcfs_oci_worker_starts_total`] != 2 || after[`lxcfs_oci_containers_served`] != 1 {
		t.Errorf("after the kill: worker starts %v, containers %v; want 2 and 1", after[`lxcfs_oci_worker_starts_total`], after[`lxcfs_oci_containers_served`])
	}
	if st := fusedStatus(t, d); st.Worker != newWorker || st.Counters["worker_restarts"] != 1 {
		t.Errorf("status after the kill: worker %d, restarts %d; want %d and 1", st.Worker, st.Counters["worker_restarts"], newWorker)
	}
	c.stopLoop(t, "DONE")

	d.stop(t)
	out, err := exec.Command(fusedBin, "status", "--state-dir", d.stateDir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no lxcfs-fused runs with --state-dir "+d.stateDir) {
		t.Errorf("status with the daemon stopped: %v\n%s", err, out)
	}
}

// TestOpsMetricsCountFallbacksAndUpgrades: a read that hangs in the daemon
// past --read-timeout is answered with the host's file and counted as a
// timeout fallback; an upgrade is counted and keeps every count.
func TestOpsMetricsCountFallbacksAndUpgrades(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	exe := filepath.Join(dir, "lxcfs-fused")
	copyFile(t, fusedBin, exe)
	marker := filepath.Join(dir, "stall")
	t.Setenv("LXCFS_FUSED_TEST_STALL", marker)
	d := startDaemon(t, exe, "", "--metrics-address", "127.0.0.1:0", "--read-timeout", "200ms")
	addr := fusedStatus(t, d).Metrics
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// The render of this read never returns: the reader gets the host's
	// file at the timeout.
	if got := readFile(t, filepath.Join(d.mp, "proc/loadavg")); len(strings.Fields(got)) != 5 {
		t.Fatalf("stalled read answered %q, want the host's loadavg", got)
	}
	const timeouts = `lxcfs_oci_host_fallbacks_total{file="proc/loadavg",reason="timeout"}`
	before := waitMetrics(t, addr, "the timeout", func(m map[string]float64) bool {
		return m[timeouts] >= 1 && m[`lxcfs_oci_opens_total{file="proc/loadavg"}`] >= 1
	})
	if n := before[`lxcfs_oci_render_errors_total{file="proc/loadavg"}`]; n != 0 {
		t.Errorf("render errors %v: a timeout answered with the host's file is not an error", n)
	}

	runUpgrade(t, d, exe)
	// The supervisor listens again after re-executing; a port chosen by
	// the kernel may differ, so take it from status.
	var st statusJSON
	deadline := time.Now().Add(30 * time.Second)
	for st = fusedStatus(t, d); st.Generation != 1 && time.Now().Before(deadline); st = fusedStatus(t, d) {
		time.Sleep(20 * time.Millisecond)
	}
	after := waitMetrics(t, st.Metrics, "the upgrade", func(m map[string]float64) bool {
		return m[`lxcfs_oci_upgrades_total`] == 1
	})
	for _, name := range []string{timeouts, `lxcfs_oci_opens_total{file="proc/loadavg"}`} {
		if after[name] < before[name] {
			t.Errorf("%s went from %v to %v across the upgrade", name, before[name], after[name])
		}
	}
	if after[`lxcfs_oci_start_time_seconds`] != before[`lxcfs_oci_start_time_seconds`] {
		t.Errorf("start time changed across the upgrade: %v -> %v", before[`lxcfs_oci_start_time_seconds`], after[`lxcfs_oci_start_time_seconds`])
	}
	if st.Counters["upgrades"] != 1 {
		t.Errorf("status counts %d upgrades, want 1", st.Counters["upgrades"])
	}
}

// TestOpsMetricsPortTaken: a metrics port that cannot be bound costs the
// metrics, never the views: the daemon serves, says so in its log, and
// status shows metrics off.
func TestOpsMetricsPortTaken(t *testing.T) {
	requireRoot(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	d := startDaemon(t, fusedBin, "", "--metrics-address", ln.Addr().String())
	if st := fusedStatus(t, d); st.Metrics != "" || st.Worker <= 0 {
		t.Errorf("status: metrics at %q, worker %d; want no metrics and a serving worker", st.Metrics, st.Worker)
	}
	if log := readFile(t, d.logPath); !strings.Contains(log, "metrics not served; serving the views without them") {
		t.Errorf("daemon log does not report the metrics failure:\n%s", log)
	}
}
