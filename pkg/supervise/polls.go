package supervise

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"bazil.org/fuse"
	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/pollwake"
)

// EnvPolls passes a poll wakeup table (pkg/pollwake) as fd=N: to a worker,
// the table it records its waiting pollers in; to the re-executed
// supervisor, the table of the worker it inherits and retires.
const EnvPolls = "LXCFS_FUSED_POLLS"

// PollsFromEnv opens the table passed in EnvPolls, or returns nil when
// there is none (a supervisor of an older release, or one that could not
// make a table: pollers then wait until their own timeout after a worker's
// death, as before). The variable is cleared.
func PollsFromEnv() (*pollwake.Table, error) {
	v, ok := os.LookupEnv(EnvPolls)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvPolls)
	s, ok := strings.CutPrefix(v, "fd=")
	fd, err := strconv.Atoi(s)
	if !ok || err != nil || fd < 3 {
		return nil, fmt.Errorf("%s=%q: want fd=N, N past the standard streams", EnvPolls, v)
	}
	unix.CloseOnExec(fd)
	t, err := pollwake.Open(os.NewFile(uintptr(fd), "lxcfs-polls"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvPolls, err)
	}
	return t, nil
}

// newPolls makes the table for the next worker and hands it to OnPolls.
// Without one the worker serves as before; only the wakeup after its death
// is lost.
func (s *Supervisor) newPolls() *pollwake.Table {
	t, err := pollwake.Create()
	if err != nil {
		s.Log.Warn("no poll wakeup table: a program polling a PSI trigger when the worker dies waits until its own timeout", "err", err)
		return nil
	}
	if s.OnPolls != nil {
		s.OnPolls(t.File())
	}
	return t
}

// wakePolls wakes every poller a worker that has exited left waiting, and
// closes its table. The kernel ignores a handle whose file was closed.
func (s *Supervisor) wakePolls(t *pollwake.Table) {
	if t == nil {
		return
	}
	defer t.Close()
	khs := t.Drain()
	for _, kh := range khs {
		if err := s.Conn.NotifyPollWakeup(fuse.PollWakeupFor(kh)); err != nil && !errors.Is(err, fuse.ErrNotCached) {
			s.Log.Warn("cannot wake a poller the dead worker left waiting", "err", err)
		}
	}
	if len(khs) > 0 {
		s.Log.Info("woke the pollers a dead worker left waiting", "pollers", len(khs))
	}
}
