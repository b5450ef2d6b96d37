// Package supervise keeps a FUSE connection served across crashes and
// upgrades. The supervisor process holds the connection's /dev/fuse file and
// runs the serving worker as a child; a worker that dies is replaced at once
// and the kernel is asked to resend what it had read but not answered, and an
// upgrade re-executes the supervisor's binary with the file kept open. Readers
// see a pause, never an error: the mount and the connection never go away.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"bazil.org/fuse"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/pollwake"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/sysinfo"
)

// Environment variables passing a connection to a worker or to the
// re-executed supervisor.
const (
	EnvConn       = "LXCFS_FUSED_CONN"       // fd=N,proto=MAJ.MIN,flags=F
	EnvOwnConn    = "LXCFS_FUSED_OWN_CONN"   // the containers' own connection, as EnvConn
	EnvOldWorker  = "LXCFS_FUSED_OLD_WORKER" // pid of the worker to retire after an upgrade
	EnvGeneration = "LXCFS_FUSED_GENERATION" // upgrades so far
)

// EncodeConn describes a connection for EnvConn.
func EncodeConn(fd int, proto fuse.Protocol, flags fuse.InitFlags) string {
	return fmt.Sprintf("fd=%d,proto=%d.%d,flags=%d", fd, proto.Major, proto.Minor, uint32(flags))
}

// DecodeConn parses EnvConn's value.
func DecodeConn(s string) (fd int, proto fuse.Protocol, flags fuse.InitFlags, err error) {
	return decodeConn(EnvConn, s)
}

func decodeConn(env, s string) (fd int, proto fuse.Protocol, flags fuse.InitFlags, err error) {
	seen := 0
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return 0, proto, 0, fmt.Errorf("%s=%q: want fd=N,proto=MAJ.MIN,flags=F", env, s)
		}
		switch k {
		case "fd":
			fd, err = strconv.Atoi(v)
			if err == nil && fd < 3 {
				err = fmt.Errorf("fd %d is a standard stream", fd)
			}
		case "proto":
			maj, min, ok := strings.Cut(v, ".")
			var a, b uint64
			if a, err = strconv.ParseUint(maj, 10, 32); err == nil && ok {
				b, err = strconv.ParseUint(min, 10, 32)
			} else if err == nil {
				err = fmt.Errorf("proto %q: want MAJ.MIN", v)
			}
			proto = fuse.Protocol{Major: uint32(a), Minor: uint32(b)}
		case "flags":
			var f uint64
			f, err = strconv.ParseUint(v, 10, 32)
			flags = fuse.InitFlags(f)
		default:
			err = fmt.Errorf("unknown key %q", k)
		}
		if err != nil {
			return 0, proto, 0, fmt.Errorf("%s=%q: %w", env, s, err)
		}
		seen++
	}
	if seen != 3 || proto.Major != 7 {
		return 0, proto, 0, fmt.Errorf("%s=%q: want fd, proto 7.x and flags", env, s)
	}
	return fd, proto, flags, nil
}

// AdoptFromEnv returns the connection a parent passed in EnvConn, or nil
// when there is none. The variable is cleared so children do not inherit it.
func AdoptFromEnv() (*fuse.Conn, error) { return adoptConn(EnvConn) }

// AdoptOwnFromEnv is AdoptFromEnv for the containers' own connection
// (EnvOwnConn), nil when the daemon serves none.
func AdoptOwnFromEnv() (*fuse.Conn, error) { return adoptConn(EnvOwnConn) }

func adoptConn(env string) (*fuse.Conn, error) {
	v, ok := os.LookupEnv(env)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(env)
	fd, proto, flags, err := decodeConn(env, v)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 10 || unix.Minor(st.Rdev) != 229 {
		return nil, fmt.Errorf("%s: fd %d is not an open /dev/fuse (%v)", env, fd, err)
	}
	unix.CloseOnExec(fd)
	return fuse.NewConn(os.NewFile(uintptr(fd), "/dev/fuse"), proto, flags), nil
}

// ExitUnmounted is the worker's exit code when the connection ended (the
// file system was unmounted from under the daemon): another worker would be
// useless, so the supervisor exits too and the next start mounts afresh.
const ExitUnmounted = 3

// ErrUnmounted is returned by Run when the file system was unmounted by
// someone else.
var ErrUnmounted = errors.New("the file system was unmounted from under the daemon; start it again to mount afresh (views in running containers are re-attached then)")

