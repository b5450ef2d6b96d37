package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"bazil.org/fuse"
	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/moby/sys/mountinfo"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/edit"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/journal"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/metrics"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/pollwake"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/remount"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/sdnotify"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/supervise"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/version"
)

// fdStorePrefix names our connection in systemd's fd store; the protocol
// and INIT flags follow, since the handshake cannot be repeated.
const fdStorePrefix = "lxcfs-fuse"

// ownStorePrefix names the containers' own connection there (no prefix of
// the first's).
const ownStorePrefix = "lxcfs-ownfuse"

// state is STATE-DIR/fused.json: who serves, for `upgrade` and operators
// (`status`).
type state struct {
	Pid        int    `json:"pid"`
	PidStart   uint64 `json:"pid_start,omitempty"` // its start time in clock ticks: tells the pid from a reuse
	Worker     int    `json:"worker"`
	Generation int    `json:"generation"`
	Mountpoint string `json:"mountpoint"`
	// OwnMountpoint is where the containers' own connection is mounted,
	// when there is one (--own-connection).
	OwnMountpoint string    `json:"own_mountpoint,omitempty"`
	Version       string    `json:"version"`
	Started       time.Time `json:"started"`    // the fresh start that upgrades keep
	Connection    string    `json:"connection"` // how the connection was had
	Kernel        features  `json:"kernel"`
	Metrics       string    `json:"metrics_address,omitempty"`
}

func statePath(dir string) string { return filepath.Join(dir, "fused.json") }

func superviseCmd(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q; see --help", c.Args().First())
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	files, err := loadConfig(c)
	if err != nil {
		return err // flag errors before anything is mounted
	}
	metricsAddr, err := metrics.ListenAddress(c.String("metrics-address"))
	if err != nil {
		return err
	}
	mp := c.String("mountpoint")
	stateDir := c.String("state-dir")
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find this program's path (needed to start workers): %w", err)
	}
	fromStore := sdnotify.Take("lxcfs-") // once: it clears what systemd passed
	conn, how, stored, err := acquire(mp, fromStore, log)
	if err != nil {
		return err
	}
	log.Info("serving", "version", version.String(), "mountpoint", mp, "connection", how)
	si, err := acquireSysinfo(c, fromStore, log)
	if err != nil {
		return err
	}
	jf, jbank, err := requestJournal(conn, how, stored, fromStore, c.Int("workers"), log, journalStoreName, supervise.JournalFromEnv)
	if err != nil {
		return err
	}
	var ownMP string
	var own *fuse.Conn
	var ownMount, ownJournal *os.File
	if ownConnection(c) {
		ownMP = filepath.Join(mp, ".containers")
		var ownHow string
		var ownStored bool
		own, ownMount, ownHow, ownStored, err = acquireOwn(ownMP, how, fromStore, log)
		if err == nil {
			log.Info("containers' own files on a connection of their own", "mountpoint", ownMP, "connection", ownHow)
			// Its bank is the first journal's: one worker reads into both.
			ownJournal, _, err = requestJournal(own, ownHow, ownStored, fromStore, c.Int("workers"), log, ownJournalStoreName, supervise.OwnJournalFromEnv)
		}
		if err != nil {
			// The first connection serves them as well, with OPEN.
			log.Warn("the containers' own files stay on the first connection", "err", err)
			if own != nil {
				own.Close()
			}
			if ownMount != nil {
				ownMount.Close()
			}
			own, ownMount, ownMP = nil, nil, ""
		}
	}
	counts := openStats(stateDir, files.List(), how == howUpgrade, log)
	if jf == nil && how != howUpgrade {
		counts.Set(stats.NotifyResend, supervise.ResendWorks) // requestJournal's resend was accepted
	}
	// An exec (upgrade) keeps both the pid and its start time.
	start, _ := remount.StartTicks(os.Getpid())
	base := state{Pid: os.Getpid(), PidStart: start, Mountpoint: mp, Version: version.String(), Started: counts.Created(),
		Connection: how, Kernel: connFeatures(conn, stored || how == howFDStore), OwnMountpoint: ownMP}
	if base.Started.IsZero() {
		base.Started = time.Now()
	}
	if metricsAddr != "" {
		srv, err := metrics.Listen(metricsAddr, metrics.NewRegistry(metrics.Source{
			Stats: counts, StateDir: stateDir, Mountpoint: mp, Version: version.String(),
		}), log)
		if err != nil {
			// The mount is made (or, after an upgrade, kept): failing now
			// would break every container's views for want of metrics.
			log.Error("metrics not served; serving the views without them", "err", err)
		} else {
			defer srv.Close()
			base.Metrics = srv.Addr()
			log.Info("metrics served", "url", "http://"+srv.Addr()+"/metrics")
		}
	}
	sup := &supervise.Supervisor{
		Conn:       conn,
		Mountpoint: mp,
		Exe:        exe,
		WorkerArgs: append(append([]string(nil), os.Args[1:]...), "worker"),
		Log:        log,
		Adopted:    how == howFDStore,
		OnServing: func(ctx context.Context) {
			if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
				log.Warn("sd_notify READY failed", "err", err)
			}
			reattach(ctx, stateDir, mp, counts, log)
		},
		State: func(worker, gen int) {
			s := base
			s.Worker, s.Generation = worker, gen
			writeState(stateDir, s, log)
		},
		Stats:       counts,
		Sysinfo:     si,
		ProcDir:     "/proc",
		Journal:     jf,
		JournalBank: jbank,
		Resend:      notifyResend,

		Own:           own,
		OwnMountpoint: ownMP,
		OwnJournal:    ownJournal,
		OwnMount:      ownMount,
	}
	sup.Polls, sup.OnPolls = pollTable(how, fromStore, log)
	// The counters stay mapped until the process exits: a scrape may still
	// be reading them.
	err = sup.Run()
	os.Remove(statePath(stateDir))
	if err != nil {
		return err
	}
	log.Info("stopped", "mountpoint", mp)
	return nil
}

