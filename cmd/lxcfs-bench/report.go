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
		if strings.HasPrefix(s.daemon, "lxcfs") {
			name = "LXCFS"
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
	r.printf("## Targets (issue 6)\n\n| target | measured | met |\n|---|---:|---|\n")
	for _, t := range r.targets {
		met := "yes"
		if !t.ok {
			met = "**no**"
		}
		r.printf("| %s | %s | %s |\n", t.what, t.got, met)
	}
	r.printf("\n")
}