// Supervisor runs and replaces the serving worker of one mounted connection.
type Supervisor struct {
	Conn       *fuse.Conn
	Mountpoint string
	Exe        string   // this program, re-executed for workers and upgrades
	WorkerArgs []string // arguments that make Exe a worker
	Log        *slog.Logger
	// OnServing runs once, after the first worker started (remounting views
	// in containers needs the file system answering).
	// It is handed a context that ends when the daemon stops, and the stop
	// waits for it to return (see stop).
	OnServing func(context.Context)
	// Adopted says the connection was served by another process before
	// (systemd's fd store): what it had read unanswered is resent at start.
	Adopted bool
	// State, when set, is told the pids after every change, for the
	// upgrade command and operators.
	State func(workerPid, generation int)
	// Sysinfo, when set, is the sysinfo listener whose descriptors are
	// held and handed over with the connection.
	Sysinfo *Sysinfo
	// ProcDir is the host's /proc, where registrations are checked.
	ProcDir string
	// Stats, when set, counts worker starts and deaths, upgrades and
	// whether the kernel has FUSE_NOTIFY_RESEND.
	Stats *stats.Region
	// Journal, when set, is the request journal (pkg/journal) that answers
	// what a dead worker held, for kernels without FUSE_NOTIFY_RESEND; the
	// kernel's resend is then not asked for. JournalBank is the bank the
	// inherited worker serves from, after an upgrade.
	Journal     *os.File
	JournalBank int
	// Resend, when set, asks the kernel to resend what a dead worker held
	// on a connection, in place of NotifyResend (the tests' builds can
	// refuse it).
	Resend func(*fuse.Conn) error
	// Own, when set, is the containers' own connection (fusefs.ServeOwn),
	// mounted at OwnMountpoint below Mountpoint, held and handed over as
	// Conn is; OwnJournal is its request journal, with Journal's banks.
	// OwnMount, when set, is its mount, detached: attached once the first
	// worker serves Conn (the way to OwnMountpoint goes through it).
	Own           *fuse.Conn
	OwnMountpoint string
	OwnJournal    *os.File
	OwnMount      *os.File
	// Polls, when set, is the poll wakeup table (pkg/pollwake) of a worker
	// that served before this process: the previous binary's, after an
	// upgrade (woken once it is retired), or the one systemd kept for a
	// supervisor that died (woken at start). OnPolls, when set, is given
	// each new worker's table (the systemd fd store).
	Polls   *pollwake.Table
	OnPolls func(*os.File)

	worker     *exec.Cmd
	started    time.Time
	workerDone chan error
	generation int
	// retiring is the previous binary's worker being retired after an
	// upgrade; a second upgrade waits for it (see upgrade).
	retiring   sync.WaitGroup
	resendWarn bool
	bank       int             // the journal bank the current worker reads into
	polls      *pollwake.Table // the current worker's
	// serving is the goroutine that attaches the own mount and runs
	// OnServing; stopping ends its context.
	serving  sync.WaitGroup
	stopping context.CancelFunc
	// ownTried is done once the own mount's attach was tried: an upgrade
	// waits for it, as a detached mount does not survive the exec.
	ownTried sync.WaitGroup
}

// sysinfoSweep is how often containers whose tasks all exited are dropped.
const sysinfoSweep = 10 * time.Second

// restartPause is how long a worker that keeps dying is left down between
// attempts, so a crash loop does not spin a CPU.
const restartPause = time.Second

