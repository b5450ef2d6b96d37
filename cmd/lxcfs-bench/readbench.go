package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
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

// column is one column of the read benchmark: where its reader reads a
// file (rel, below a mount) and whose CPU time counts (none for the
// kernel's own files).
type column struct {
	name string
	path func(rel string) string
	d    *daemon // nil: the kernel's
}

// readBench runs open/read/close loops from one container (1 GiB memory
// limit, cpuset 0) on each file, rotating the columns every round: the
// kernel's own files, ours (the shared tree, per reader, never cached),
// ours through the container's own files with the default cache TTL and
// with TTL 0 (ttl0), LXCFS, and for meminfo the static floor.
func (b *bench) readBench(ours, ttl0, ref, static *daemon) error {
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
	cachedRoot, err := ours.ownRoot(r.cmd.Process.Pid)
	if err != nil {
		return err
	}
	ttl0Root, err := ttl0.ownRoot(r.cmd.Process.Pid)
	if err != nil {
		return err
	}
	under := func(root string) func(string) string {
		return func(rel string) string { return root + "/" + rel }
	}
	cols := []column{
		{"kernel", func(rel string) string { return "/" + rel }, nil},
		{"ours", under(ours.mp), ours},
		{"cached", under(cachedRoot), ours},
		{"ttl0", under(ttl0Root), ttl0},
		{"lxcfs", under(ref.mp), ref},
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
				order := slices.Clone(cols)
				if f == "meminfo" {
					// Static right before ours, so each floor ratio pairs
					// measurements taken back to back.
					order = slices.Insert(order, 1, column{"static", under(static.mp), static})
				}
				// Rotate, so no column always follows the same one.
				k := round % len(order)
				order = append(order[k:], order[:k]...)
				for _, c := range order {
					res, cpu, err := b.measureLoop(r, c, benchFiles[f], n)
					if err != nil {
						return fmt.Errorf("read benchmark, %s on %s with %d readers: %w", f, c.name, n, err)
					}
					k := cellKey{c.name, f, n}
					if cells[k] == nil {
						cells[k] = &cell{}
					}
					cells[k].add(res, cpu)
				}
			}
		}
	}
	fmt.Fprintln(os.Stderr)
	b.rep.readTables(cells)
	b.rep.cacheTables(cells, b.cacheTTL())
	if err := b.staleness(cg, cachedRoot, ttl0Root); err != nil {
		return err
	}
	r.kill()
	return nil
}

// cacheTTL is the --cache-ttl ours runs with.
func (b *bench) cacheTTL() time.Duration {
	for i, a := range b.cfg.fusedArgs {
		v, ok := strings.CutPrefix(a, "--cache-ttl=")
		if !ok && a == "--cache-ttl" && i+1 < len(b.cfg.fusedArgs) {
			v, ok = b.cfg.fusedArgs[i+1], true
		}
		if d, err := time.ParseDuration(v); ok && err == nil {
			return d
		}
	}
	return fusefs.DefaultCacheTTL
}

// measureLoop runs one loop job on column c and returns the reader's result
// with the column's daemon's CPU time over the measured window.
func (b *bench) measureLoop(r *readerProc, c column, rel string, readers int) (result, time.Duration, error) {
	j := job{Kind: "loop", Path: c.path(rel), Conc: readers, Warmup: b.cfg.warmup, Duration: b.cfg.duration}
	if err := r.send(j); err != nil {
		return result{}, 0, err
	}
	if err := r.awaitMeasuring(b.cfg.warmup + 30*time.Second); err != nil {
		return result{}, 0, err
	}
	cpu := func() (time.Duration, error) {
		if c.d == nil {
			return 0, nil
		}
		return cpuTime(c.d.pid())
	}
	c0, err := cpu()
	if err != nil {
		return result{}, 0, err
	}
	res, err := r.awaitResult(b.cfg.duration + 30*time.Second)
	if err != nil {
		return result{}, 0, err
	}
	c1, err := cpu()
	if err != nil {
		return result{}, 0, err
	}
	return res, c1 - c0, nil
}
