package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/caller"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/cgroup"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/content"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookrun"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/loadavg"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/mountns"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/register"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/reread"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/supervise"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
)

// loadConfig checks the flags that shape the views and builds the renderer.
func loadConfig(c *cli.Context) (*content.Files, error) {
	if c.Int("workers") < 1 {
		return nil, fmt.Errorf("--workers %d: want at least 1", c.Int("workers"))
	}
	for _, flag := range []string{"host-max-age", "memstat-max-age"} {
		if age := c.Duration(flag); age < 0 || age > time.Second {
			return nil, fmt.Errorf("--%s %v: want 0 (read for every render) up to 1s", flag, age)
		}
	}
	if t := c.Duration("cache-ttl"); t < 0 || t > time.Minute {
		return nil, fmt.Errorf("--cache-ttl %v: want 0 (render at every read) up to 1m (readers see figures that old)", t)
	}
	if t := c.Duration("sysinfo-timeout"); t <= 0 || t > 10*time.Second {
		return nil, fmt.Errorf("--sysinfo-timeout %v: want more than 0 up to 10s (a sysinfo call waits that long at most)", t)
	}
	hier, err := cgroup.Detect(c.String("cgroup-root"))
	if err != nil {
		return nil, fmt.Errorf("--cgroup-root %s: %w (want the directory the cgroup hierarchies are mounted on)", c.String("cgroup-root"), err)
	}
	return &content.Files{
		ProcDir:       "/proc",
		SysDir:        "/sys",
		Cgroups:       hier,
		CFS:           c.Bool("enable-cfs"),
		Now:           content.BootTime,
		ClockTck:      100, // USER_HZ: fixed at 100 in the kernel's user ABI
		HostMaxAge:    c.Duration("host-max-age"),
		MemStatMaxAge: c.Duration("memstat-max-age"),
	}, nil
}