// Run serves until SIGTERM or SIGINT (then unmounts and stops the worker),
// replacing a dead worker at once and upgrading on SIGHUP. It returns only
// on stop or when an upgrade's exec fails badly; a successful upgrade does
// not return: the process becomes the new binary.
func (s *Supervisor) Run() error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	s.generation, _ = strconv.Atoi(os.Getenv(EnvGeneration))
	old, _ := strconv.Atoi(os.Getenv(EnvOldWorker))
	os.Unsetenv(EnvOldWorker)
	os.Unsetenv(EnvGeneration)

	// The previous binary's worker still serves from its bank; the new
	// one answers what is left there once it has exited.
	var after *os.File
	if old > 0 && s.Journal != nil {
		s.bank = 1 - s.JournalBank
		if fd, err := unix.PidfdOpen(old, 0); err == nil {
			after = os.NewFile(uintptr(fd), "pidfd")
		}
	}
	err := s.start(after)
	if after != nil {
		after.Close()
	}
	if err != nil {
		return err
	}
	if s.Journal != nil {
		s.Stats.Set(stats.NotifyResend, ResendJournal)
	}
	if old > 0 {
		s.Stats.Add(stats.Upgrades, 1)
		s.retiring.Add(1)
		go func() { defer s.retiring.Done(); s.retire(old) }()
	} else {
		if s.Adopted {
			s.resend()
		}
		s.wakePolls(s.Polls) // the worker of a supervisor that died
		s.Polls = nil
	}
	s.ownTried.Add(1)
	ctx, stopping := context.WithCancel(context.Background())
	defer stopping()
	s.stopping = stopping
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		// Views are re-attached from the own mount: attach it first.
		s.attachOwn()
		s.ownTried.Done()
		if s.OnServing != nil {
			s.OnServing(ctx)
		}
	}()
	var regs chan sysinfo.Registration
	var sweep <-chan time.Time
	if s.Sysinfo != nil {
		regs = s.Sysinfo.regs
		go s.Sysinfo.accept(s.ProcDir)
		t := time.NewTicker(sysinfoSweep)
		defer t.Stop()
		sweep = t.C
	}
	var quickDeaths int
	for {
		select {
		case reg := <-regs:
			s.Sysinfo.register(reg)
		case <-sweep:
			s.Sysinfo.sweep()
		case err := <-s.workerDone:
			if errors.Is(err, errWorkerUnmounted) {
				return ErrUnmounted
			}
			if s.Sysinfo != nil {
				s.Sysinfo.workerDied()
			}
			lived := time.Since(s.started)
			s.Stats.Add(stats.WorkerDeaths, 1)
			s.Log.Warn("serving worker died; starting another", "pid", s.worker.Process.Pid, "err", err, "lived", lived.Round(time.Millisecond))
			if lived < restartPause {
				quickDeaths++
			} else {
				quickDeaths = 0
			}
			if quickDeaths >= 3 {
				time.Sleep(restartPause)
			}
			s.wakePolls(s.polls)
			s.polls = nil
			if s.Journal != nil {
				// The next worker reads into the bank the dead one did not
				// and answers what it left; a previous binary's worker
				// still retiring must be gone first, as it owns that bank.
				s.retiring.Wait()
				s.bank = 1 - s.bank
			}
			if err := s.start(nil); err != nil {
				s.Log.Error("cannot start a serving worker; retrying", "err", err)
				time.Sleep(restartPause)
				go func() { s.workerDone <- err }()
				continue
			}
			s.resend()
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				s.upgrade()
			case syscall.SIGUSR1:
				s.worker.Process.Signal(syscall.SIGUSR1)
			default:
				return s.stop(sig)
			}
		}
	}
}

