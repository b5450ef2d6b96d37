// Command lxcfs-fused serves container-aware /proc and /sys files over FUSE.
// Each reader gets the view of its own container, computed from the cgroups
// of its pid namespace's init; host processes get the host's files.
package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/metrics"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "lxcfs-fused:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:    "lxcfs-fused",
		Usage:   "serve container-aware /proc and /sys files over FUSE",
		Version: version.String(),
		Description: `lxcfs-fused mounts a read-only FUSE file system at --mountpoint holding
   proc/{cpuinfo,diskstats,loadavg,meminfo,stat,swaps,uptime,vmstat},
   proc/pressure/{cpu,io,memory} (where the host kernel has PSI) and
   sys/devices/system/cpu/ (online, possible, present and offline rendered,
   cpuN/ only for the reader's CPUs, the rest the host's), the same layout
   as LXCFS.

   A file answers according to who reads it: a process in a container (its
   own pid namespace) sees figures from the cgroups of that namespace's init
   process (memory limit and usage, cpuset, CPU time, I/O); a host process,
   or any reader that cannot be resolved, sees the host's file unchanged.
   lxcfs-hook bind-mounts these files over a container's own at start.

   With --sysinfo (the default) it also answers sysinfo(2) for containers
   whose seccomp profile sends it to STATE-DIR/sysinfo.sock (lxcfs-hook
   inject --sysinfo, or the wrapper's sysinfo setting), with the figures of
   their meminfo, swaps, uptime and loadavg. Their notification fds are held
   by the supervisor and handed over like the FUSE connection.

   The process started is a supervisor: it holds the FUSE connection and runs
   the serving worker as a child. A worker that dies is replaced at once and
   readers only see a pause. SIGHUP (or "lxcfs-fused upgrade") re-executes the
   binary at the same path with the connection kept open: upgrades do not
   break containers. Under systemd the connection is also kept in the
   service's fd store (FileDescriptorStoreMax=1), so a restarted supervisor
   takes it back. The containers' own files (MOUNT/.containers, see
   --own-connection) are a second connection, held and kept the same way.
   When a connection was lost anyway, the views are re-attached in every
   running container the hook recorded, at start.

   It serves in the foreground until SIGTERM or SIGINT, then unmounts and
   exits 0. It must run as root in the host's pid and cgroup namespaces.
   Logs go to stderr.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mountpoint", Value: "/var/lib/lxcfs", Usage: "directory to mount the file system on; created if missing; a dead mount left there by a crashed daemon is replaced"},
			&cli.StringFlag{Name: "cgroup-root", Value: "/sys/fs/cgroup", Usage: "where the cgroup hierarchies are mounted (v1 controllers below it, or the v2 unified tree)"},
			&cli.BoolFlag{Name: "enable-cfs", Usage: "also limit the CPUs shown (cpuinfo, stat, online) to the CPU quota rounded up, as LXCFS --enable-cfs; without it only the cpuset counts"},
			&cli.BoolFlag{Name: "enable-loadavg", Usage: "compute a per-container /proc/loadavg with a background sampler (containers read in the last minute, every 5s); without it loadavg is the host's"},
			&cli.DurationFlag{Name: "read-timeout", Value: 2 * time.Second, Usage: "longest a read may wait for a container's cgroup files before the reader gets the host's file instead (0: no limit)"},
			&cli.DurationFlag{Name: "host-max-age", Value: 10 * time.Millisecond, Usage: "how long one read of a host file (/proc/meminfo, /proc/stat, ...) serves the renders after it; the kernel's own counters move more coarsely (0: read it for every render; at most 1s). A container's usage and time counters are always read afresh"},
			&cli.DurationFlag{Name: "memstat-max-age", Value: 10 * time.Millisecond, Usage: "how long one read of a container's memory.stat serves its renders after it; the kernel itself folds per-CPU changes into it only in batches (0: read it for every render; at most 1s). Memory usage is always read afresh"},
			&cli.DurationFlag{Name: "cache-ttl", Value: fusefs.DefaultCacheTTL, Usage: "how long the kernel may serve a container's own files (the ones lxcfs-hook binds, MOUNT/.containers/ID/...) from its cache without asking the daemon: no reader sees a figure older than this plus one render. 0: render at every open and read. The shared LXCFS-compatible files are never cached"},
			&cli.BoolFlag{Name: "own-connection", Value: true, Usage: "serve the containers' own files on a second FUSE connection, mounted at MOUNT/.containers, on which the kernel sends no OPEN or RELEASE (FUSE no-open): a cached read costs the daemon nothing. Only with --cache-ttl above 0 and without --psi-triggers; off, they are served on the first connection"},
			&cli.IntFlag{Name: "workers", Value: fusefs.DefaultWorkers(), Usage: "goroutines reading FUSE requests at once; bounds the requests in progress", DefaultText: "one per CPU this process may run on, at least 2"},
			&cli.StringFlag{Name: "state-dir", Value: "/run/lxcfs-oci", Usage: "where the hook records served containers (to re-attach their views after a lost connection) and counts its outcomes (hook.counts), and the daemon writes fused.json (pids, version, kernel features: for the upgrade and status commands) and keeps its counters (fused.stats) and container-ids (which container each open file belongs to, for every worker and binary serving the mount)"},
			&cli.StringFlag{Name: "metrics-address", Usage: "serve Prometheus metrics at http://ADDRESS/metrics (HOST:PORT, e.g. :" + metrics.DefaultPort + "); a bare :PORT listens on 127.0.0.1 only, name a host (0.0.0.0, a node address) to listen beyond it; off when empty", DefaultText: "off"},
			&cli.BoolFlag{Name: "sysinfo", Value: true, Usage: "answer sysinfo(2) for containers whose config sends it to STATE-DIR/sysinfo.sock (seccomp user notification; lxcfs-hook inject --sysinfo or the wrapper's sysinfo setting write that)"},
			&cli.DurationFlag{Name: "sysinfo-timeout", Value: 500 * time.Millisecond, Usage: "longest a sysinfo call waits for the container's figures before it runs for real (the host's figures)"},
			&cli.BoolFlag{Name: "psi-triggers", Usage: "let programs in containers register PSI triggers on /proc/pressure/* (write a trigger, poll for POLLPRI) against their own cgroup, as LXCFS does; costs every poll of a served file a round trip to the daemon (Go programs poll every file they open)"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "write the serving worker's CPU profile to this file when it stops (for make bench)"},
		},
		HideHelpCommand: true,
		Action:          superviseCmd,
		Commands: []*cli.Command{
			{
				Name:  "upgrade",
				Usage: "make the running daemon re-execute its binary (after replacing it) without dropping the FUSE connection",
				Description: `Sends SIGHUP to the supervisor named in STATE-DIR/fused.json and waits until
   the new binary serves. Containers see a pause of a few milliseconds, no error.`,
				Flags: []cli.Flag{
					&cli.DurationFlag{Name: "timeout", Value: 10 * time.Second, Usage: "how long to wait for the new binary to serve"},
					&cli.StringFlag{Name: "state-dir", Value: "/run/lxcfs-oci", Usage: "the running daemon's --state-dir (also accepted before the command)"},
				},
				Action: upgradeCmd,
			},
			{
				Name:  "status",
				Usage: "show what the running daemon serves: version, mountpoint, worker, kernel features, containers, counts and errors",
				Description: `Reads STATE-DIR/fused.json and the counters the daemon keeps beside it
   (fused.stats, hook.counts) and prints the daemon's version, mountpoint,
   supervisor and worker pids, generation (upgrades), how it holds the FUSE
   connection, the kernel features it uses (FUSE_NOTIFY_RESEND or the
   request journal, FOPEN_NOFLUSH, INIT flags), the containers it serves, worker restarts, remounts, errors
   since the start (render errors, host fallbacks by reason, worker deaths,
   failed remounts), opens and reads per file, and hook outcomes. Exits 1
   when no daemon runs with that state directory.`,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "print JSON, for scripts"},
					&cli.StringFlag{Name: "state-dir", Value: "/run/lxcfs-oci", Usage: "the running daemon's --state-dir (also accepted before the command)"},
				},
				Action: statusCmd,
			},
			{
				Name:   "warm",
				Usage:  "look files up so that the kernel caches their names (run by the worker, for spare container IDs)",
				Hidden: true,
				Action: warmCmd,
			},
			{
				Name:   "worker",
				Usage:  "serve a connection handed over by the supervisor (started by lxcfs-fused itself)",
				Hidden: true,
				Action: workerCmd,
			},
		},
	}
}

func newLogger(c *cli.Context) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.String("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", c.String("log-level"))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), nil
}