// pollsStoreName names the running worker's poll wakeup table in systemd's
// fd store.
const pollsStoreName = "lxcfs-polls"

// pollTable returns the poll wakeup table of the worker that served before
// this process (an upgrade's, passed across the exec; or, taken back from
// systemd's fd store, the one of a supervisor that died), and how each new
// worker's table is kept in the fd store.
func pollTable(how string, fromStore map[string]*os.File, log *slog.Logger) (*pollwake.Table, func(*os.File)) {
	var t *pollwake.Table
	var err error
	if how == howUpgrade {
		t, err = supervise.PollsFromEnv()
	} else if f := fromStore[pollsStoreName]; f != nil {
		t, err = pollwake.Open(f)
	}
	if err != nil {
		log.Warn("the previous worker's waiting pollers are not woken; they wait until their own timeout", "err", err)
	}
	return t, func(f *os.File) {
		sdnotify.Remove(pollsStoreName) // the previous worker's
		if _, err := sdnotify.Store(pollsStoreName, f); err != nil {
			log.Warn("cannot keep the poll wakeup table in the systemd fd store; pollers waiting when the whole daemon is restarted wait until their own timeout", "err", err)
		}
	}
}

const (
	howFDStore = "taken back from the systemd fd store"
	howUpgrade = "kept across upgrade"
)

// openStats maps the counters file: the one the binary before an upgrade
// counted into, else a fresh one. Without it the daemon serves uncounted.
func openStats(stateDir string, names []string, upgrade bool, log *slog.Logger) *stats.Region {
	path := stats.Path(stateDir)
	if upgrade {
		r, err := stats.Open(path, true, names)
		if err == nil {
			return r
		}
		log.Info("counting from zero: no counters from before the upgrade", "err", err)
	}
	r, err := stats.Create(path, names)
	if err != nil {
		log.Warn("cannot keep counters; status and metrics will show none", "err", err)
		return nil
	}
	return r
}