// start runs a new worker on the connection's file, passed as fd 3, and
// the journal, if any, reading into bank s.bank; after, when set, is a
// pidfd of the worker still serving the other bank.
func (s *Supervisor) start(after *os.File) error {
	cmd := exec.Command(s.Exe, s.WorkerArgs...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{s.Conn.File()}
	cmd.Env = append(os.Environ(), EnvConn+"="+EncodeConn(3, s.Conn.Protocol(), s.Conn.Features()))
	if s.Journal != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.Journal)
		afterFd := -1
		if after != nil {
			cmd.ExtraFiles = append(cmd.ExtraFiles, after)
			afterFd = 5
		}
		cmd.Env = append(cmd.Env, EnvJournal+"="+encodeJournal(4, s.bank, afterFd))
	}
	if s.Own != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.Own.File())
		cmd.Env = append(cmd.Env, EnvOwnConn+"="+EncodeConn(2+len(cmd.ExtraFiles), s.Own.Protocol(), s.Own.Features()))
	}
	if s.Own != nil && s.OwnJournal != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.OwnJournal)
		jfd, afterFd := 2+len(cmd.ExtraFiles), -1
		if after != nil {
			// A pidfd of its own: each journal's waiter closes its own.
			if fd, err := unix.Dup(int(after.Fd())); err == nil {
				dup := os.NewFile(uintptr(fd), "pidfd")
				defer dup.Close()
				cmd.ExtraFiles = append(cmd.ExtraFiles, dup)
				afterFd = 2 + len(cmd.ExtraFiles)
			}
		}
		cmd.Env = append(cmd.Env, EnvOwnJournal+"="+encodeJournal(jfd, s.bank, afterFd))
	}
	if s.polls = s.newPolls(); s.polls != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, s.polls.File())
		cmd.Env = append(cmd.Env, EnvPolls+"=fd="+strconv.Itoa(2+len(cmd.ExtraFiles)))
	}
	if s.Sysinfo != nil {
		files, env, err := s.Sysinfo.workerFiles(3 + len(cmd.ExtraFiles))
		if err != nil {
			s.Log.Warn("sysinfo: the worker starts without the containers' notification fds", "err", err)
		} else {
			defer files[0].Close() // the worker's end of its control socket
			cmd.ExtraFiles = append(cmd.ExtraFiles, files...)
			cmd.Env = append(cmd.Env, EnvSysinfo+"="+env)
		}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start serving worker %s: %w", s.Exe, err)
	}
	s.started = time.Now()
	s.worker = cmd
	s.Stats.Add(stats.WorkerStarts, 1)
	done := make(chan error, 1)
	s.workerDone = done
	exited := make(chan struct{})
	go func() {
		err := cmd.Wait()
		if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == ExitUnmounted {
			err = errWorkerUnmounted
		}
		close(exited)
		select {
		case done <- err:
		default: // reported dying already
		}
	}()
	go func() {
		if waitDying(cmd.Process.Pid, exited) {
			select {
			case done <- errWorkerDying:
			default:
			}
		}
	}()
	s.Log.Info("serving worker started", "pid", cmd.Process.Pid, "generation", s.generation)
	if s.State != nil {
		s.State(cmd.Process.Pid, s.generation)
	}
	return nil
}

// resend asks the kernel to queue again what a dead worker had read but not
// answered. Kernels before 6.9 lack it: there the journal (s.Journal)
// does that job, in the next worker, and the kernel is not asked.
func (s *Supervisor) resend() {
	if s.Journal != nil {
		s.Stats.Set(stats.NotifyResend, ResendJournal)
		return
	}
	resend := (*fuse.Conn).NotifyResend
	if s.Resend != nil {
		resend = s.Resend
	}
	if s.Own != nil {
		if err := resend(s.Own); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOSYS) {
			s.Log.Warn("FUSE_NOTIFY_RESEND failed on the containers' own connection", "err", err)
		}
	}
	err := resend(s.Conn)
	switch {
	case err == nil:
		s.Stats.Set(stats.NotifyResend, ResendWorks)
	case errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS):
		s.Stats.Set(stats.NotifyResend, ResendMissing)
		if !s.resendWarn {
			s.resendWarn = true
			s.Log.Warn("kernel has no FUSE_NOTIFY_RESEND (Linux 6.9+) and no request journal was set up: a read the dead worker had taken is never answered")
		}
	default:
		s.Log.Warn("FUSE_NOTIFY_RESEND failed", "err", err)
	}
}

// Values of the stats.NotifyResend counter: 0 until a resend was tried.
const (
	ResendWorks   = 1
	ResendMissing = 2
	ResendJournal = 3 // the kernel has none; the request journal answers instead
)

// retire stops the worker of the previous binary once the new one serves,
// then has the kernel resend anything it was holding.
func (s *Supervisor) retire(pid int) {
	p, err := os.FindProcess(pid)
	if err != nil {
		return
	}
	p.Signal(syscall.SIGTERM)
	// It is our child (the pid survived the exec), so we can reap it.
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	dying := make(chan struct{})
	go func() {
		if waitDying(pid, done) {
			close(dying)
		}
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		p.Kill()
		select {
		case <-done:
		case <-dying:
		}
	case <-dying:
	}
	s.Log.Info("previous serving worker retired", "pid", pid)
	if s.Sysinfo != nil {
		s.Sysinfo.retired()
	}
	s.resend()
	s.wakePolls(s.Polls)
	s.Polls = nil
}