func workerCmd(c *cli.Context) error {
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	log = log.With("worker", os.Getpid())
	conn, err := supervise.AdoptFromEnv()
	if err != nil {
		return err
	}
	if conn == nil {
		return errors.New("the worker serves a connection handed over by the lxcfs-fused supervisor; run lxcfs-fused without a command")
	}
	supervise.WatchParent(log)

	files, err := loadConfig(c)
	if err != nil {
		return err
	}
	// Container IDs are shared by every process that serves this
	// connection, through the state directory: a replacement or upgraded
	// worker answers the handles its predecessors gave for their containers.
	if err := os.MkdirAll(c.String("state-dir"), 0o755); err != nil {
		return fmt.Errorf("--state-dir %s: %w (container IDs are kept there)", c.String("state-dir"), err)
	}
	resolver, err := caller.NewResolver("/proc", filepath.Join(c.String("state-dir"), "container-ids"))
	if err != nil {
		return err
	}
	files.Callers = resolver
	files.Log = log
	// The supervisor made the counters file before starting this worker.
	counts, err := stats.Open(stats.Path(c.String("state-dir")), true, nil)
	if err != nil {
		log.Warn("serving uncounted: status and metrics will not move", "err", err)
	}
	files.Stats = counts
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if c.Bool("enable-loadavg") {
		s := loadavg.New("/proc", log)
		files.Load = s
		go every(ctx, loadavg.Interval, func() { s.Tick(time.Now()) })
	}
	si, err := serveSysinfo(c, files, log)
	if err != nil {
		return err
	}
	names := files.List()
	// The hook registers each new container here, to bind it files of its
	// own (MOUNT/.containers/ID): containers that share a pid namespace
	// cannot be told apart by their readers.
	mp, err := filepath.Abs(c.String("mountpoint"))
	if err != nil {
		return fmt.Errorf("--mountpoint: %w", err)
	}
	stateDir, err := filepath.Abs(c.String("state-dir"))
	if err != nil {
		return fmt.Errorf("--state-dir: %w", err)
	}
	// Hooks that delegate create-runtime have it run here (pkg/delegate):
	// a new container's files are looked up ahead (keepSpares below), and
	// the hook is a small process that asks and exits.
	sp := &spares{r: resolver, mp: mp, entries: hook.Entries(names), log: log, prepared: map[uint32]*mountns.Prepared{}, helper: -1}
	hooks := &hookrun.Daemon{Mountpoint: mp, StateDir: stateDir, Register: resolver.RegisterProcess, Prepared: sp.take, Ready: resolver.Ready,
		Files: hook.Entries(names), Log: log}
	go func() {
		sock := filepath.Join(stateDir, register.SocketName)
		h := register.Handlers{Register: resolver.Register, Files: hook.Entries(names), Delegate: hooks.Handle}
		if err := register.Serve(ctx, sock, h, log); err != nil {
			log.Error("container registration unavailable: the hook binds the shared files", "err", err)
		}
	}()
	tree, err := fusefs.New(names, withStall(files), log)
	if err != nil {
		return err
	}
	// What gone containers left behind: their cached resolutions, and the
	// nodes their lookups made in their CPU directories.
	go every(ctx, time.Minute, func() { resolver.Prune(); tree.PruneGone() })
	tree.Timeout = c.Duration("read-timeout")
	tree.Triggers = c.Bool("psi-triggers")
	tree.Stats = counts
	tree.CacheTTL = c.Duration("cache-ttl")
	// A predecessor's cached pages are forgotten before this worker serves.
	tree.Known = resolver.IDs
	if tree.Journal, tree.Leftovers, err = supervise.AdoptJournal(); err != nil {
		return err
	}
	own, err := supervise.AdoptOwnFromEnv()
	if err != nil {
		return err
	}
	if tree.OwnJournal, tree.OwnLeftovers, err = supervise.AdoptOwnJournal(); err != nil {
		return err
	}
	if tree.Polls, err = supervise.PollsFromEnv(); err != nil {
		log.Warn("pollers waiting when this worker dies will wait until their own timeout", "err", err)
	}

	if path := c.String("cpuprofile"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	go func() {
		for sig := range sigs {
			if sig == syscall.SIGUSR1 {
				logStats(log, resolver, tree)
				continue
			}
			// Requests read but not answered are resent by the supervisor
			// once this process is gone; sysinfo calls cannot be, so they
			// are answered first.
			drainSysinfo(si, c.Duration("sysinfo-timeout"))
			// Pages the kernel keeps on the own connection would be
			// served, stale, while nobody serves it.
			tree.DropCached(time.Second)
			pprof.StopCPUProfile()
			os.Exit(0)
		}
	}()

	log.Info("worker serving", "version", version.String(), "cgroup_root", files.Cgroups.Root, "cgroup_v2", files.Cgroups.V2,
		"cfs", files.CFS, "cache_ttl", tree.CacheTTL, "own_connection", own != nil, "loadavg", files.Load != nil, "files", strings.Join(names, ","))
	// Either connection ending ends the worker: the supervisor then
	// stops, and the next start mounts both afresh.
	ended := make(chan error, 2)
	go func() { ended <- tree.Serve(conn, c.Int("workers")) }()
	if own != nil {
		go func() { ended <- tree.ServeOwn(own, c.Int("workers")) }()
	}
	sp.tree, sp.own = tree, own != nil
	go sp.run(ctx)
	if err := <-ended; err != nil {
		return err
	}
	log.Warn("FUSE connection ended: the file system was unmounted")
	tree.DropCached(time.Second) // the other connection may live on
	pprof.StopCPUProfile()
	os.Exit(supervise.ExitUnmounted)
	return nil
}

// every calls fn every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}

// logStats reports what an operator (or the load test) watches for leaks.
// Free memory is handed back to the kernel first, so RSS shows what the
// worker holds rather than the high-water mark of its last burst.
func logStats(log interface{ Info(string, ...any) }, r *caller.Resolver, tree *fusefs.FS) {
	debug.FreeOSMemory()
	fds, _ := os.ReadDir("/proc/self/fd")
	var rss string
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				rss = strings.TrimSpace(v)
			}
		}
	}
	// Kept files (open cgroup and host files, re-read on each render) and
	// pinned reader threads are descriptors held on purpose, bounded per
	// container and thread; the rest of fds should not grow.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	log.Info("stats", "goroutines", runtime.NumGoroutine(), "fds", len(fds), "rss", rss,
		"cached_containers", r.Len(), "kept_files", reread.Kept(), "pinned_threads", r.Threads(),
		"heap_inuse_kb", ms.HeapInuse>>10, "stack_inuse_kb", ms.StackInuse>>10, "go_sys_kb", ms.Sys>>10, "gc_cycles", ms.NumGC,
		"snapshot_kb", tree.Held()>>10)
}
