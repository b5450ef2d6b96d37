package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// readerEnv makes the test binary a container reader (see readerMain).
const readerEnv = "LXCFS_TEST_READER"

// readerSummary is what a reader prints when its load ends.
type readerSummary struct {
	Reads, Errors, Foreign int
	FirstProblem           string
}

// readerMain reads FILE with N goroutines for DURATION, checking every
// meminfo it gets shows its own container's MemTotal. It prints "ready" once
// every goroutine has read each file once (its container resolved, the
// daemon's caches warm), a summary at the end, and then waits for stdin to
// close (so the daemon can be measured while the container is still there).
func readerMain() int {
	var (
		mp       = os.Getenv("READER_MP")
		want     = os.Getenv("READER_MEMTOTAL")
		n, _     = strconv.Atoi(os.Getenv("READER_N"))
		dur, _   = time.ParseDuration(os.Getenv("READER_DURATION"))
		reads    atomic.Int64
		errs     atomic.Int64
		foreign  atomic.Int64
		problem  atomic.Value
		wg       sync.WaitGroup
		memTotal = regexp.MustCompile(`(?m)^MemTotal: +(\d+) kB$`)
	)
	deadline := time.Now().Add(dur)
	// The last goroutine to have read every file once prints "ready",
	// before any goroutine can finish, so before the summary.
	var cold atomic.Int64
	cold.Store(int64(n))
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			files := []string{"proc/meminfo", "proc/stat", "proc/uptime", "proc/cpuinfo"}
			for j := 0; ; j++ {
				if j == len(files) && cold.Add(-1) == 0 {
					fmt.Println("ready")
				}
				if j >= len(files) && !time.Now().Before(deadline) {
					break
				}
				name := files[(i+j)%len(files)]
				b, err := os.ReadFile(filepath.Join(mp, name))
				reads.Add(1)
				if err != nil {
					errs.Add(1)
					problem.CompareAndSwap(nil, err.Error())
					continue
				}
				if name == "proc/meminfo" {
					if m := memTotal.FindSubmatch(b); m == nil || string(m[1]) != want {
						foreign.Add(1)
						problem.CompareAndSwap(nil, fmt.Sprintf("MemTotal %q, want %s", m, want))
					}
				}
			}
		}()
	}
	wg.Wait()
	p, _ := problem.Load().(string)
	json.NewEncoder(os.Stdout).Encode(readerSummary{int(reads.Load()), int(errs.Load()), int(foreign.Load()), p})
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// workerStats asks the serving worker for its counters (SIGUSR1 makes it
// log them) and parses the newest stats line of the daemon log. fds counts
// only descriptors held for no container or reader: the cgroup and host
// files it keeps open and the reader threads it pins are subtracted, and
// kept is their sum.
func workerStats(t *testing.T, d *daemon) (goroutines, fds, kept int, rssKB int) {
	t.Helper()
	_, worker, _ := fusedState(t, d)
	before := strings.Count(readFile(t, d.logPath), "msg=stats")
	syscall.Kill(worker, syscall.SIGUSR1)
	re := regexp.MustCompile(`msg=stats .*goroutines=(\d+) fds=(\d+) rss="(\d+) kB" .*kept_files=(\d+) pinned_threads=(\d+)`)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		log := readFile(t, d.logPath)
		if strings.Count(log, "msg=stats") > before {
			m := re.FindAllStringSubmatch(log, -1)
			if len(m) == 0 {
				t.Fatalf("stats line not understood in the daemon log:\n%s", log)
			}
			last := m[len(m)-1]
			g, _ := strconv.Atoi(last[1])
			f, _ := strconv.Atoi(last[2])
			r, _ := strconv.Atoi(last[3])
			files, _ := strconv.Atoi(last[4])
			threads, _ := strconv.Atoi(last[5])
			return g, f - files - threads, files + threads, r
		}
	}
	t.Fatal("worker did not report its stats within 30s")
	return 0, 0, 0, 0
}

