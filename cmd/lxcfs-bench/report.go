package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/content"
)

// report prints the tables as Markdown as each benchmark finishes, and
// keeps them for --out and the closing list of targets.
type report struct {
	cfg     *config
	buf     bytes.Buffer
	w       io.Writer
	targets []target
}

type target struct {
	what string
	ok   bool
	got  string
}

func newReport(cfg *config) *report {
	r := &report{cfg: cfg}
	r.w = io.MultiWriter(os.Stdout, &r.buf)
	return r
}

func (r *report) printf(format string, args ...any) { fmt.Fprintf(r.w, format, args...) }

func (r *report) header() {
	host, _ := os.Hostname()
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	r.printf("# lxcfs-bench %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	r.printf("host %s, kernel %s, %d CPUs, %s; lxcfs-fused %s vs %s\n\n", host, strings.TrimSpace(string(kernel)),
		runtime.NumCPU(), memTotal(), r.cfg.fused, lxcfsVersion(r.cfg.lxcfs))
	r.printf("command: lxcfs-bench %s\n\n", strings.Join(os.Args[1:], " "))
}

func memTotal() string {
	b, _ := os.ReadFile("/proc/meminfo")
	if v, ok := meminfoField(b, "MemTotal"); ok {
		return fmt.Sprintf("%.1f GiB", float64(v)/(1<<20))
	}
	return "? GiB"
}

func lxcfsVersion(bin string) string {
	out, err := execOutput(bin, "--version")
	if err != nil {
		return "LXCFS (version unknown)"
	}
	return "LXCFS " + strings.Trim(strings.TrimSpace(out), `"`)
}

func ms(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 3, 64) }
func us(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1e6, 'f', 0, 64) }

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", a/b)
}

func (r *report) readTables(cells map[cellKey]*cell) {
	cfg := r.cfg
	r.printf("## Read benchmark\n\n")
	r.printf("One container (own pid namespace; v1 cgroup with a 1 GiB memory limit, cpuset 0) runs open/read-to-EOF/close loops on each file; "+
		"%d round(s) of %v per cell after %v of warm-up, the daemons alternating every round. "+
		"Latency is one whole open-read-close; CPU is the daemon's utime+stime (all threads) per 1,000 reads. Ratios are ours/LXCFS.\n\n",
		cfg.rounds, cfg.duration, cfg.warmup)
	r.printf("| file | readers | ours reads/s | LXCFS reads/s | reads ratio | ours p50/p99 µs | LXCFS p50/p99 µs | p99 ratio | ours CPU ms/1k | LXCFS CPU ms/1k | CPU ratio | errors |\n")
	r.printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	headline := map[string]bool{"meminfo": true, "stat": true, "cpuinfo": true, "uptime": true}
	for _, f := range cfg.files {
		for _, n := range cfg.readers {
			o, l := cells[cellKey{"ours", f, n}], cells[cellKey{"lxcfs", f, n}]
			if o == nil || l == nil {
				continue
			}
			rr := o.rate() / l.rate()
			pr := float64(o.h.quantile(.99)) / float64(l.h.quantile(.99))
			cr := float64(o.cpuPer1k()) / float64(l.cpuPer1k())
			errs := fmt.Sprintf("%d/%d", o.errors, l.errors)
			r.printf("| %s | %d | %.0f | %.0f | **%.2fx** | %s/%s | %s/%s | %.2fx | %s | %s | %.2fx | %s |\n",
				f, n, o.rate(), l.rate(), rr,
				us(o.h.quantile(.5)), us(o.h.quantile(.99)), us(l.h.quantile(.5)), us(l.h.quantile(.99)), pr,
				ms(o.cpuPer1k()), ms(l.cpuPer1k()), cr, errs)
			for _, c := range []*cell{o, l} {
				if c.firstErr != "" {
					r.printf("|  | | first error: %s | | | | | | | | | |\n", c.firstErr)
				}
			}
			if headline[f] {
				r.targets = append(r.targets,
					target{fmt.Sprintf("%s x%d: reads/s >= 1.25x LXCFS", f, n), rr >= 1.25, fmt.Sprintf("%.2fx", rr)},
					target{fmt.Sprintf("%s x%d: p99 <= LXCFS", f, n), pr <= 1, fmt.Sprintf("%.2fx", pr)},
					target{fmt.Sprintf("%s x%d: CPU/read <= 0.8x LXCFS", f, n), cr <= 0.8, fmt.Sprintf("%.2fx", cr)})
			}
			if o.errors+l.errors > 0 {
				r.targets = append(r.targets, target{fmt.Sprintf("%s x%d: no read errors", f, n), false, errs})
			}
		}
	}
	r.printf("\n")
	if cells[cellKey{"static", "meminfo", cfg.readers[0]}] == nil {
		return
	}
	r.printf("Floor: the same loop on a static file of meminfo's size served by our own FUSE layer (pkg/fusefs, `lxcfs-bench static-server`), " +
		"measured right before or after ours in every round. ours/floor is the median of the rounds' ratios, which the machine's drift between rounds does not reach.\n\n")
	r.printf("| readers | static reads/s | ours meminfo reads/s | ours/floor | each round | static p50/p99 µs | static CPU ms/1k | ours CPU ms/1k |\n")
	r.printf("|---:|---:|---:|---:|---|---:|---:|---:|\n")
	for _, n := range cfg.readers {
		s, o := cells[cellKey{"static", "meminfo", n}], cells[cellKey{"ours", "meminfo", n}]
		if s == nil || o == nil {
			continue
		}
		rounds := pairedRatios(o, s)
		each := make([]string, len(rounds))
		for i, v := range rounds {
			each[i] = fmt.Sprintf("%.2f", v)
		}
		fr := median(rounds)
		r.printf("| %d | %.0f | %.0f | **%.2fx** | %s | %s/%s | %s | %s |\n", n, s.rate(), o.rate(), fr, strings.Join(each, ", "),
			us(s.h.quantile(.5)), us(s.h.quantile(.99)), ms(s.cpuPer1k()), ms(o.cpuPer1k()))
		r.targets = append(r.targets, target{fmt.Sprintf("meminfo x%d: within 15%% of the static floor", n), fr >= 0.85, fmt.Sprintf("%.2fx of floor", fr)})
	}
	r.printf("\n")
}

