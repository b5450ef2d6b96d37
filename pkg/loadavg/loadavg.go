// Package loadavg computes per-container load averages the way the kernel
// computes the host's: every 5 seconds, count the container's runnable and
// uninterruptible tasks and fold the count into three exponentially decaying
// averages.
//
// Its cost stays bounded: only containers whose loadavg was read in the last
// minute are sampled, and a container nobody reads is forgotten.
package loadavg

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/caller"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/cgroup"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/view"
)

// The kernel's fixed-point load arithmetic (include/linux/sched/loadavg.h).
const (
	fshift = 11
	fixed1 = 1 << fshift
	exp1   = 1884 // 1/exp(5s/1min) in fixed point
	exp5   = 2014
	exp15  = 2037
)

// Interval is how often the kernel, and so this sampler, updates load averages.
const Interval = 5 * time.Second

// Window is how long after its last read a container keeps being sampled.
const Window = time.Minute

// key identifies a container for its whole life: a pid namespace inode can
// be reused, an init pid with its start time cannot.
type key struct {
	ns    uint64
	init  int
	start uint64
}

type state struct {
	g        *cgroup.Group
	lastRead time.Time
	loads    [3]uint64
	running  int
	total    int
	lastPid  int
	sampled  bool
}

// Sampler keeps the load averages of recently read containers.
type Sampler struct {
	ProcDir string
	Log     *slog.Logger

	mu     sync.Mutex
	states map[key]*state
}

// New returns a sampler reading tasks under procDir.
func New(procDir string, log *slog.Logger) *Sampler {
	return &Sampler{ProcDir: procDir, Log: log, states: map[key]*state{}}
}

// Load returns the container's load average and marks it as read, so the
// sampler keeps it up to date. A container read for the first time is
// sampled at once, so its task counts are right from the first read; its
// averages start at zero as the host's do at boot.
func (s *Sampler) Load(c *caller.Container, g *cgroup.Group) (view.LoadAvg, bool) {
	k := key{c.NS, c.InitPid, c.StartTicks}
	now := time.Now()
	s.mu.Lock()
	st, ok := s.states[k]
	if !ok {
		st = &state{g: g}
		s.states[k] = st
	}
	st.lastRead = now
	sampled := st.sampled
	s.mu.Unlock()
	if !sampled {
		s.sampleOne(k, st, false)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return view.LoadAvg{
		Load1:   float64(st.loads[0]) / fixed1,
		Load5:   float64(st.loads[1]) / fixed1,
		Load15:  float64(st.loads[2]) / fixed1,
		Running: st.running,
		Total:   st.total,
		LastPid: st.lastPid,
	}, true
}

// Len says how many containers are being sampled.
func (s *Sampler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.states)
}

// Tick forgets containers not read within Window and samples the rest.
func (s *Sampler) Tick(now time.Time) {
	s.mu.Lock()
	todo := make(map[key]*state, len(s.states))
	for k, st := range s.states {
		if now.Sub(st.lastRead) > Window {
			delete(s.states, k)
			continue
		}
		todo[k] = st
	}
	s.mu.Unlock()
	for k, st := range todo {
		s.sampleOne(k, st, true)
	}
}

func (s *Sampler) sampleOne(k key, st *state, decay bool) {
	pids, err := st.g.Procs()
	if err != nil {
		// The container is gone or its cgroup unreadable: drop it; a new
		// read registers it again.
		s.Log.Debug("loadavg: cannot list container tasks", "init", k.init, "err", err)
		s.mu.Lock()
		delete(s.states, k)
		s.mu.Unlock()
		return
	}
	active, running, total, last := s.count(pids)
	s.mu.Lock()
	defer s.mu.Unlock()
	if decay {
		a := uint64(active) * fixed1
		st.loads[0] = calcLoad(st.loads[0], exp1, a)
		st.loads[1] = calcLoad(st.loads[1], exp5, a)
		st.loads[2] = calcLoad(st.loads[2], exp15, a)
	}
	st.running, st.total, st.sampled = running, total, true
	if last > 0 {
		st.lastPid = last
	}
}

// calcLoad is the kernel's calc_load: load*e + active*(1-e), rounded up
// while rising so a steady load converges to it.
func calcLoad(load, exp, active uint64) uint64 {
	n := load*exp + active*(fixed1-exp)
	if active >= load {
		n += fixed1 - 1
	}
	return n / fixed1
}

// count walks the tasks of pids: active is R+D (what the load average
// counts), running is R (the kernel's nr_running field), total all threads,
// last the newest pid as the container numbers it.
func (s *Sampler) count(pids []int) (active, running, total, last int) {
	maxPid := 0
	for _, pid := range pids {
		taskDir := filepath.Join(s.ProcDir, strconv.Itoa(pid), "task")
		tasks, err := os.ReadDir(taskDir)
		if err != nil {
			continue // exited meanwhile
		}
		for _, t := range tasks {
			st, err := taskState(filepath.Join(taskDir, t.Name(), "stat"))
			if err != nil {
				continue
			}
			total++
			switch st {
			case 'R':
				running++
				active++
			case 'D':
				active++
			}
		}
		maxPid = max(maxPid, pid)
	}
	if maxPid > 0 {
		last = s.nsPid(maxPid)
	}
	return active, running, total, last
}

// taskState reads the state letter of /proc/PID/task/TID/stat; the command
// name before it is in parentheses and may itself hold spaces and ')'.
func taskState(path string) (byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("read %s: no state field", path)
	}
	return b[i+2], nil
}

// nsPid is pid as numbered inside its own (innermost) pid namespace.
func (s *Sampler) nsPid(pid int) int {
	b, err := os.ReadFile(filepath.Join(s.ProcDir, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.Atoi(f[len(f)-1])
			return n
		}
	}
	return 0
}
