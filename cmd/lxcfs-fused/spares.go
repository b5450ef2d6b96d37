package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
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

// warmTries is how many times a spare is looked up before the daemon
// gives spares up (see prepare).
const warmTries = 5

// warmWithin bounds the wait for the warm helper: its lookups are answered
// in milliseconds by a live worker.
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
// started once) looks the names up; the clones are then made from the
// kernel's cache only (mountns.PrepareCached).
type spares struct {
	r       *caller.Resolver
	tree    *fusefs.FS
	mp      string // the mountpoint, absolute
	entries []string
	log     *slog.Logger

	mu       sync.Mutex
	prepared map[uint32]*mountns.Prepared

	// The warm helper, started at the first spare (run's goroutine only).
	helperIn   io.WriteCloser
	helperOut  *bufio.Reader
	helperFile *os.File
}

// run keeps the spares until ctx is done. It stops at the first failure,
// saying so: registrations then take fresh IDs, as before spares.
func (s *spares) run(ctx context.Context) {
	defer s.closeAll()
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

// prepare looks the views of spare id's tree up through the helper and
// clones them from the cache.
func (s *spares) prepare(ctx context.Context, id uint32) error {
	mounts := hook.Plan(filepath.Join(s.mp, ".containers", strconv.FormatUint(uint64(id), 10)), s.entries...)
	paths := make([]string, len(mounts))
	for i, m := range mounts {
		paths[i] = m.Source
	}
	// At the start the supervisor attaches the containers' own
	// connection over MOUNT/.containers once this worker serves: names
	// looked up just before are the first connection's, and the own
	// mount's are not cached yet. Looked up again, they are.
	var p *mountns.Prepared
	for try := 1; ; try++ {
		if err := s.warm(ctx, paths); err != nil {
			return fmt.Errorf("look up spare %d's files: %w", id, err)
		}
		var err error
		if p, err = mountns.PrepareCached(mounts); err == nil {
			break
		}
		if !errors.Is(err, unix.EAGAIN) || try == warmTries {
			return fmt.Errorf("clone spare %d's views: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(try) * 100 * time.Millisecond):
		}
	}
	s.mu.Lock()
	s.prepared[id] = p
	s.mu.Unlock()
	return nil
}

// warm has the helper look paths up: one line each, then an empty line;
// it answers "ok" or the error, on one line. The helper is started at the
// first call and lives as long as this process (its stdin closes with it).
func (s *spares) warm(ctx context.Context, paths []string) error {
	if s.helperIn == nil {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cmd := exec.Command(exe, "warm")
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start the warm helper: %w", err)
		}
		go cmd.Wait()
		s.helperIn, s.helperOut = in, bufio.NewReader(out)
		s.helperFile, _ = out.(*os.File)
	}
	var req strings.Builder
	for _, p := range paths {
		if strings.ContainsRune(p, '\n') {
			return fmt.Errorf("path %q has a newline", p)
		}
		req.WriteString(p + "\n")
	}
	req.WriteString("\n")
	if _, err := io.WriteString(s.helperIn, req.String()); err != nil {
		return fmt.Errorf("ask the warm helper: %w", err)
	}
	// A lookup a dead worker had taken is answered by the next one (or
	// never, if the kernel and the daemon cannot resend it): the helper
	// is then left waiting, and so are spares.
	if s.helperFile != nil {
		s.helperFile.SetReadDeadline(time.Now().Add(warmWithin))
	}
	line, err := s.helperOut.ReadString('\n')
	if err != nil {
		return fmt.Errorf("the warm helper's answer: %w", err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return errors.New(line)
	}
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

// warmCmd is the warm helper (a hidden command): it reads paths, one a
// line, looks each up so that the kernel caches its name, and after each
// empty line answers "ok" or the first error.
func warmCmd(c *cli.Context) error {
	in := bufio.NewScanner(os.Stdin)
	var failed error
	for in.Scan() {
		p := in.Text()
		if p == "" {
			answer := "ok"
			if failed != nil {
				answer = failed.Error()
			}
			if _, err := fmt.Println(answer); err != nil {
				return err
			}
			failed = nil
			continue
		}
		var stx unix.Statx_t
		if err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_DONT_SYNC, unix.STATX_TYPE, &stx); err != nil && failed == nil {
			failed = fmt.Errorf("look up %s: %w", p, err)
		}
	}
	return in.Err()
}