// upgrade re-executes Exe (the binary now at that path) as supervisor,
// keeping the connection's file open across the exec and the worker running
// until the new binary's worker has started.
func (s *Supervisor) upgrade() {
	// Until the previous worker is retired and the kernel has resent what
	// it held, a thread of ours may wait on such a request (reattach's walk
	// of the views); exec would wait for that thread forever, and the new
	// binary would not know to resend. Retiring is bounded (SIGKILL after
	// 2s), so this wait is too.
	s.retiring.Wait()
	s.ownTried.Wait()
	if s.OwnMount != nil {
		s.attachOwn() // once more: a detached mount ends with this binary
	}
	fd := int(s.Conn.File().Fd())
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		s.Log.Error("upgrade: cannot keep the FUSE device open across exec", "err", err)
		return
	}
	env := append(os.Environ(),
		EnvConn+"="+EncodeConn(fd, s.Conn.Protocol(), s.Conn.Features()),
		EnvOldWorker+"="+strconv.Itoa(s.worker.Process.Pid),
		EnvGeneration+"="+strconv.Itoa(s.generation+1),
	)
	if s.Sysinfo != nil {
		v, err := s.Sysinfo.upgradeEnv()
		if err != nil {
			s.Log.Error("upgrade: cannot keep the sysinfo descriptors open across exec; the running binary keeps serving", "err", err)
			unix.CloseOnExec(fd)
			return
		}
		env = append(env, EnvSysinfo+"="+v)
	}
	if s.Journal != nil {
		jfd := int(s.Journal.Fd())
		if _, err := unix.FcntlInt(uintptr(jfd), unix.F_SETFD, 0); err != nil {
			s.Log.Error("upgrade: cannot keep the request journal open across exec; the running binary keeps serving", "err", err)
			unix.CloseOnExec(fd)
			return
		}
		defer unix.CloseOnExec(jfd)
		env = append(env, EnvJournal+"="+encodeJournal(jfd, s.bank, -1))
	}
	if s.Own != nil {
		// The own mount is attached by now (attachOwn ran before the
		// first worker's views were re-attached, and an upgrade waits
		// for nothing of it): only the connection goes across.
		keep := []int{int(s.Own.File().Fd())}
		if s.OwnJournal != nil {
			keep = append(keep, int(s.OwnJournal.Fd()))
		}
		for _, k := range keep {
			if _, err := unix.FcntlInt(uintptr(k), unix.F_SETFD, 0); err != nil {
				s.Log.Error("upgrade: cannot keep the containers' own connection open across exec; the running binary keeps serving", "err", err)
				unix.CloseOnExec(fd)
				return
			}
			defer unix.CloseOnExec(k)
		}
		env = append(env, EnvOwnConn+"="+EncodeConn(keep[0], s.Own.Protocol(), s.Own.Features()))
		if len(keep) > 1 {
			env = append(env, EnvOwnJournal+"="+encodeJournal(keep[1], s.bank, -1))
		}
	}
	if s.polls != nil {
		pfd := int(s.polls.File().Fd())
		if _, err := unix.FcntlInt(uintptr(pfd), unix.F_SETFD, 0); err == nil {
			defer unix.CloseOnExec(pfd)
			env = append(env, EnvPolls+"=fd="+strconv.Itoa(pfd))
		} else {
			s.Log.Warn("upgrade: the poll wakeup table is not passed on; pollers of the retired worker wait until their own timeout", "err", err)
		}
	}
	s.Log.Info("upgrading: executing the binary again with the FUSE connection kept", "exe", s.Exe, "generation", s.generation+1)
	err := syscall.Exec(s.Exe, os.Args, env)
	unix.CloseOnExec(fd)
	s.Log.Error("upgrade failed; the running binary keeps serving", "exe", s.Exe, "err", err)
}

// attachOwn attaches the containers' own mount, made detached, at
// OwnMountpoint; the way there is a lookup on the first connection, which
// only a worker answers. Until it is attached (or if it cannot be), the
// hook binds the containers' own files from the first connection, as
// without it. The detached mount stays open then: closing it would end the
// connection, and with it the worker.
func (s *Supervisor) attachOwn() {
	if s.OwnMount == nil {
		return
	}
	if err := fusefs.Attach(s.OwnMount, s.OwnMountpoint, s.Log); err != nil {
		s.Log.Error("the containers' own files stay on the first connection (OPEN and RELEASE reach the daemon)", "err", err)
		return
	}
	s.OwnMount.Close()
	s.OwnMount = nil
	s.Log.Info("containers' own files served on a connection of their own", "mountpoint", s.OwnMountpoint)
}

