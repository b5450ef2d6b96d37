package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"bazil.org/fuse"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/remount"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/supervise"
)

// features is what the connection negotiated with the kernel and which of
// the kernel's FUSE features the daemon relies on, for operators: a
// feature missing changes how failures look to readers (docs/reliability.md).
type features struct {
	Kernel   string `json:"kernel"`
	Protocol string `json:"fuse_protocol"`
	// InitFlags are the flags of the INIT exchange (kernel and daemon).
	InitFlags []string `json:"init_flags"`
	// NotifyResend: "yes" when the kernel queues again what a dead worker
	// had taken (Linux 6.9), "journal" when it has no such notification
	// and lxcfs-fused's request journal answers instead, "no" when it
	// refused, "expected" or "unavailable" by the kernel's version until a
	// resend was tried.
	NotifyResend string `json:"notify_resend"`
	// OpenNoFlush: FOPEN_NOFLUSH (Linux 5.14) spares a FLUSH per close.
	OpenNoFlush bool `json:"open_noflush"`
	// FDStore: the connection is kept in systemd's fd store, so a
	// restarted supervisor takes it back.
	FDStore bool `json:"fd_store"`
}

func connFeatures(conn *fuse.Conn, fdStore bool) features {
	release := kernelRelease()
	f := features{
		Kernel:      release,
		Protocol:    fmt.Sprintf("%d.%d", conn.Protocol().Major, conn.Protocol().Minor),
		OpenNoFlush: kernelAtLeast(release, 5, 14),
		FDStore:     fdStore,
	}
	if fl := conn.Features(); fl != 0 {
		for _, name := range strings.Split(fl.String(), "+") {
			f.InitFlags = append(f.InitFlags, strings.TrimPrefix(name, "Init"))
		}
	}
	return f
}

// resendState says whether FUSE_NOTIFY_RESEND works: as tried by the
// supervisor, else as the kernel's version promises.
func resendState(release string, tried uint64) string {
	switch tried {
	case supervise.ResendWorks:
		return "yes"
	case supervise.ResendMissing:
		return "no (refused by the kernel)"
	case supervise.ResendJournal:
		return "journal (the kernel has none; lxcfs-fused's request journal answers what a dead worker held)"
	}
	if kernelAtLeast(release, 6, 9) {
		return "expected (Linux 6.9+; not needed yet)"
	}
	return "unavailable (Linux < 6.9)"
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// kernelAtLeast compares a release such as "6.18.44-fc-v1300" with
// major.minor; an unreadable release is taken as older.
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	digits := strings.IndexFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' })
	if digits < 0 {
		digits = len(parts[1])
	}
	min, err2 := strconv.Atoi(parts[1][:digits])
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || maj == major && min >= minor
}

// report is what `lxcfs-fused status` shows.
type report struct {
	state
	Uptime     string             `json:"uptime"`
	Containers int                `json:"containers_served"`
	Counters   map[string]uint64  `json:"counters"`
	Errors     errorCounts        `json:"errors_since_start"`
	Files      []stats.FileCounts `json:"files"`
	Hook       map[string]uint64  `json:"hook_outcomes"`
}

type errorCounts struct {
	RenderErrors  uint64            `json:"render_errors"`
	HostFallbacks map[string]uint64 `json:"host_fallbacks"`
	WorkerDeaths  uint64            `json:"worker_deaths"`
	RemountFailed uint64            `json:"remount_failed"`
}

