package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// A reader process is the init of its own pid namespace inside the
// benchmark's cgroups: a container without a runtime. The driver starts it
// once and sends it jobs, one JSON line each on stdin; it answers
// "measuring" when the warm-up is over (the driver samples the daemons' CPU
// time then) and a JSON result when the job ends. It exits at end of input.

// job is one measurement a reader runs.
type job struct {
	// Kind "loop": Conc threads open/read/close Path back to back.
	// Kind "periodic": every Period, read Dir/proc/meminfo and
	// Dir/proc/stat once, checking their content (a scale container).
	Kind   string        `json:"kind"`
	Path   string        `json:"path,omitempty"`
	Conc   int           `json:"conc,omitempty"`
	Dir    string        `json:"dir,omitempty"`
	Period time.Duration `json:"period,omitempty"`
	// WantMemTotalKB is the MemTotal meminfo must show (the container's
	// limit); WantCPULines how many cpu lines stat must have.
	WantMemTotalKB uint64        `json:"want_memtotal_kb,omitempty"`
	WantCPULines   int           `json:"want_cpu_lines,omitempty"`
	Warmup         time.Duration `json:"warmup"`
	Duration       time.Duration `json:"duration"`
}

// result is what a reader reports for a job.
type result struct {
	Reads uint64 `json:"reads"`
	// AllReads counts every read answered, warm-up included: with the
	// daemon's CPU over the whole phase it gives a cost per read that
	// work deferred past the measured window cannot hide.
	AllReads uint64        `json:"all_reads"`
	Errors   uint64        `json:"errors"`
	FirstErr string        `json:"first_err,omitempty"`
	Elapsed  time.Duration `json:"elapsed"`
	Hist     wire          `json:"hist"`
}

func readerMain(args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("reader: unexpected arguments %q; jobs come on stdin", args)
	}
	in := bufio.NewScanner(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	for in.Scan() {
		var j job
		if err := json.Unmarshal(in.Bytes(), &j); err != nil {
			return fmt.Errorf("reader: bad job %q: %w", in.Text(), err)
		}
		measuring := func() {
			out.WriteString("measuring\n")
			out.Flush()
		}
		var res result
		switch j.Kind {
		case "loop":
			res = runLoop(j, measuring)
		case "periodic":
			res = runPeriodic(j, measuring)
		default:
			return fmt.Errorf("reader: unknown job kind %q", j.Kind)
		}
		b, err := json.Marshal(res)
		if err != nil {
			return fmt.Errorf("reader: encode result: %w", err)
		}
		out.Write(b)
		out.WriteString("\n")
		if err := out.Flush(); err != nil {
			return fmt.Errorf("reader: write result: %w", err)
		}
	}
	return in.Err()
}

