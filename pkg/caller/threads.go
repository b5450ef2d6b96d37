package caller

import (
	"errors"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Reading /proc/PID/ns/pid is a path walk through procfs on every FUSE open,
// a fifth of a render's cost. A thread's pid namespace never changes while
// it lives, so for a thread that reads again and again (a monitoring agent,
// top) the answer is kept with a pidfd of the thread: one poll proves the
// thread, and so the answer, is still the same.
//
// Only threads seen twice with the same namespace are pinned, so a shell
// loop of short-lived cats costs no pidfd per read.

// pidfdThread is PIDFD_THREAD (Linux 6.9): a pidfd for a thread that is not
// its group's leader. Without it only leaders can be pinned.
const pidfdThread = unix.O_EXCL

// maxThreads bounds the pinned threads (one descriptor each) and the
// once-seen threads remembered for promotion.
const maxThreads = 4096

type thread struct {
	pidfd int
	ns    uint64
	// e is the namespace's cache entry, once one was found while the
	// thread was pinned: the thread and that entry's init were alive at
	// once with the same namespace inode, so it is the thread's namespace,
	// and it stays so while the thread lives. Even if the init dies first,
	// the namespace is being torn down and the thread with it.
	e *entry
}

// threadNS returns tid's pid namespace from the pinned threads, if tid is
// pinned and still alive, and its container when that is known and still
// cached.
func (r *Resolver) threadNS(tid int, now time.Time) (uint64, *Container, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.threads[tid]
	if !ok {
		return 0, nil, false
	}
	if !alive(t.pidfd) {
		unix.Close(t.pidfd)
		delete(r.threads, tid)
		return 0, nil, false
	}
	if t.e != nil && !t.e.dropped {
		t.e.lastUsed = now
		return t.ns, t.e.c, true
	}
	return t.ns, nil, true
}

// threadFound remembers the cache entry found for a pinned thread (see
// thread.e). The caller has just seen the thread and the entry's init alive.
func (r *Resolver) threadFound(tid int, e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.threads[tid]; ok && t.ns == e.c.NS && !e.dropped {
		t.e = e
		r.threads[tid] = t
	}
}

// sawThread records that tid was found in namespace ns (by a fresh read of
// its link), and pins it when it was seen there before.
func (r *Resolver) sawThread(tid int, ns uint64) {
	r.mu.Lock()
	prev, seen := r.onceSeen[tid]
	if !seen || prev != ns {
		if len(r.onceSeen) >= maxThreads {
			clear(r.onceSeen)
		}
		r.onceSeen[tid] = ns
		r.mu.Unlock()
		return
	}
	delete(r.onceSeen, tid)
	full := len(r.threads) >= maxThreads
	if full {
		r.pruneThreadsLocked(false)
		full = len(r.threads) >= maxThreads
	}
	r.mu.Unlock()
	if full {
		return
	}
	pidfd, ok := r.pinThread(tid, ns)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.threads[tid]; ok {
		unix.Close(old.pidfd)
	}
	r.threads[tid] = thread{pidfd: pidfd, ns: ns}
}

// pinThread opens a pidfd for tid and proves it is the thread that is in ns:
// the link is read after the pidfd is open and the thread is alive after
// that, so the pid could not have passed to another thread in between.
func (r *Resolver) pinThread(tid int, ns uint64) (int, bool) {
	flags := pidfdThread
	if r.noPidfdThread.Load() {
		flags = 0
	}
	pidfd, err := unix.PidfdOpen(tid, flags)
	if flags != 0 && errors.Is(err, unix.EINVAL) {
		// A kernel before 6.9: only group leaders can be pinned.
		r.noPidfdThread.Store(true)
		pidfd, err = unix.PidfdOpen(tid, 0)
	}
	if err != nil {
		return -1, false
	}
	now, err := r.pidNS(strconv.Itoa(tid))
	if err != nil || now != ns || !alive(pidfd) {
		unix.Close(pidfd)
		return -1, false
	}
	return pidfd, true
}

// pruneThreadsLocked drops pinned threads that have exited, or all of them.
func (r *Resolver) pruneThreadsLocked(all bool) {
	for tid, t := range r.threads {
		if all || !alive(t.pidfd) {
			unix.Close(t.pidfd)
			delete(r.threads, tid)
		}
	}
}

// Threads reports how many reader threads are pinned, for tests.
func (r *Resolver) Threads() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.threads)
}
