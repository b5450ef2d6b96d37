package main

import (
	"fmt"
	"os"
	"slices"
	"time"
)

// cell accumulates one daemon's figures for one file and reader count over
// the rounds.
type cell struct {
	reads, errors uint64
	firstErr      string
	elapsed       time.Duration
	cpu           time.Duration
	h             *hist
	rates         []float64 // reads/s of each round, in order
}

func (c *cell) add(res result, cpu time.Duration) {
	if c.h == nil {
		c.h = newHist()
	}
	c.reads += res.Reads
	c.errors += res.Errors
	if c.firstErr == "" {
		c.firstErr = res.FirstErr
	}
	c.elapsed += res.Elapsed
	c.cpu += cpu
	c.h.merge(fromWire(res.Hist))
	if res.Elapsed > 0 {
		c.rates = append(c.rates, float64(res.Reads)/res.Elapsed.Seconds())
	}
}

// pairedRatios are a's reads/s over b's, round by round: the two were
// measured back to back in each round, so a round's ratio is untouched by
// how the machine drifted between rounds.
func pairedRatios(a, b *cell) []float64 {
	var out []float64
	for i := range min(len(a.rates), len(b.rates)) {
		if b.rates[i] > 0 {
			out = append(out, a.rates[i]/b.rates[i])
		}
	}
	return out
}

// median of v (0 for none); v is sorted in place.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (c *cell) rate() float64 {
	if c == nil || c.elapsed <= 0 {
		return 0
	}
	return float64(c.reads) / c.elapsed.Seconds()
}

// cpuPer1k is the daemon's CPU time per 1,000 reads.
func (c *cell) cpuPer1k() time.Duration {
	if c == nil {
		return 0
	}
	return per1k(c.cpu, c.reads)
}

// per1k is cpu per 1,000 reads (0 for no reads).
func per1k(cpu time.Duration, reads uint64) time.Duration {
	if reads == 0 {
		return 0
	}
	return time.Duration(float64(cpu) * 1000 / float64(reads))
}

type cellKey struct {
	daemon, file string
	readers      int
}

// benchParent is the run's parent cgroup, made on first use.
func (b *bench) benchParent() (string, error) {
	if b.parent != "" {
		return b.parent, nil
	}
	p, err := b.parentCgroup()
	if err != nil {
		return "", err
	}
	b.parent = p
	return p, nil
}

// readBench runs open/read/close loops from one container (1 GiB memory
// limit, cpuset 0) on each file, alternating the daemons every round.
func (b *bench) readBench(ours, ref, static *daemon) error {
	parent, err := b.benchParent()
	if err != nil {
		return err
	}
	cg, err := b.newCgroup(parent, "read", 1<<30, "0")
	if err != nil {
		return err
	}
	r, err := b.spawnReader(cg)
	if err != nil {
		return err
	}
	cfg := b.cfg
	cells := map[cellKey]*cell{}
	total := len(cfg.files) * len(cfg.readers) * cfg.rounds
	step := 0
	for _, f := range cfg.files {
		for _, n := range cfg.readers {
			for round := range cfg.rounds {
				step++
				fmt.Fprintf(os.Stderr, "\rlxcfs-bench: read %s x%d round %d/%d (%d/%d)      ", f, n, round+1, cfg.rounds, step, total)
				order := []*daemon{ours, ref}
				if f == "meminfo" {
					// Ours between the two it is compared with, so each
					// ratio pairs measurements taken back to back.
					order = []*daemon{static, ours, ref}
				}
				if round%2 == 1 {
					slices.Reverse(order)
				}
				for _, d := range order {
					res, cpu, err := b.measureLoop(r, d, benchFiles[f], n)
					if err != nil {
						return fmt.Errorf("read benchmark, %s on %s with %d readers: %w", f, d.name, n, err)
					}
					k := cellKey{d.name, f, n}
					if cells[k] == nil {
						cells[k] = &cell{}
					}
					cells[k].add(res, cpu)
				}
			}
		}
	}
	fmt.Fprintln(os.Stderr)
	r.kill()
	b.rep.readTables(cells)
	return nil
}

// measureLoop runs one loop job against d and returns the reader's result
// with the daemon's CPU time over the measured window.
func (b *bench) measureLoop(r *readerProc, d *daemon, rel string, readers int) (result, time.Duration, error) {
	j := job{Kind: "loop", Path: d.mp + "/" + rel, Conc: readers, Warmup: b.cfg.warmup, Duration: b.cfg.duration}
	if err := r.send(j); err != nil {
		return result{}, 0, err
	}
	if err := r.awaitMeasuring(b.cfg.warmup + 30*time.Second); err != nil {
		return result{}, 0, err
	}
	c0, err := cpuTime(d.pid())
	if err != nil {
		return result{}, 0, err
	}
	res, err := r.awaitResult(b.cfg.duration + 30*time.Second)
	if err != nil {
		return result{}, 0, err
	}
	c1, err := cpuTime(d.pid())
	if err != nil {
		return result{}, 0, err
	}
	return res, c1 - c0, nil
}
