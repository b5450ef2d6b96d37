package supervise

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/journal"
)

// EnvJournal passes the request journal (pkg/journal), used where the
// kernel lacks FUSE_NOTIFY_RESEND, to a worker or to the re-executed
// supervisor: fd=N,bank=B[,after=M]. For a worker, B is the bank it reads
// into and M, when present, a pidfd of the worker still serving from the
// other bank (an upgrade's previous one): that bank is answered once M
// exits. For the re-executed supervisor, B is the bank of the worker it
// inherits.
const EnvJournal = "LXCFS_FUSED_JOURNAL"

// EnvOwnJournal is EnvJournal for the containers' own connection's
// journal, with the same banks.
const EnvOwnJournal = "LXCFS_FUSED_OWN_JOURNAL"

func encodeJournal(fd, bank, after int) string {
	s := fmt.Sprintf("fd=%d,bank=%d", fd, bank)
	if after >= 0 {
		s += fmt.Sprintf(",after=%d", after)
	}
	return s
}

// decodeJournal parses EnvJournal's value; after is -1 when absent.
func decodeJournal(s string) (fd, bank, after int, err error) {
	return decodeJournalEnv(EnvJournal, s)
}

func decodeJournalEnv(env, s string) (fd, bank, after int, err error) {
	fd, bank, after = -1, -1, -1
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		n, perr := strconv.Atoi(v)
		if !ok || perr != nil || n < 0 {
			return 0, 0, 0, fmt.Errorf("%s=%q: want fd=N,bank=B[,after=M]", env, s)
		}
		switch k {
		case "fd":
			fd = n
		case "bank":
			bank = n
		case "after":
			after = n
		default:
			return 0, 0, 0, fmt.Errorf("%s=%q: unknown key %q", env, s, k)
		}
	}
	if fd < 3 || (after >= 0 && after < 3) || bank < 0 || bank >= journal.Banks {
		return 0, 0, 0, fmt.Errorf("%s=%q: want descriptors past the standard streams and bank 0 to %d", env, s, journal.Banks-1)
	}
	return fd, bank, after, nil
}

// JournalFromEnv returns the journal a previous binary passed across an
// upgrade and the bank its worker serves from, or nil when it used the
// kernel's resend instead. The variable is cleared.
func JournalFromEnv() (*os.File, int, error) { return journalFromEnv(EnvJournal) }

// OwnJournalFromEnv is JournalFromEnv for the own connection's journal.
func OwnJournalFromEnv() (*os.File, int, error) { return journalFromEnv(EnvOwnJournal) }

func journalFromEnv(env string) (*os.File, int, error) {
	v, ok := os.LookupEnv(env)
	if !ok {
		return nil, 0, nil
	}
	os.Unsetenv(env)
	fd, bank, _, err := decodeJournalEnv(env, v)
	if err != nil {
		return nil, 0, err
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "lxcfs-journal"), bank, nil
}

// AdoptJournal opens the journal the supervisor passed to this worker, or
// returns nil when there is none (the kernel resends instead). leftovers
// yields the requests dead workers left: first those in this worker's own
// bank, then those in the other bank, once its worker (if one still
// serves, during an upgrade) has exited; then it is closed.
func AdoptJournal() (j *journal.Journal, leftovers <-chan []journal.Entry, err error) {
	return adoptJournal(EnvJournal)
}

// AdoptOwnJournal is AdoptJournal for the own connection's journal.
func AdoptOwnJournal() (j *journal.Journal, leftovers <-chan []journal.Entry, err error) {
	return adoptJournal(EnvOwnJournal)
}

func adoptJournal(env string) (j *journal.Journal, leftovers <-chan []journal.Entry, err error) {
	v, ok := os.LookupEnv(env)
	if !ok {
		return nil, nil, nil
	}
	os.Unsetenv(env)
	fd, bank, after, err := decodeJournalEnv(env, v)
	if err != nil {
		return nil, nil, err
	}
	unix.CloseOnExec(fd)
	f := os.NewFile(uintptr(fd), "lxcfs-journal")
	defer f.Close() // the mapping stays
	j, err = journal.Open(f, bank)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", env, err)
	}
	if after >= 0 {
		unix.CloseOnExec(after)
	}
	ch := make(chan []journal.Entry, 2)
	go func() {
		defer close(ch)
		ch <- j.Pending(bank)
		if after >= 0 {
			waitExit(after)
		}
		ch <- j.Pending(1 - bank)
	}()
	return j, ch, nil
}

// waitExit waits until the process of pidfd exits (the supervisor kills an
// upgrade's previous worker 2s after asking it to stop, so this is bounded),
// or is dying with a thread held in the kernel until a request it left is
// answered (see waitDying).
func waitExit(pidfd int) {
	pid := pidfdPid(pidfd)
	exited := make(chan struct{})
	go func() {
		defer unix.Close(pidfd)
		linux.Poll([]unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}, -1)
		close(exited)
	}()
	if pid <= 0 {
		<-exited
		return
	}
	waitDying(pid, exited)
}

// pidfdPid is the pid a pidfd refers to (its fdinfo's Pid line), 0 if
// unknown.
func pidfdPid(pidfd int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", pidfd))
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
