package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"
)

// scaleRow is one daemon's figures with n containers.
type scaleRow struct {
	daemon   string
	n        int
	loadavg  bool
	reads    uint64
	errors   uint64
	firstErr string
	wall     time.Duration
	cpu      time.Duration
	rss      uint64
	h        *hist

	// The whole phase: every read answered from the first job to the
	// last, and the daemon's CPU from before the first job until it went
	// idle after the last read (see drain).
	allReads uint64
	phaseCPU time.Duration
}

// cpuPer1k is the daemon's CPU time per 1,000 reads served.
func (s *scaleRow) cpuPer1k() time.Duration { return per1k(s.cpu, s.reads) }

// phaseCPUPer1k is the daemon's CPU time for the whole phase, drained, per
// 1,000 reads answered in it.
func (s *scaleRow) phaseCPUPer1k() time.Duration { return per1k(s.phaseCPU, s.allReads) }

func (s *scaleRow) cpuPct() float64 {
	if s.wall <= 0 {
		return 0
	}
	return 100 * s.cpu.Seconds() / s.wall.Seconds()
}

// scalePeriod is how often each simulated container reads meminfo and stat.
const scalePeriod = 100 * time.Millisecond

// scaleBench runs N simulated containers against each daemon in turn, then
// the loadavg phase with both daemons' samplers on.
func (b *bench) scaleBench(ours, ref *daemon) error {
	var rows []*scaleRow
	for i, n := range b.cfg.scaleNs {
		cs, err := b.containers(n)
		if err != nil {
			return err
		}
		// ours twice: through the shared tree, and through each
		// container's own files (registered, as lxcfs-hook does; cached
		// for --cache-ttl).
		type phase struct {
			d   *daemon
			own bool
		}
		order := []phase{{ours, false}, {ours, true}, {ref, false}}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, p := range order {
			row, err := b.scalePhase(p.d, cs, false, p.own)
			if err != nil {
				return err
			}
			rows = append(rows, row)
		}
		if n == b.cfg.loadavgN {
			if rows, err = b.loadavgPhases(cs, rows); err != nil {
				return err
			}
		}
		cs.teardown()
	}
	if n := b.cfg.loadavgN; n > 0 && !containsInt(b.cfg.scaleNs, n) {
		cs, err := b.containers(n)
		if err != nil {
			return err
		}
		if rows, err = b.loadavgPhases(cs, rows); err != nil {
			return err
		}
		cs.teardown()
	}
	b.rep.scaleTable(rows)
	return nil
}

func (b *bench) loadavgPhases(cs *containerSet, rows []*scaleRow) ([]*scaleRow, error) {
	ours, err := b.startOurs("ours-loadavg", "--enable-loadavg")
	if err != nil {
		return rows, err
	}
	ref, err := b.startLXCFS("lxcfs-loadavg", "-l")
	if err != nil {
		return rows, err
	}
	for _, d := range []*daemon{ours, ref} {
		row, err := b.scalePhase(d, cs, true, false)
		if err != nil {
			return rows, err
		}
		rows = append(rows, row)
	}
	ours.stop()
	ref.stop()
	return rows, nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// containerSet is n readers, each the init of its own pid namespace in its
// own cgroups with its own memory limit.
type containerSet struct {
	readers []*readerProc
	limits  []uint64
	cgs     []*cgroup
}

func (b *bench) containers(n int) (*containerSet, error) {
	parent, err := b.benchParent()
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "lxcfs-bench: starting %d containers\n", n)
	cs := &containerSet{readers: make([]*readerProc, n), limits: make([]uint64, n), cgs: make([]*cgroup, n)}
	b.scaleSet++
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			// Distinct limits, so a reply meant for another container
			// shows as a wrong MemTotal.
			limit := uint64(256+i) << 20
			cpus := strconv.Itoa(i % 2)
			cg, err := b.newCgroup(parent, "s"+strconv.Itoa(b.scaleSet)+"-"+strconv.Itoa(i), limit, cpus)
			var r *readerProc
			if err == nil {
				r, err = b.spawnReader(cg)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			cs.readers[i], cs.limits[i], cs.cgs[i] = r, limit, cg
		}()
	}
	wg.Wait()
	if firstErr != nil {
		cs.teardown()
		return nil, firstErr
	}
	return cs, nil
}