// stop unmounts (ending the connection once the worker lets go of it),
// stops the worker, and closes the connections' devices.
func (s *Supervisor) stop(sig os.Signal) error {
	s.Log.Info("stopping", "signal", sig.String(), "mountpoint", s.Mountpoint)
	// Our own requests to the mount (attaching the own mount, the
	// re-attach's stat of every view) are answered only while the worker
	// serves: one it had read when it is stopped would never be, and the
	// thread waiting on it could not even be killed. So they end first;
	// the re-attach starts no container after this. The bound only keeps
	// a wedged worker from holding the stop for ever.
	s.stopping()
	if !waitGroupWithin(&s.serving, servingStopWait) {
		s.Log.Warn("stopping while the re-attach still waits on the file system", "waited", servingStopWait)
	}
	if s.Sysinfo != nil {
		s.Sysinfo.Close()
	}
	var uerr error
	if s.Own != nil {
		// Below the first: it goes first, or the first would only be
		// detached lazily.
		uerr = fusefs.Unmount(s.OwnMountpoint)
	}
	uerr = errors.Join(uerr, fusefs.Unmount(s.Mountpoint))
	s.worker.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.workerDone:
	case <-time.After(2 * time.Second):
		s.worker.Process.Kill()
		<-s.workerDone
	}
	// A thread of ours may still wait on a request to our own mount (the
	// re-attach stats every container's views) that a dead worker had read
	// and nobody will answer: the kernel lets no task abandon such a
	// request, not even on SIGKILL, so the process could never finish
	// exiting, and exit would never close the device, which is what ends
	// the wait. Closing it here, with the worker gone, ends the connection
	// now when ours is its last descriptor (exit would do the same), and
	// every such request with it. A copy kept elsewhere (systemd's fd
	// store, for a restart) keeps the connection.
	for _, c := range []*fuse.Conn{s.Own, s.Conn} {
		if c == nil {
			continue
		}
		if err := c.Close(); err != nil {
			s.Log.Warn("closing the FUSE device", "err", err)
		}
	}
	return uerr
}

// servingStopWait bounds how long a stop waits for the re-attach to let go
// of the mount. A live worker answers its requests in milliseconds; a
// container that stalls the re-attach is left behind after its own time
// limit (remount.DefaultTimeout, in parallel with the others), and a
// request lost with no journal or resend to answer it never ends: the
// stop then goes on without waiting (and closes the device).
const servingStopWait = 10 * time.Second

// waitGroupWithin waits for wg up to d and says whether it finished.
func waitGroupWithin(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// WatchParent exits the process when its parent (the supervisor) dies, so a
// killed supervisor does not leave a worker serving a mount nobody manages.
// An exec of the parent (an upgrade) is not a death.
func WatchParent(log *slog.Logger) {
	ppid := os.Getppid()
	pidfd, err := unix.PidfdOpen(ppid, 0)
	if err != nil {
		log.Warn("cannot watch the supervisor", "ppid", ppid, "err", err)
		return
	}
	go func() {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			_, err := linux.Poll(fds, -1)
			if err == nil && fds[0].Revents != 0 {
				log.Error("supervisor died; worker exiting", "ppid", ppid)
				os.Exit(1)
			}
			if err != nil {
				return
			}
		}
	}()
}

var (
	errWorkerUnmounted = errors.New("the worker found the connection ended")
	errWorkerDying     = errors.New("killed; a thread of it is still held in the kernel")
)

// waitDying reports true when the process pid is dying but cannot finish:
// its main thread has exited (a Go program's main thread exits only with
// the process) and other threads remain for longer than a request takes.
// That happens when a worker is killed while a thread of it waits in the
// kernel for a page that a reader holds locked until its READ is answered
// (a size store, NOTIFY_STORE): only the next worker can answer it, so the
// next one must start before the dying one is reaped. false when exited
// closes first.
func waitDying(pid int, exited <-chan struct{}) bool {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	seen := 0
	for {
		select {
		case <-exited:
			return false
		case <-t.C:
		}
		if leaderExited(pid) {
			seen++
		} else {
			seen = 0
		}
		if seen >= 3 {
			return true
		}
	}
}

// leaderExited says whether the main thread of pid has exited (state Z or
// X in /proc/PID/stat).
func leaderExited(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}