// acquire takes over the connection a previous binary passed on (upgrade),
// or the one kept in systemd's fd store (restart), or mounts a new one.
// stored says the new mount was kept in the fd store. fromStore is what
// systemd passed back (sdnotify.Take, read once for FUSE and sysinfo).
func acquire(mp string, fromStore map[string]*os.File, log *slog.Logger) (conn *fuse.Conn, how string, stored bool, err error) {
	conn, err = supervise.AdoptFromEnv()
	if err != nil {
		return nil, "", false, err
	}
	if conn != nil {
		return conn, howUpgrade, false, nil
	}
	for name, f := range fromStore {
		if !strings.HasPrefix(name, fdStorePrefix) {
			continue
		}
		proto, flags, err := parseStoreName(name)
		if err == nil {
			err = isFUSEDevice(f)
		}
		if err != nil {
			log.Warn("ignoring fd from the service manager", "name", name, "err", err)
			f.Close()
			continue
		}
		return fuse.NewConn(f, proto, flags), howFDStore, false, nil
	}
	conn, err = fusefs.Mount(mp, log)
	if err != nil {
		return nil, "", false, err
	}
	name := fmt.Sprintf("%s-%d-%d-%d", fdStorePrefix, conn.Protocol().Major, conn.Protocol().Minor, uint32(conn.Features()))
	if ok, err := sdnotify.Store(name, conn.File()); err != nil {
		log.Warn("cannot keep the FUSE connection in the systemd fd store; a restart will break containers' views until remounted", "err", err)
	} else if ok {
		log.Info("FUSE connection kept in the systemd fd store", "name", name)
		stored = true
	}
	return conn, "mounted", stored, nil
}

// acquireOwn is acquire for the containers' own connection (mounted at mp,
// below the first mount): kept across an upgrade, taken back from the fd
// store when its mount is still there, or mounted afresh, detached (mnt),
// for the supervisor to attach once the first connection is served.
func acquireOwn(mp, how string, fromStore map[string]*os.File, log *slog.Logger) (conn *fuse.Conn, mnt *os.File, ownHow string, stored bool, err error) {
	conn, err = supervise.AdoptOwnFromEnv()
	if err != nil {
		return nil, nil, "", false, err
	}
	if conn != nil {
		return conn, nil, howUpgrade, false, nil
	}
	for name, f := range fromStore {
		if !strings.HasPrefix(name, ownStorePrefix) {
			continue
		}
		proto, flags, err := parseStoreName(strings.Replace(name, ownStorePrefix, fdStorePrefix, 1))
		if err == nil {
			err = isFUSEDevice(f)
		}
		if err == nil && how == howFDStore && !ownMounted(mp) {
			// Its mount was never attached, or is gone: a connection
			// nobody reaches. The first one was kept, so the own one is
			// mounted again below it.
			err = errors.New("its mount is gone")
		}
		if err == nil && how != howFDStore {
			err = errors.New("the first connection was mounted afresh")
		}
		if err != nil {
			log.Warn("ignoring fd from the service manager", "name", name, "err", err)
			f.Close()
			sdnotify.Remove(name)
			continue
		}
		return fuse.NewConn(f, proto, flags), nil, howFDStore, false, nil
	}
	conn, mnt, err = fusefs.MountDetached()
	if err != nil {
		return nil, nil, "", false, err
	}
	name := fmt.Sprintf("%s-%d-%d-%d", ownStorePrefix, conn.Protocol().Major, conn.Protocol().Minor, uint32(conn.Features()))
	if ok, err := sdnotify.Store(name, conn.File()); err != nil {
		log.Warn("cannot keep the containers' own FUSE connection in the systemd fd store; a restart will break containers' views until remounted", "err", err)
	} else if ok {
		stored = true
	}
	return conn, mnt, "mounted", stored, nil
}

// ownMounted says whether a FUSE file system of ours is mounted at mp,
// from the mount table alone: the way to mp goes through the first
// connection, which nobody serves yet.
func ownMounted(mp string) bool {
	ms, err := mountinfo.GetMounts(mountinfo.SingleEntryFilter(mp))
	return err == nil && len(ms) > 0 && ms[0].Source == fusefs.FSName
}

