package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/caller"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/mountns"
)

// spareIDs is how many container IDs are kept reserved with their trees
// looked up and their views cloned: a burst of starts beyond it is served
// with fresh IDs, whose names the hooks look up as before.
const spareIDs = 4

// spareGrace is how long a given spare's names stay cached for good: its
// container's views are bound within milliseconds of registering. After
// that they are dropped (fusefs.FS.ForgetNames) and live as any
// container's, gone soon after the container is.
const spareGrace = 5 * time.Second

// refillPause is how long after a spare is taken another is prepared: the
// container's start goes on for a few milliseconds after its registration.
const refillPause = 20 * time.Millisecond

// warmWithin bounds the wait for the helper: its lookups are answered in
// milliseconds by a live worker.
const warmWithin = 30 * time.Second

// spares keeps spareIDs container IDs reserved (caller.Resolver.Reserve),
// each with every file a hook binds looked up on the mount and cloned as a
// view (mountns.Prepare): a container given one at registration has its
// views bound with no round trip to this daemon, by the hook or by the
// daemon itself when the hook delegates create-runtime (hookrun.Daemon).
//
// This process never looks up its own mount itself: a request of its own
// that it had read when it was killed would hold its exit for as long as
// no other worker answers it. A helper process (the hidden warm command,
// started once) opens the files and passes the descriptors back; the
// clones are made from those (mountns.PrepareOpened), with no lookup.
type spares struct {
	r       *caller.Resolver
	tree    *fusefs.FS
	mp      string // the mountpoint, absolute
	own     bool   // the containers' own connection is served
	entries []string
	log     *slog.Logger

	mu       sync.Mutex
	prepared map[uint32]*mountns.Prepared

	// The helper's end of its socket pair, -1 until it is started at the
	// first spare (run's goroutine only).
	helper int
}

// run keeps the spares until ctx is done. It stops at the first failure,
// saying so: registrations then take fresh IDs, as before spares.
func (s *spares) run(ctx context.Context) {
	defer s.closeAll()
	if s.own {
		waitOwn(ctx, s.mp)
	}
	for {
		for s.r.Ready() < spareIDs {
			id, err := s.r.Reserve()
			if err == nil {
				err = s.prepare(ctx, id)
			}
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("no more spare container IDs: new containers' files are looked up at their start", "err", err)
				}
				return
			}
			s.r.Offer(id)
		}
		select {
		case <-ctx.Done():
			return
		case <-s.r.Taken():
		}
		// The start that took the spare is still binding its views:
		// refilling now would compete with it for the CPU.
		select {
		case <-ctx.Done():
			return
		case <-time.After(refillPause):
		}
		given := s.r.Given()
		time.AfterFunc(spareGrace, func() {
			for _, id := range given {
				s.tree.ForgetNames(id)
				if p := s.take(id); p != nil {
					p.Close() // given to a hook that bound them itself
				}
			}
		})
	}
}

// prepare has the helper open the views of spare id's tree (the lookups)
// and clones them from the descriptors it sends back.
func (s *spares) prepare(ctx context.Context, id uint32) error {
	mounts := hook.Plan(filepath.Join(s.mp, ".containers", strconv.FormatUint(uint64(id), 10)), s.entries...)
	paths := make([]string, len(mounts))
	for i, m := range mounts {
		paths[i] = m.Source
	}
	files, err := s.open(ctx, paths)
	if err != nil {
		return fmt.Errorf("look up spare %d's files: %w", id, err)
	}
	p, err := mountns.PrepareOpened(mounts, files)
	if err != nil {
		return fmt.Errorf("clone spare %d's views: %w", id, err)
	}
	s.mu.Lock()
	s.prepared[id] = p
	s.mu.Unlock()
	s.log.Debug("spare container ID ready", "id", id)
	return nil
}