// gather builds the report of the daemon using stateDir.
func gather(stateDir string) (report, error) {
	st, err := readState(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return report{}, fmt.Errorf("no lxcfs-fused runs with --state-dir %s (%s missing); start it, or pass the --state-dir it runs with", stateDir, statePath(stateDir))
	}
	if err != nil {
		return report{}, err
	}
	if errors.Is(syscall.Kill(st.Pid, 0), syscall.ESRCH) {
		return report{}, fmt.Errorf("lxcfs-fused (supervisor %d in %s) is not running: it died without cleaning up; start it again", st.Pid, statePath(stateDir))
	}
	r := report{state: st, Uptime: time.Since(st.Started).Round(time.Second).String()}
	region, err := stats.Open(stats.Path(stateDir), false, nil)
	if err != nil {
		return r, fmt.Errorf("read the daemon's counters: %w", err)
	}
	defer region.Close()
	snap := region.Snapshot()
	r.Kernel.NotifyResend = resendState(r.Kernel.Kernel, snap.Counters[stats.NotifyResend])
	r.Counters = map[string]uint64{
		"worker_starts":      snap.Counters[stats.WorkerStarts],
		"worker_restarts":    snap.Counters[stats.WorkerDeaths],
		"upgrades":           snap.Counters[stats.Upgrades],
		"remount_reattached": snap.Counters[stats.RemountReattached],
	}
	r.Errors.RenderErrors, r.Errors.HostFallbacks = snap.Errors()
	r.Errors.WorkerDeaths = snap.Counters[stats.WorkerDeaths]
	r.Errors.RemountFailed = snap.Counters[stats.RemountFailed]
	r.Files = snap.Files
	r.Containers, _ = remount.CountLive(stateDir, st.Mountpoint)
	counts, err := stats.HookCounts(stateDir)
	r.Hook = map[string]uint64{}
	for _, o := range stats.Outcomes {
		r.Hook[o.String()] = counts[o]
	}
	return r, err
}

func statusCmd(c *cli.Context) error {
	r, err := gather(stateDirOf(c))
	if err != nil && r.Pid == 0 {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		if eerr := enc.Encode(r); eerr != nil {
			return eerr
		}
		return err
	}
	printReport(c.App.Writer, r)
	return err
}

// stateDirOf takes --state-dir from wherever it was given: before the
// command (a global flag) or after it.
func stateDirOf(c *cli.Context) string {
	for _, x := range c.Lineage() {
		if x.IsSet("state-dir") {
			return x.String("state-dir")
		}
	}
	return c.String("state-dir")
}

func printReport(w io.Writer, r report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	metrics := "off (--metrics-address)"
	if r.Metrics != "" {
		metrics = "http://" + r.Metrics + "/metrics"
	}
	resend := r.Kernel.NotifyResend
	fmt.Fprintf(tw, "version\t%s\n", r.Version)
	fmt.Fprintf(tw, "mountpoint\t%s\n", r.Mountpoint)
	if r.OwnMountpoint != "" {
		fmt.Fprintf(tw, "own files\t%s (a connection of their own, no OPEN or RELEASE)\n", r.OwnMountpoint)
	}
	fmt.Fprintf(tw, "supervisor\tpid %d, up %s (since %s)\n", r.Pid, r.Uptime, r.Started.Format(time.RFC3339))
	fmt.Fprintf(tw, "worker\tpid %d\n", r.Worker)
	fmt.Fprintf(tw, "generation\t%d (upgrades since the start)\n", r.Generation)
	fmt.Fprintf(tw, "connection\t%s; FUSE protocol %s; kept in systemd's fd store: %s\n", r.Connection, r.Kernel.Protocol, yesNo(r.Kernel.FDStore))
	fmt.Fprintf(tw, "kernel\t%s: notify_resend %s; open_noflush %s\n", r.Kernel.Kernel, resend, yesNo(r.Kernel.OpenNoFlush))
	fmt.Fprintf(tw, "init flags\t%s\n", strings.Join(r.Kernel.InitFlags, " "))
	fmt.Fprintf(tw, "containers served\t%d\n", r.Containers)
	fmt.Fprintf(tw, "workers\t%d started, %d restarted after dying\n", r.Counters["worker_starts"], r.Counters["worker_restarts"])
	fmt.Fprintf(tw, "remounts\t%d containers' views re-attached, %d failed\n", r.Counters["remount_reattached"], r.Errors.RemountFailed)
	fmt.Fprintf(tw, "metrics\t%s\n", metrics)
	fmt.Fprintf(tw, "errors since start\trender errors %d; host fallbacks %s; worker deaths %d; remount failures %d\n",
		r.Errors.RenderErrors, kv(r.Errors.HostFallbacks), r.Errors.WorkerDeaths, r.Errors.RemountFailed)
	fmt.Fprintf(tw, "hook outcomes\t%s (since the state directory was made)\n", kv(r.Hook))
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "file\topens\treads\trender errors\thost fallbacks\t")
	for _, f := range r.Files {
		var fb uint64
		for _, v := range f.Fallbacks {
			fb += v
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", f.Name, f.Opens, f.Reads, f.RenderErrors, fb)
	}
	tw.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// kv prints counts by name, sorted: "a 1, b 0".
func kv(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}