// cacheTables compares, per file, the kernel's own files, ours through the
// container's own files with the cache TTL and with TTL 0, ours through the
// shared tree (never cached: what every read cost before --cache-ttl) and
// LXCFS, all read by the same container in the same rounds.
func (r *report) cacheTables(cells map[cellKey]*cell, ttl time.Duration) {
	cfg := r.cfg
	r.printf("## Kernel caching (--cache-ttl)\n\n")
	r.printf("The same container and loops as above, with more columns in the same rotation: the kernel's own file (its /proc, no FUSE: the physical limit), "+
		"ours through the container's own files (MOUNT/.containers/ID, what lxcfs-hook binds) with `--cache-ttl %v` and with `--cache-ttl 0` (a second daemon), "+
		"ours through the shared tree (answered per reader, never cached) and LXCFS. CPU is the serving daemon's per 1,000 reads (the kernel's own reads count none).\n\n", ttl)
	r.printf("| file | readers | kernel reads/s | cached reads/s | cached/kernel | TTL 0 reads/s | shared reads/s | TTL 0/shared | LXCFS reads/s | cached/LXCFS | CPU ms/1k cached | TTL 0 | shared | LXCFS | CPU cached/LXCFS | errors cached/TTL 0 |\n")
	r.printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	headline := map[string]bool{"meminfo": true, "stat": true, "cpuinfo": true, "uptime": true}
	for _, f := range cfg.files {
		for _, n := range cfg.readers {
			k, c, z, o, l := cells[cellKey{"kernel", f, n}], cells[cellKey{"cached", f, n}], cells[cellKey{"ttl0", f, n}],
				cells[cellKey{"ours", f, n}], cells[cellKey{"lxcfs", f, n}]
			if k == nil || c == nil || z == nil || o == nil || l == nil {
				continue
			}
			kr, zr := c.rate()/k.rate(), z.rate()/o.rate()
			cr := float64(c.cpuPer1k()) / float64(l.cpuPer1k())
			r.printf("| %s | %d | %.0f | %.0f | **%.2fx** | %.0f | %.0f | %.2fx | %.0f | %.1fx | %s | %s | %s | %s | **%.3fx** | %d/%d |\n",
				f, n, k.rate(), c.rate(), kr, z.rate(), o.rate(), zr, l.rate(), c.rate()/l.rate(),
				ms(c.cpuPer1k()), ms(z.cpuPer1k()), ms(o.cpuPer1k()), ms(l.cpuPer1k()), cr, c.errors, z.errors)
			for _, x := range []*cell{c, z} {
				if x.firstErr != "" {
					r.printf("|  | | first error: %s | | | | | | | | | | | | | |\n", x.firstErr)
				}
			}
			if headline[f] {
				r.targets = append(r.targets,
					target{fmt.Sprintf("issue 14: %s x%d: cached reads/s >= 0.5x the kernel's", f, n), kr >= 0.5, fmt.Sprintf("%.2fx", kr)},
					target{fmt.Sprintf("issue 14: %s x%d: cached CPU per read <= 0.1x LXCFS", f, n), cr <= 0.1, fmt.Sprintf("%.3fx", cr)},
					target{fmt.Sprintf("issue 14: %s x%d: TTL 0 no slower than the uncached shared tree", f, n), zr >= 0.95, fmt.Sprintf("%.2fx", zr)})
			}
			if c.errors+z.errors > 0 {
				r.targets = append(r.targets, target{fmt.Sprintf("issue 14: %s x%d: no read errors", f, n), false, fmt.Sprintf("%d/%d", c.errors, z.errors)})
			}
		}
	}
	r.printf("\n")
}