// open has the helper open paths (O_PATH) and returns the descriptors it
// sends back, in order. One message each way on a SOCK_SEQPACKET pair:
// the paths, one a line; then "ok" with the descriptors, or the error. The
// helper is started at the first call and lives as long as this process
// (its end of the pair closes with it).
func (s *spares) open(ctx context.Context, paths []string) ([]*os.File, error) {
	if s.helper < 0 {
		if err := s.startHelper(); err != nil {
			return nil, err
		}
	}
	for _, p := range paths {
		if strings.ContainsRune(p, '\n') {
			return nil, fmt.Errorf("path %q has a newline", p)
		}
	}
	if _, err := linux.Write(s.helper, []byte(strings.Join(paths, "\n"))); err != nil {
		return nil, fmt.Errorf("ask the helper: %w", err)
	}
	// A lookup a dead worker had taken is answered by the next one (or
	// never, if the kernel and the daemon cannot resend it): the helper
	// is then left waiting, and so are spares.
	fds := []unix.PollFd{{Fd: int32(s.helper), Events: unix.POLLIN}}
	n, err := linux.Poll(fds, int(warmWithin.Milliseconds()))
	if err == nil && n == 0 {
		err = fmt.Errorf("no answer within %s", warmWithin)
	}
	if err != nil {
		return nil, fmt.Errorf("the helper's answer: %w", err)
	}
	buf, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4*len(paths)))
	n, oobn, err := linux.Recvmsg(s.helper, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("the helper's answer: %w", err)
	}
	got := linux.Rights(oob[:oobn])
	if string(buf[:n]) != "ok" || len(got) != len(paths) {
		for _, fd := range got {
			unix.Close(fd)
		}
		if n == 0 {
			return nil, errors.New("the helper exited")
		}
		return nil, fmt.Errorf("the helper: %s (%d descriptors for %d paths)", buf[:n], len(got), len(paths))
	}
	files := make([]*os.File, len(got))
	for i, fd := range got {
		files[i] = os.NewFile(uintptr(fd), paths[i])
	}
	return files, nil
}

// startHelper starts the helper (the hidden warm command) with its end of
// a socket pair as descriptor 3.
func (s *spares) startHelper() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket pair for the helper: %w", err)
	}
	theirs := os.NewFile(uintptr(pair[1]), "helper")
	defer theirs.Close()
	cmd := exec.Command(exe, "warm")
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = []*os.File{theirs}
	if err := cmd.Start(); err != nil {
		unix.Close(pair[0])
		return fmt.Errorf("start the helper: %w", err)
	}
	go cmd.Wait()
	s.helper = pair[0]
	return nil
}

// take hands over spare id's cloned views, or nil.
func (s *spares) take(id uint32) *mountns.Prepared {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.prepared[id]
	delete(s.prepared, id)
	return p
}

func (s *spares) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range s.prepared {
		p.Close()
		delete(s.prepared, id)
	}
}

// waitOwn waits until the containers' own connection is attached over
// MOUNT/.containers (the supervisor does that once this worker serves),
// reading the mount table rather than looking the name up: files opened
// before would be the first connection's. It gives up after warmWithin,
// and the spares are then the first connection's files.
func waitOwn(ctx context.Context, mp string) {
	want := " " + filepath.Join(mp, ".containers") + " "
	for deadline := time.Now().Add(warmWithin); time.Now().Before(deadline); {
		if b, err := os.ReadFile("/proc/self/mountinfo"); err != nil || bytes.Contains(b, []byte(want)) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// warmCmd is the helper (a hidden command): for each message of paths on
// descriptor 3, one a line, it opens each (O_PATH: the lookups, which leave
// the names in the kernel's cache) and answers "ok" with the descriptors,
// or the first error. It ends when the worker's end closes.
func warmCmd(c *cli.Context) error {
	const sock = 3
	buf := make([]byte, 64<<10)
	for {
		n, err := linux.Read(sock, buf)
		if err != nil || n == 0 {
			return err
		}
		var fds []int
		var failed error
		for _, p := range strings.Split(string(buf[:n]), "\n") {
			fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				failed = fmt.Errorf("open %s: %w", p, err)
				break
			}
			fds = append(fds, fd)
		}
		if failed != nil {
			_, err = linux.Write(sock, []byte(failed.Error()))
		} else {
			err = linux.Sendmsg(sock, []byte("ok"), unix.UnixRights(fds...))
		}
		for _, fd := range fds {
			unix.Close(fd)
		}
		if err != nil {
			return err
		}
	}
}