// readAll is what a C program reading a /proc file does: open, read until
// end of file into a buffer, close. No fstat, so both daemons see the same
// requests (OPEN, READ until a short one, RELEASE and, where the server
// wants it, FLUSH).
func readAll(path string, buf []byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	n := 0
	for {
		if n == len(buf) {
			unix.Close(fd)
			return n, fmt.Errorf("read %s: more than %d bytes", path, len(buf))
		}
		m, err := unix.Read(fd, buf[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			unix.Close(fd)
			return n, fmt.Errorf("read %s: %w", path, err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	if err := unix.Close(fd); err != nil {
		return n, fmt.Errorf("close %s: %w", path, err)
	}
	// An empty file is an answer (a container with no I/O charged has an
	// empty diskstats); the periodic job checks the content it needs.
	return n, nil
}

type tally struct {
	mu       sync.Mutex
	h        *hist
	reads    uint64
	errors   uint64
	firstErr string
}

func (t *tally) merge(h *hist, reads, errs uint64, firstErr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.h.merge(h)
	t.reads += reads
	t.errors += errs
	if t.firstErr == "" {
		t.firstErr = firstErr
	}
}

func runLoop(j job, measuring func()) result {
	conc := max(j.Conc, 1)
	// One P per reader thread: a reader blocked in a FUSE request must not
	// hold up the others while the runtime hands its P over.
	runtime.GOMAXPROCS(conc + 1)
	start := time.Now()
	measureAt := start.Add(j.Warmup)
	end := measureAt.Add(j.Duration)
	t := &tally{h: newHist()}
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			buf := make([]byte, 1<<20)
			h := newHist()
			var reads, errs uint64
			var firstErr string
			for {
				t0 := time.Now()
				if !t0.Before(end) {
					break
				}
				_, err := readAll(j.Path, buf)
				if t0.Before(measureAt) {
					continue
				}
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
					continue
				}
				h.add(time.Since(t0))
				reads++
			}
			t.merge(h, reads, errs, firstErr)
		}()
	}
	time.Sleep(time.Until(measureAt))
	measuring()
	wg.Wait()
	return result{Reads: t.reads, Errors: t.errors, FirstErr: t.firstErr, Elapsed: time.Since(measureAt), Hist: t.h.wire()}
}

func runPeriodic(j job, measuring func()) result {
	runtime.GOMAXPROCS(1)
	period := j.Period
	if period <= 0 {
		period = 100 * time.Millisecond
	}
	start := time.Now()
	measureAt := start.Add(j.Warmup)
	end := measureAt.Add(j.Duration)
	meminfo := filepath.Join(j.Dir, "proc/meminfo")
	stat := filepath.Join(j.Dir, "proc/stat")
	buf := make([]byte, 1<<20)
	h := newHist()
	var reads, allReads, errs uint64
	var firstErr string
	fail := func(err error) {
		errs++
		if firstErr == "" {
			firstErr = err.Error()
		}
	}
	measured := false
	said := make(chan struct{})
	// Containers start their clocks at random phases, as real ones do, so
	// the load is spread over the period rather than arriving at once.
	time.Sleep(rand.N(period))
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		now := time.Now()
		if !now.Before(end) {
			break
		}
		if !measured && !now.Before(measureAt) {
			measured = true
			// Not on the reading goroutine's clock; the result waits
			// for it, so the driver reads "measuring" first.
			go func() { measuring(); close(said) }()
		}
		for _, path := range []string{meminfo, stat} {
			t0 := time.Now()
			n, err := readAll(path, buf)
			lat := time.Since(t0)
			if err == nil {
				allReads++
				err = checkContent(j, path == meminfo, buf[:n])
			}
			if t0.Before(measureAt) {
				continue
			}
			if err != nil {
				fail(err)
				continue
			}
			h.add(lat)
			reads++
		}
		<-tick.C
	}
	if !measured {
		measuring()
	} else {
		<-said
	}
	return result{Reads: reads, AllReads: allReads, Errors: errs, FirstErr: firstErr, Elapsed: time.Since(measureAt), Hist: h.wire()}
}

// checkContent verifies a scale container sees its own view: a reply meant
// for another container, or the host's, counts as an error.
func checkContent(j job, isMeminfo bool, b []byte) error {
	if isMeminfo {
		if j.WantMemTotalKB == 0 {
			return nil
		}
		got, ok := meminfoField(b, "MemTotal")
		if !ok {
			return fmt.Errorf("meminfo without MemTotal")
		}
		if got != j.WantMemTotalKB {
			return fmt.Errorf("meminfo MemTotal %d kB, want the container's %d", got, j.WantMemTotalKB)
		}
		return nil
	}
	if j.WantCPULines == 0 {
		return nil
	}
	n := 0
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("cpu")) {
			n++
		}
	}
	if n != j.WantCPULines {
		return fmt.Errorf("stat has %d cpu lines, want %d", n, j.WantCPULines)
	}
	return nil
}

func meminfoField(b []byte, key string) (uint64, bool) {
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte(key+":"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseUint(string(f[0]), 10, 64)
		return v, err == nil
	}
	return 0, false
}