// staleTable reports the age of the figures read from cached files, and
// how long a changed limit took to show.
func (r *report) staleTable(ages ageRow, rows []staleRow) {
	r.printf("### Staleness\n\n")
	r.printf("Age of the figures read: a host reader reads the container's uptime through its own files with `--cache-ttl %v` and, right after, "+
		"through the TTL 0 daemon's (rendered afresh, the reference) back to back for a while; the age is the difference (uptime's unit is 10 ms).\n\n", ages.ttl)
	med, p99, worst := quantileDur(ages.ages, .5), quantileDur(ages.ages, .99), quantileDur(ages.ages, 1)
	r.printf("| TTL | reads | median age ms | p99 age ms | max age ms |\n|---:|---:|---:|---:|---:|\n")
	r.printf("| %v | %d | %s | %s | %s |\n\n", ages.ttl, len(ages.ages), ms(med), ms(p99), ms(worst))
	r.targets = append(r.targets, target{fmt.Sprintf("issue 14: no cached figure older than the TTL (%v) + one render (10 ms, uptime's unit)", ages.ttl),
		worst <= ages.ttl+10*time.Millisecond, ms(worst) + " ms"})
	r.printf("A changed limit: the benchmark flips the container's memory limit between 1 and 2 GiB, %d times per column, each after reading for a random part of a TTL, "+
		"and a host reader reads the container's own meminfo (its first 32 bytes, which a cached page answers) until it shows the new limit. "+
		"The daemon reuses a container's limits for up to %v besides (content.DefaultLimitTTL), so TTL 0 shows that part alone.\n\n", r.cfg.staleTrials, content.DefaultLimitTTL)
	r.printf("| column | TTL | trials | median delay ms | max delay ms |\n|---|---:|---:|---:|---:|\n")
	for _, row := range rows {
		med, worst := quantileDur(row.delays, .5), quantileDur(row.delays, 1)
		r.printf("| %s | %v | %d | %s | %s |\n", row.name, row.ttl, len(row.delays), ms(med), ms(worst))
		r.targets = append(r.targets, target{fmt.Sprintf("issue 14: %s: a changed limit shows within the limit cache (%v) + the TTL (%v) + 10 ms", row.name, content.DefaultLimitTTL, row.ttl),
			worst <= content.DefaultLimitTTL+row.ttl+10*time.Millisecond, ms(worst) + " ms"})
	}
	r.printf("\n")
}

