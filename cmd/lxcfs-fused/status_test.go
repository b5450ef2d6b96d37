package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/supervise"
)

func TestKernelAtLeast(t *testing.T) {
	for _, tc := range []struct {
		release      string
		major, minor int
		want         bool
	}{
		{"6.18.44-fc-v1300", 6, 9, true},
		{"6.9.0", 6, 9, true},
		{"6.8.12-generic", 6, 9, false},
		{"5.15.0-105-generic", 5, 14, true},
		{"5.10.0", 5, 14, false},
		{"7.0", 6, 9, true},
		{"6.10rc1", 6, 9, true},
		{"", 5, 14, false},
		{"garbage", 5, 14, false},
	} {
		if got := kernelAtLeast(tc.release, tc.major, tc.minor); got != tc.want {
			t.Errorf("kernelAtLeast(%q, %d, %d) = %v, want %v", tc.release, tc.major, tc.minor, got, tc.want)
		}
	}
}

func TestResendState(t *testing.T) {
	for _, tc := range []struct {
		release string
		tried   uint64
		want    string
	}{
		{"6.18.0", supervise.ResendWorks, "yes"},
		{"6.18.0", supervise.ResendMissing, "no (refused by the kernel)"},
		{"6.1.0", supervise.ResendJournal, "journal (the kernel has none; lxcfs-fused's request journal answers what a dead worker held)"},
		{"6.18.0", 0, "expected (Linux 6.9+; not needed yet)"},
		{"6.1.0", 0, "unavailable (Linux < 6.9)"},
	} {
		if got := resendState(tc.release, tc.tried); got != tc.want {
			t.Errorf("resendState(%q, %d) = %q, want %q", tc.release, tc.tried, got, tc.want)
		}
	}
}

// status names the state directory and what to do when no daemon runs, or
// when the one recorded died without cleaning up.
func TestStatusWithoutDaemon(t *testing.T) {
	dir := t.TempDir()
	err := newApp().Run([]string{"lxcfs-fused", "status", "--state-dir", dir})
	if err == nil || !strings.Contains(err.Error(), "no lxcfs-fused runs with --state-dir "+dir) {
		t.Errorf("no state file: %v", err)
	}
	// A supervisor that died: its pid is gone.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(state{Pid: cmd.Process.Pid, Worker: 1, Mountpoint: "/m"})
	if err := os.WriteFile(statePath(dir), b, 0o644); err != nil {
		t.Fatal(err)
	}
	err = newApp().Run([]string{"lxcfs-fused", "--state-dir", dir, "status"})
	if err == nil || !strings.Contains(err.Error(), "is not running") {
		t.Errorf("dead supervisor: %v", err)
	}
}

// status of a live daemon (this process stands in for the supervisor):
// the state file, the counters and the hook's outcomes, as text and JSON.
func TestStatusReport(t *testing.T) {
	dir := t.TempDir()
	region, err := stats.Create(stats.Path(dir), []string{"proc/meminfo", "proc/stat"})
	if err != nil {
		t.Fatal(err)
	}
	defer region.Close()
	region.File("proc/meminfo").Observe(stats.OpOpen, time.Microsecond)
	region.File("proc/meminfo").Observe(stats.OpRead, time.Microsecond)
	region.File("proc/stat").RenderError()
	region.Fallback("proc/stat", stats.Timeout)
	region.Add(stats.WorkerStarts, 3)
	region.Add(stats.WorkerDeaths, 1)
	region.Add(stats.Upgrades, 1)
	region.Set(stats.NotifyResend, supervise.ResendWorks)
	stats.CountHook(dir, stats.Served)
	stats.CountHook(dir, stats.Served)
	stats.CountHook(dir, stats.NotServing)
	s := state{Pid: os.Getpid(), Worker: 4242, Generation: 1, Mountpoint: "/var/lib/lxcfs", Version: "v1.2.3-test",
		Started: region.Created(), Connection: "mounted", Metrics: "127.0.0.1:9617",
		Kernel: features{Kernel: "6.18.0", Protocol: "7.33", InitFlags: []string{"AsyncRead"}, OpenNoFlush: true}}
	writeState(dir, s, slog.New(slog.DiscardHandler))

	var out bytes.Buffer
	app := newApp()
	app.Writer = &out
	if err := app.Run([]string{"lxcfs-fused", "status", "--state-dir", dir}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"version             v1.2.3-test\n",
		"mountpoint          /var/lib/lxcfs\n",
		"worker              pid 4242\n",
		"generation          1 ",
		"notify_resend yes; open_noflush yes\n",
		"containers served   0\n",
		"workers             3 started, 1 restarted after dying\n",
		"metrics             http://127.0.0.1:9617/metrics\n",
		"render errors 1; host fallbacks timeout 1, unresolved 0, view_error 0; worker deaths 1",
		"not_serving 1, refused 0, served 2",
		"proc/meminfo  1      1      0              0",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, out.String())
		}
	}

	out.Reset()
	if err := app.Run([]string{"lxcfs-fused", "status", "--json", "--state-dir", dir}); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Version    string            `json:"version"`
		Worker     int               `json:"worker"`
		Generation int               `json:"generation"`
		Counters   map[string]uint64 `json:"counters"`
		Errors     struct {
			RenderErrors  uint64            `json:"render_errors"`
			HostFallbacks map[string]uint64 `json:"host_fallbacks"`
		} `json:"errors_since_start"`
		Hook   map[string]uint64 `json:"hook_outcomes"`
		Kernel struct {
			NotifyResend string `json:"notify_resend"`
		} `json:"kernel"`
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out.String())
	}
	if r.Version != "v1.2.3-test" || r.Worker != 4242 || r.Generation != 1 || r.Counters["worker_restarts"] != 1 ||
		r.Counters["upgrades"] != 1 || r.Errors.RenderErrors != 1 || r.Errors.HostFallbacks["timeout"] != 1 ||
		r.Hook["served"] != 2 || r.Kernel.NotifyResend != "yes" {
		t.Errorf("status --json: %+v\n%s", r, out.String())
	}
}
