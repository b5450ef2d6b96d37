package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// staleRow is how long a changed limit took to show in one column.
type staleRow struct {
	name   string
	ttl    time.Duration
	delays []time.Duration
}

// ageRow is the age of the cached uptime figures read over a window.
type ageRow struct {
	ttl  time.Duration
	ages []time.Duration
}

// uptimeAge reads the container's uptime through its cached files and, right
// after, through the uncached (TTL 0) daemon's, for window: the difference
// is the age of the cached figure (uptime is rendered afresh every time;
// its unit, 10 ms, bounds the precision).
func (b *bench) uptimeAge(cachedRoot, ttl0Root string, window time.Duration) (ageRow, error) {
	row := ageRow{ttl: b.cacheTTL()}
	for t0 := time.Now(); time.Since(t0) < window; {
		c, err := uptimeOf(cachedRoot + "/proc/uptime")
		if err != nil {
			return row, err
		}
		z, err := uptimeOf(ttl0Root + "/proc/uptime")
		if err != nil {
			return row, err
		}
		row.ages = append(row.ages, max(z-c, 0))
	}
	return row, nil
}

func uptimeOf(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, fmt.Errorf("%s: %q is not an uptime", path, b)
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not an uptime", path, b)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// staleness measures the age of the figures a reader of the container's
// own files sees. Each trial reads the file back to back for a random part
// of a TTL (so the kernel holds it cached, as under any load), then changes
// the container's memory limit (1 GiB and 2 GiB in turn: MemTotal keeps its
// width, so no size change drops the page early) and keeps reading until
// MemTotal shows the new limit. The delay is the age of the last stale
// figure read.
func (b *bench) staleness(cg *cgroup, cachedRoot, ttl0Root string) error {
	ttl := b.cacheTTL()
	fmt.Fprintf(os.Stderr, "lxcfs-bench: staleness of uptime\n")
	ages, err := b.uptimeAge(cachedRoot, ttl0Root, max(4*ttl, 2*time.Second))
	if err != nil {
		return err
	}
	limitDir := cg.dir("memory")
	var rows []staleRow
	for _, c := range []struct {
		name, root string
		ttl        time.Duration
	}{{"cached", cachedRoot, ttl}, {"ttl0", ttl0Root, 0}} {
		row := staleRow{name: c.name, ttl: c.ttl}
		path := c.root + "/proc/meminfo"
		limit := uint64(1 << 30)
		for i := range b.cfg.staleTrials {
			fmt.Fprintf(os.Stderr, "\rlxcfs-bench: staleness %s trial %d/%d      ", c.name, i+1, b.cfg.staleTrials)
			warm := time.Duration(rand.Int64N(int64(max(c.ttl, 10*time.Millisecond))))
			for t0 := time.Now(); time.Since(t0) < warm; {
				if _, err := memTotalKB(path); err != nil {
					return err
				}
			}
			limit = 3<<30 - limit // 1 GiB <-> 2 GiB
			if err := writeCgroup(limitDir, "memory.limit_in_bytes", strconv.FormatUint(limit, 10)); err != nil {
				return err
			}
			changed := time.Now()
			for {
				kb, err := memTotalKB(path)
				if err != nil {
					return err
				}
				if kb == limit>>10 {
					break
				}
				if time.Since(changed) > c.ttl+30*time.Second {
					return fmt.Errorf("staleness: %s still shows MemTotal %d kB %v after the limit changed to %d kB", path, kb, time.Since(changed), limit>>10)
				}
			}
			row.delays = append(row.delays, time.Since(changed))
		}
		if limit != 1<<30 {
			if err := writeCgroup(limitDir, "memory.limit_in_bytes", strconv.Itoa(1<<30)); err != nil {
				return err
			}
		}
		rows = append(rows, row)
	}
	fmt.Fprintln(os.Stderr)
	b.rep.staleTable(ages, rows)
	return nil
}

// memTotalKB reads MemTotal from the first bytes of a meminfo, as a reader
// that asks for less than the file does: within the size the kernel
// knows, so a cached page answers it however old it is.
func memTotalKB(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 32)
	if _, err := f.ReadAt(buf, 0); err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	line, _, _ := strings.Cut(string(buf), "\n")
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != "MemTotal:" {
		return 0, fmt.Errorf("%s starts %q, not MemTotal", path, line)
	}
	return strconv.ParseUint(fields[1], 10, 64)
}

// quantileDur is the q-quantile of d (sorted in place).
func quantileDur(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(q*float64(len(d))))]
}