// teardown ends the containers now, to free the machine for the next
// phase; the run's cleanup would otherwise do it at exit.
func (cs *containerSet) teardown() {
	for _, r := range cs.readers {
		if r != nil {
			r.kill()
		}
	}
	for _, cg := range cs.cgs {
		if cg != nil {
			for _, ctrl := range benchControllers {
				rmdirRetry(cg.dir(ctrl))
			}
		}
	}
}

// scalePhase has every container read d's meminfo and stat once per
// scalePeriod, and measures the daemon over the same window.
func (b *bench) scalePhase(d *daemon, cs *containerSet, loadavg, own bool) (*scaleRow, error) {
	n := len(cs.readers)
	name := d.name
	dirs := make([]string, n)
	for i, r := range cs.readers {
		dirs[i] = d.mp
		if own {
			var err error
			if dirs[i], err = d.ownRoot(r.cmd.Process.Pid); err != nil {
				return nil, err
			}
		}
	}
	if own {
		name += " own"
	}
	fmt.Fprintf(os.Stderr, "lxcfs-bench: scale %d containers on %s\n", n, name)
	warm, dur := b.cfg.scaleWarmup, b.cfg.scaleDuration
	cStart, err := cpuTime(d.pid())
	if err != nil {
		return nil, err
	}
	for i, r := range cs.readers {
		j := job{Kind: "periodic", Dir: dirs[i], Period: scalePeriod,
			WantMemTotalKB: cs.limits[i] >> 10, WantCPULines: 2, Warmup: warm, Duration: dur}
		if err := r.send(j); err != nil {
			return nil, err
		}
	}
	time.Sleep(warm)
	c0, err := cpuTime(d.pid())
	if err != nil {
		return nil, err
	}
	w0 := time.Now()
	time.Sleep(dur)
	c1, err := cpuTime(d.pid())
	if err != nil {
		return nil, err
	}
	wall := time.Since(w0)
	mem, err := rss(d.pid())
	if err != nil {
		return nil, err
	}
	row := &scaleRow{daemon: name, n: n, loadavg: loadavg, wall: wall, cpu: c1 - c0, rss: mem, h: newHist()}
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for _, r := range cs.readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.awaitMeasuring(warm + dur + 60*time.Second)
			var res result
			if err == nil {
				res, err = r.awaitResult(warm + dur + 60*time.Second)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			row.reads += res.Reads
			row.allReads += res.AllReads
			row.errors += res.Errors
			if row.firstErr == "" {
				row.firstErr = res.FirstErr
			}
			row.h.merge(fromWire(res.Hist))
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("scale benchmark, %d containers on %s: %w", n, d.name, firstErr)
	}
	cEnd, err := drain(d)
	if err != nil {
		return nil, err
	}
	row.phaseCPU = cEnd - cStart
	return row, nil
}

// drain waits, once the readers have stopped, until the daemon is idle, and
// returns its CPU time then. A daemon that lets requests queue in the
// kernel (a RELEASE is a background request, and libfuse's default lets 12
// be in flight) does part of a read's work after the read returned, so past
// the end of the measured window; the whole phase, drained, counts it.
func drain(d *daemon) (time.Duration, error) {
	const (
		step = 200 * time.Millisecond
		idle = 2 * time.Millisecond // CPU per step of an idle daemon, at most
		most = 30 * time.Second
	)
	last, err := cpuTime(d.pid())
	if err != nil {
		return 0, err
	}
	for deadline := time.Now().Add(most); time.Now().Before(deadline); {
		time.Sleep(step)
		now, err := cpuTime(d.pid())
		if err != nil {
			return 0, err
		}
		if now-last <= idle {
			return now, nil
		}
		last = now
	}
	return 0, fmt.Errorf("%s still busy %v after its readers stopped", d.name, most)
}