func (r *report) scaleTable(rows []*scaleRow) {
	r.printf("## Scale benchmark\n\n")
	r.printf("N containers (each the init of its own pid namespace, in its own v1 cgroups with its own memory limit and cpuset 0 or 1) each read meminfo and stat every %v; "+
		"%v measured after %v of warm-up per daemon. A read whose MemTotal is not its container's limit, or whose stat does not show exactly its one CPU, is an error.\n\n",
		scalePeriod, r.cfg.scaleDuration, r.cfg.scaleWarmup)
	r.printf("A 2-CPU machine saturates before 500 containers' offered load (N x 20 reads/s) is met, and then both daemons get what CPU is left: " +
		"compare CPU per 1,000 reads, which is CPU for the same load. \"Phase\" is the daemon's CPU from the first job until it is idle after the last read, " +
		"per 1,000 reads answered in that time (warm-up included): work a daemon lets wait in the kernel past the measured window counts there.\n\n")
	r.printf("| containers | loadavg | daemon | offered reads/s | reads/s | CPU %% | CPU ms/1k reads | phase CPU ms/1k reads | RSS MiB | p50 µs | p99 µs | errors |\n")
	r.printf("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	type key struct {
		n  int
		la bool
	}
	by := map[key]map[string]*scaleRow{}
	var keys []key
	for _, s := range rows {
		name := "ours"
		switch {
		case strings.HasPrefix(s.daemon, "lxcfs"):
			name = "LXCFS"
		case strings.HasSuffix(s.daemon, " own"):
			name = "ours, own files"
		}
		k := key{s.n, s.loadavg}
		if by[k] == nil {
			by[k] = map[string]*scaleRow{}
			keys = append(keys, k)
		}
		by[k][name] = s
		la := "off"
		if s.loadavg {
			la = "on"
		}
		r.printf("| %d | %s | %s | %d | %.0f | %.1f | %s | %s | %.1f | %s | %s | %d |\n", s.n, la, name, s.n*2*int(time.Second/scalePeriod),
			float64(s.reads)/r.cfg.scaleDuration.Seconds(), s.cpuPct(), ms(s.cpuPer1k()), ms(s.phaseCPUPer1k()), float64(s.rss)/(1<<20),
			us(s.h.quantile(.5)), us(s.h.quantile(.99)), s.errors)
		if s.firstErr != "" {
			r.printf("| | | | first error: %s | | | | | | | | |\n", s.firstErr)
		}
	}
	r.printf("\n| containers | loadavg | reads/s ours/LXCFS | CPU per read ours/LXCFS | phase CPU per read ours/LXCFS | CPU %% ours/LXCFS | p99 ours/LXCFS | RSS ours/LXCFS |\n|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range keys {
		o, l := by[k]["ours"], by[k]["LXCFS"]
		if o == nil || l == nil {
			continue
		}
		la := "off"
		if k.la {
			la = "on"
		}
		// The target compares whole phases: a daemon that leaves part of
		// each read's work queued in the kernel would otherwise look
		// cheaper for as long as its backlog grows.
		// The target compares whole phases: a daemon that leaves part of
		// each read's work queued in the kernel would otherwise look
		// cheaper for as long as its backlog grows.
		cr := float64(o.phaseCPUPer1k()) / float64(l.phaseCPUPer1k())
		r.printf("| %d | %s | %s | %s | **%s** | %s | %s | %s |\n", k.n, la, ratio(float64(o.reads), float64(l.reads)),
			ratio(float64(o.cpuPer1k()), float64(l.cpuPer1k())), ratio(float64(o.phaseCPUPer1k()), float64(l.phaseCPUPer1k())), ratio(o.cpuPct(), l.cpuPct()),
			ratio(float64(o.h.quantile(.99)), float64(l.h.quantile(.99))), ratio(float64(o.rss), float64(l.rss)))
		if k.n >= 500 {
			r.targets = append(r.targets,
				target{fmt.Sprintf("%d containers (loadavg %s): 0 errors", k.n, la), o.errors == 0, strconv.FormatUint(o.errors, 10)},
				target{fmt.Sprintf("%d containers (loadavg %s): RSS < 64 MiB", k.n, la), o.rss < 64<<20, fmt.Sprintf("%.1f MiB", float64(o.rss)/(1<<20))},
				target{fmt.Sprintf("%d containers (loadavg %s): CPU per read (whole phase) <= 0.5x LXCFS", k.n, la), cr <= 0.5, fmt.Sprintf("%.2fx", cr)})
			if w := by[k]["ours, own files"]; w != nil {
				r.targets = append(r.targets,
					target{fmt.Sprintf("issue 14: %d containers, own files: 0 errors", k.n), w.errors == 0, strconv.FormatUint(w.errors, 10)},
					target{fmt.Sprintf("issue 14: %d containers, own files: RSS < 64 MiB", k.n), w.rss < 64<<20, fmt.Sprintf("%.1f MiB", float64(w.rss)/(1<<20))})
			}
		}
	}
	r.printf("\n")
}

func (r *report) hookTable(out string) {
	r.printf("## Hook benchmark\n\n```\n%s```\n\n", out)
	for line := range strings.SplitSeq(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "lxcfs-hook / smallest Go hook (added, medians):"); ok {
			got := strings.TrimSpace(rest)
			v, err := strconv.ParseFloat(strings.TrimSuffix(got, "x"), 64)
			r.targets = append(r.targets, target{"hook: adds at most 1.5x what the smallest Go hook adds (issue 14)", err == nil && v <= 1.5, got})
			continue
		}
		rest, ok := strings.CutPrefix(line, "added by lxcfs-hook (paired)")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) >= 2 {
			v, err := strconv.ParseFloat(f[0], 64)
			r.targets = append(r.targets, target{"hook: median added start time < 5 ms", err == nil && v < 5, f[0] + " ms"})
		}
	}
}

func (r *report) summary() {
	if len(r.targets) == 0 {
		return
	}
	r.printf("## Targets (issue 6 unless named)\n\n| target | measured | met |\n|---|---:|---|\n")
	for _, t := range r.targets {
		met := "yes"
		if !t.ok {
			met = "**no**"
		}
		r.printf("| %s | %s | %s |\n", t.what, t.got, met)
	}
	r.printf("\n")
}