// TestLoadManyContainers: 64 concurrent readers from 16 containers with 16
// different memory limits read for 30s (LOAD_SECONDS overrides): no read
// fails, no container ever sees another's MemTotal, and the worker holds no
// more goroutines, fds or memory after the load than before it.
func TestLoadManyContainers(t *testing.T) {
	requireRoot(t)
	if testing.Short() {
		t.Skip("30s load test; skipped with -short")
	}
	seconds := 30
	if s, err := strconv.Atoi(os.Getenv("LOAD_SECONDS")); err == nil && s > 0 {
		seconds = s
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, fusedBin, "", "--log-level", "info")

	type reader struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
		want  int
	}
	var readers []*reader
	for i := range 16 {
		cg := newV1Cgroup(t, "memory", "cpuacct", "cpu")
		limitMiB := 64 + 16*i
		cg.set(t, "memory", "memory.limit_in_bytes", strconv.Itoa(limitMiB<<20))
		cmd := exec.Command("sh", "-c", cg.enterScript()+"exec unshare --pid --fork --kill-child "+self)
		cmd.Env = append(os.Environ(),
			readerEnv+"=1", "READER_MP="+d.mp, "READER_N=4",
			"READER_MEMTOTAL="+strconv.Itoa(limitMiB*1024),
			"READER_DURATION="+strconv.Itoa(seconds)+"s")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := &reader{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), want: limitMiB * 1024}
		readers = append(readers, r)
		t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	}
	// Measure the baseline once every container has been resolved and is
	// reading (caches warm), then again after the load, containers idle.
	for i, r := range readers {
		if line, err := r.out.ReadString('\n'); err != nil || line != "ready\n" {
			t.Fatalf("reader %d: %q, %v; want ready", i, line, err)
		}
	}
	g0, f0, k0, r0 := workerStats(t, d)

	var total, errors, foreign int
	for i, r := range readers {
		line, err := r.out.ReadString('\n')
		if err != nil {
			t.Fatalf("reader %d: no summary: %v", i, err)
		}
		var s readerSummary
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("reader %d: %q: %v", i, line, err)
		}
		total += s.Reads
		errors += s.Errors
		foreign += s.Foreign
		if s.FirstProblem != "" {
			t.Errorf("container %d (MemTotal %d kB): %d errors, %d foreign views; first: %s", i, r.want, s.Errors, s.Foreign, s.FirstProblem)
		}
	}
	// Releases of the last reads may still be queued in the kernel: poll
	// until the worker is back to its baseline, or a minute has passed.
	var g1, f1, k1, r1 int
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		g1, f1, k1, r1 = workerStats(t, d)
		if (g1 <= g0+2 && f1 <= f0+2 && r1 <= r0+8*1024) || time.Now().After(deadline) {
			break
		}
	}
	t.Logf("%d reads in %ds from 64 readers in 16 containers (%.0f/s): %d errors, %d foreign views; worker goroutines %d -> %d, fds %d -> %d (+ kept files and pinned threads %d -> %d), RSS %d -> %d kB",
		total, seconds, float64(total)/float64(seconds), errors, foreign, g0, g1, f0, f1, k0, k1, r0, r1)
	if errors != 0 || foreign != 0 {
		t.Errorf("%d errors and %d reads of another container's view under load", errors, foreign)
	}
	if g1 > g0+2 {
		t.Errorf("worker goroutines grew from %d to %d over the load", g0, g1)
	}
	if f1 > f0+2 {
		t.Errorf("worker fds grew from %d to %d over the load", f0, f1)
	}
	// Kept descriptors are bounded by design: each container's files (at
	// most 16 here) once per reader reading them at the same moment (4),
	// one pidfd per reader thread (64), and the host's files (at most 16)
	// once per FUSE reading goroutine (8). A leak per read would pass that
	// within the first second of 200,000 reads.
	if limit := 16*16*4 + 64 + 16*8; k1 > limit {
		t.Errorf("worker keeps %d files and pinned threads for 16 containers of 4 readers, want at most %d", k1, limit)
	}
	// RSS is read after the worker hands free memory back (SIGUSR1 does),
	// so growth here is memory it still holds.
	if r1 > r0+8*1024 {
		t.Errorf("worker RSS grew from %d to %d kB over the load", r0, r1)
	}
}