// ownConnection says whether the containers' own files get a connection
// of their own: asked for, and possible (no open needs a TTL; PSI triggers
// are written through an open handle).
func ownConnection(c *cli.Context) bool {
	return c.Bool("own-connection") && c.Duration("cache-ttl") > 0 && !c.Bool("psi-triggers")
}

// journalStoreName names the request journal in systemd's fd store;
// ownJournalStoreName the own connection's.
const (
	journalStoreName    = "lxcfs-journal"
	ownJournalStoreName = "lxcfs-journal-own"
)

// requestJournal decides how requests a dead worker held get answered: by
// the kernel (FUSE_NOTIFY_RESEND, Linux 6.9+) or, where it has none, by the
// request journal (pkg/journal), returned here with the bank its current
// worker uses (after an upgrade). Only one of them runs: both would answer
// each such request twice. The kernel is asked once to resend: on a fresh
// mount nothing is in flight, and on a connection taken back from the fd
// store that resend is needed anyway.
func requestJournal(conn *fuse.Conn, how string, stored bool, fromStore map[string]*os.File, workers int, log *slog.Logger,
	journalStoreName string, fromEnv func() (*os.File, int, error)) (*os.File, int, error) {
	if how == howUpgrade {
		f, bank, err := fromEnv()
		if err != nil || f != nil || kernelAtLeast(kernelRelease(), 6, 9) || noRecovery() {
			// None: the previous binary used the kernel's resend. Its
			// worker still serves, so the kernel is not asked again.
			return f, bank, err
		}
		// The previous binary predates the journal on a kernel without
		// resend: what its worker holds at retirement is lost as before,
		// but this binary's workers journal from now on.
		f, err = journal.Create(fusefs.JournalSlots(workers), fuse.ReadBufferSize())
		if err != nil {
			log.Warn("no request journal: requests a dead worker held will not be answered", "err", err)
			return nil, 0, nil
		}
		return f, 0, nil
	}
	old := fromStore[journalStoreName]
	err := notifyResend(conn)
	if noRecovery() {
		return nil, 0, nil
	}
	if err == nil {
		if old != nil { // stored by a build that had no resend (a kernel since upgraded)
			old.Close()
			sdnotify.Remove(journalStoreName)
		}
		return nil, 0, nil
	}
	if !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOSYS) {
		log.Warn("FUSE_NOTIFY_RESEND failed; answering from the request journal instead", "err", err)
	}
	if old != nil {
		j, jerr := journal.Open(old, 0)
		if jerr == nil {
			j.Close()
			log.Info("request journal taken back from the systemd fd store: answering what the previous process left")
			return old, 0, nil
		}
		log.Warn("ignoring the request journal from the service manager", "err", jerr)
		old.Close()
	}
	f, err := journal.Create(fusefs.JournalSlots(workers), fuse.ReadBufferSize())
	if err != nil {
		return nil, 0, fmt.Errorf("the kernel has no FUSE_NOTIFY_RESEND (Linux 6.9+), and %w", err)
	}
	log.Info("kernel has no FUSE_NOTIFY_RESEND (Linux 6.9+): requests a dead worker held are answered from the request journal")
	if stored || how == howFDStore {
		if _, err := sdnotify.Store(journalStoreName, f); err != nil {
			log.Warn("cannot keep the request journal in the systemd fd store; reads in flight when the whole daemon is restarted will hang", "err", err)
		}
	}
	return f, 0, nil
}

