// Command lxcfs-fused serves container-aware /proc and /sys files over FUSE.
// Each reader gets the view of its own container, computed from the cgroups
// of its pid namespace's init; host processes get the host's files.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/caller"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/cgroup"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/content"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/loadavg"
)

func main() {
	app := &cli.App{
		Name:  "lxcfs-fused",
		Usage: "serve container-aware /proc and /sys files over FUSE",
		Description: `lxcfs-fused mounts a read-only FUSE file system at --mountpoint holding
   proc/{cpuinfo,diskstats,loadavg,meminfo,stat,swaps,uptime},
   proc/pressure/{cpu,io,memory} (where the host kernel has PSI) and
   sys/devices/system/cpu/online, the same layout as LXCFS.

   A file answers according to who reads it: a process in a container (its
   own pid namespace) sees figures from the cgroups of that namespace's init
   process (memory limit and usage, cpuset, CPU time, I/O); a host process,
   or any reader that cannot be resolved, sees the host's file unchanged.
   lxcfs-hook bind-mounts these files over a container's own at start.

   It serves in the foreground until SIGTERM or SIGINT, then unmounts and
   exits 0. It must run as root in the host's pid and cgroup namespaces.
   Logs go to stderr.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mountpoint", Value: "/var/lib/lxcfs", Usage: "directory to mount the file system on; created if missing; a dead mount left there by a crashed daemon is replaced"},
			&cli.StringFlag{Name: "cgroup-root", Value: "/sys/fs/cgroup", Usage: "where the cgroup hierarchies are mounted (v1 controllers below it, or the v2 unified tree)"},
			&cli.BoolFlag{Name: "enable-cfs", Usage: "also limit the CPUs shown (cpuinfo, stat, online) to the CPU quota rounded up, as LXCFS --enable-cfs; without it only the cpuset counts"},
			&cli.BoolFlag{Name: "enable-loadavg", Usage: "compute a per-container /proc/loadavg with a background sampler (containers read in the last minute, every 5s); without it loadavg is the host's"},
			&cli.DurationFlag{Name: "read-timeout", Value: 2 * time.Second, Usage: "longest a read may wait for a container's cgroup files before the reader gets the host's file instead (0: no limit)"},
			&cli.IntFlag{Name: "workers", Value: 8, Usage: "goroutines reading FUSE requests at once; bounds the requests in progress"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
		},
		HideHelpCommand: true,
		Action:          serve,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "lxcfs-fused:", err)
		os.Exit(1)
	}
}

func serve(cctx *cli.Context) error {
	if cctx.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see --help", cctx.Args().First())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cctx.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", cctx.String("log-level"))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	hier, err := cgroup.Detect(cctx.String("cgroup-root"))
	if err != nil {
		return err
	}
	resolver, err := caller.NewResolver("/proc")
	if err != nil {
		return err
	}
	defer resolver.Close()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	files := &content.Files{
		ProcDir:  "/proc",
		SysDir:   "/sys",
		Cgroups:  hier,
		Callers:  resolver,
		CFS:      cctx.Bool("enable-cfs"),
		Log:      log,
		Now:      content.BootTime,
		ClockTck: 100, // USER_HZ: fixed at 100 in the kernel's user ABI
		Timeout:  cctx.Duration("read-timeout"),
	}
	if cctx.Bool("enable-loadavg") {
		s := loadavg.New("/proc", log)
		files.Load = s
		go s.Run(ctx)
	}
	names := files.List()
	tree, err := fusefs.New(names, files, log)
	if err != nil {
		return err
	}
	mp := cctx.String("mountpoint")
	conn, err := fusefs.Mount(mp, log)
	if err != nil {
		return err
	}
	log.Info("serving", "mountpoint", mp, "cgroup_root", hier.Root, "cgroup_v2", hier.V2,
		"cfs", files.CFS, "loadavg", files.Load != nil, "files", strings.Join(names, ","))
	// Under systemd (Type=notify) this is the readiness signal; elsewhere a no-op.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		log.Warn("sd_notify READY failed", "err", err)
	}
	err = fusefs.Run(ctx, conn, mp, tree, cctx.Int("workers"))
	if err != nil {
		return err
	}
	log.Info("stopped", "mountpoint", mp)
	return nil
}