// isFUSEDevice checks that f is /dev/fuse (character device 10:229): a
// descriptor handed back under our name is served as a FUSE connection, and
// anything else (a stale or mixed-up fd store) must not be.
func isFUSEDevice(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 10 || unix.Minor(st.Rdev) != 229 {
		return fmt.Errorf("not /dev/fuse (mode %#o, device %d:%d)", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return nil
}

func parseStoreName(name string) (fuse.Protocol, fuse.InitFlags, error) {
	parts := strings.Split(strings.TrimPrefix(name, fdStorePrefix+"-"), "-")
	if len(parts) != 3 {
		return fuse.Protocol{}, 0, fmt.Errorf("want %s-MAJOR-MINOR-FLAGS", fdStorePrefix)
	}
	var n [3]uint64
	for i, p := range parts {
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return fuse.Protocol{}, 0, fmt.Errorf("want %s-MAJOR-MINOR-FLAGS: %w", fdStorePrefix, err)
		}
		n[i] = v
	}
	return fuse.Protocol{Major: uint32(n[0]), Minor: uint32(n[1])}, fuse.InitFlags(n[2]), nil
}

// reattach gives containers whose views died with a lost connection fresh
// ones from this mount.
func reattach(ctx context.Context, stateDir, mp string, counts *stats.Region, log *slog.Logger) {
	outcomes, errs := remount.Run(ctx, stateDir, mp, remount.DefaultTimeout)
	for _, err := range errs {
		log.Warn("remount: bad record", "err", err)
	}
	for _, o := range outcomes {
		switch {
		case o.Gone:
			log.Info("remount: container gone; record dropped", "container", o.ID)
		case o.Err != nil:
			log.Warn("remount: cannot re-attach views", "container", o.ID, "reattached", len(o.Reattached), "err", o.Err)
			counts.Add(stats.RemountFailed, 1)
		case len(o.Reattached) > 0:
			log.Info("remount: views re-attached", "container", o.ID, "targets", strings.Join(o.Reattached, ","))
			counts.Add(stats.RemountReattached, 1)
		default:
			log.Debug("remount: views still live", "container", o.ID)
		}
	}
}

func writeState(dir string, s state, log *slog.Logger) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Warn("cannot write state", "dir", dir, "err", err)
		return
	}
	b, _ := json.Marshal(s)
	if err := edit.WriteAtomic(statePath(dir), b, 0o644); err != nil {
		log.Warn("cannot write state", "err", err)
	}
}

func readState(dir string) (state, error) {
	var s state
	b, err := os.ReadFile(statePath(dir))
	if err != nil {
		return s, fmt.Errorf("read %s (is lxcfs-fused running with --state-dir %s?): %w", statePath(dir), dir, err)
	}
	if err := json.Unmarshal(b, &s); err != nil || s.Pid <= 0 {
		return s, fmt.Errorf("parse %s: %v", statePath(dir), err)
	}
	return s, nil
}

func upgradeCmd(c *cli.Context) error {
	dir := stateDirOf(c)
	before, err := readState(dir)
	if err != nil {
		return err
	}
	// The state file outlives a supervisor killed without cleaning up, and
	// its pid may since belong to another process, which SIGHUP would stop.
	if now, err := remount.StartTicks(before.Pid); before.PidStart != 0 && (err != nil || now != before.PidStart) {
		return fmt.Errorf("pid %d in %s is no longer the lxcfs-fused supervisor (it exited; the pid is gone or reused): start the daemon instead of upgrading it", before.Pid, statePath(dir))
	}
	if err := syscall.Kill(before.Pid, syscall.SIGHUP); err != nil {
		return fmt.Errorf("signal supervisor %d: %w", before.Pid, err)
	}
	deadline := time.Now().Add(c.Duration("timeout"))
	for time.Now().Before(deadline) {
		now, err := readState(dir)
		if err == nil && now.Generation > before.Generation {
			fmt.Fprintf(c.App.Writer, "upgraded: supervisor %d, worker %d -> %d, generation %d\n", now.Pid, before.Worker, now.Worker, now.Generation)
			return nil
		}
		if errors.Is(syscall.Kill(before.Pid, 0), syscall.ESRCH) {
			return fmt.Errorf("supervisor %d exited during the upgrade; see its log", before.Pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("supervisor %d did not report the new binary serving within %v; see its log", before.Pid, c.Duration("timeout"))
}
