// Package metrics exports lxcfs-fused's counters to Prometheus. It reads
// what pkg/stats keeps (the supervisor's and workers' shared counters file,
// the hook's outcome counters) at each scrape, so the process serving
// /metrics, the supervisor, does no counting of its own and nothing is lost
// when a worker dies or the binary is upgraded.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/remount"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/stats"
)

// DefaultPort is the port shown in the documentation and manifests.
const DefaultPort = "9617"

// ListenAddress turns --metrics-address into the address to listen on.
// Empty means off. A bare ":PORT" (or "PORT") listens on 127.0.0.1 only:
// the endpoint has no authentication, so it is never on a public interface
// unless the operator names one (0.0.0.0:PORT, a node address, [::]:PORT).
func ListenAddress(flag string) (string, error) {
	if flag == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(flag)
	if err != nil {
		// "9617": a port alone.
		if _, perr := net.LookupPort("tcp", flag); perr == nil {
			host, port, err = "", flag, nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("--metrics-address %q: want HOST:PORT, or :PORT for 127.0.0.1 only", flag)
	}
	// Port 0 takes a free one (tests); the state file and status show it.
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return "", fmt.Errorf("--metrics-address %q: want a port number (e.g. :%s)", flag, DefaultPort)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// Source is what the collector reads at each scrape.
type Source struct {
	Stats      *stats.Region // the daemon's counters
	StateDir   string        // for the hook's counters and the served containers
	Mountpoint string        // containers served from here are counted
	Version    string
}

const ns = "lxcfs_oci_"

var (
	descBuild      = prometheus.NewDesc(ns+"build_info", "The running lxcfs-fused build (value 1).", []string{"version"}, nil)
	descStart      = prometheus.NewDesc(ns+"start_time_seconds", "When the daemon started afresh (upgrades keep it): counters are since then.", nil, nil)
	descOpens      = prometheus.NewDesc(ns+"opens_total", "Opens of a served file (each renders it for the opener).", []string{"file"}, nil)
	descReads      = prometheus.NewDesc(ns+"reads_total", "Read requests of a served file.", []string{"file"}, nil)
	descRenderErr  = prometheus.NewDesc(ns+"render_errors_total", "Requests answered with EIO: not even the host's file could be read.", []string{"file"}, nil)
	descFallbacks  = prometheus.NewDesc(ns+"host_fallbacks_total", "Readers answered with the host's file instead of their container's view, by reason (timeout: the render outlived --read-timeout; view_error: the container's cgroup files could not be read; unresolved: the reader's container could not be told, as when it exited).", []string{"file", "reason"}, nil)
	descLatency    = prometheus.NewDesc(ns+"request_duration_seconds", "Time the daemon took to answer an open or a read of a served file, render included.", []string{"op"}, nil)
	descContainers = prometheus.NewDesc(ns+"containers_served", "Running containers whose views the hook bound from this daemon's mountpoint.", nil, nil)
	descStarts     = prometheus.NewDesc(ns+"worker_starts_total", "Serving workers started, the first one and upgrades included.", nil, nil)
	descRestarts   = prometheus.NewDesc(ns+"worker_restarts_total", "Serving workers that died (crash, kill, out of memory) and were replaced.", nil, nil)
	descUpgrades   = prometheus.NewDesc(ns+"upgrades_total", "Upgrades: the binary re-executed with the connection kept.", nil, nil)
	descRemounts   = prometheus.NewDesc(ns+"remounts_total", "Containers whose dead views the daemon re-attached at start, by result.", []string{"result"}, nil)
	descHook       = prometheus.NewDesc(ns+"hook_outcomes_total", "lxcfs-hook runs by outcome, counted by the hooks themselves in the state directory (since it was made: on tmpfs, since boot).", []string{"outcome"}, nil)
	descRecovery   = prometheus.NewDesc(ns+"held_request_recovery", "How requests a dead worker had read but not answered get answered (value 1): kernel (FUSE_NOTIFY_RESEND, Linux 6.9+), journal (lxcfs-fused's request journal, older kernels), none (neither: such readers wait forever), unknown (not decided yet).", []string{"mechanism"}, nil)
	descScrapeErr  = prometheus.NewDesc(ns+"scrape_errors", "Problems reading a source at this scrape (hook counters, container records).", []string{"source"}, nil)
)

type collector struct{ src Source }

// NewRegistry holds the daemon's metrics only: the Go and process
// collectors would describe the supervisor, not the worker that serves.
func NewRegistry(src Source) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{src})
	return reg
}

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBuild, descStart, descOpens, descReads, descRenderErr, descFallbacks,
		descLatency, descContainers, descStarts, descRestarts, descUpgrades, descRemounts, descHook, descRecovery, descScrapeErr} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) {
		m, err := prometheus.NewConstMetric(d, t, v, labels...)
		if err != nil {
			m = prometheus.NewInvalidMetric(d, err)
		}
		ch <- m
	}
	emit(descBuild, prometheus.GaugeValue, 1, c.src.Version)
	snap := c.src.Stats.Snapshot()
	if !snap.Created.IsZero() {
		emit(descStart, prometheus.GaugeValue, float64(snap.Created.UnixNano())/1e9)
	}
	for _, f := range snap.Files {
		emit(descOpens, prometheus.CounterValue, float64(f.Opens), f.Name)
		emit(descReads, prometheus.CounterValue, float64(f.Reads), f.Name)
		emit(descRenderErr, prometheus.CounterValue, float64(f.RenderErrors), f.Name)
		for _, why := range stats.Fallbacks {
			emit(descFallbacks, prometheus.CounterValue, float64(f.Fallbacks[why.String()]), f.Name, why.String())
		}
	}
	for _, op := range stats.Ops {
		h := snap.Hists[op]
		if h.Counts == nil {
			continue
		}
		buckets, count := Cumulative(h)
		m, err := prometheus.NewConstHistogram(descLatency, count, h.Sum.Seconds(), buckets, op.String())
		if err != nil {
			m = prometheus.NewInvalidMetric(descLatency, err)
		}
		ch <- m
	}
	emit(descStarts, prometheus.CounterValue, float64(snap.Counters[stats.WorkerStarts]))
	emit(descRestarts, prometheus.CounterValue, float64(snap.Counters[stats.WorkerDeaths]))
	emit(descUpgrades, prometheus.CounterValue, float64(snap.Counters[stats.Upgrades]))
	emit(descRemounts, prometheus.CounterValue, float64(snap.Counters[stats.RemountReattached]), "reattached")
	emit(descRemounts, prometheus.CounterValue, float64(snap.Counters[stats.RemountFailed]), "failed")
	emit(descRecovery, prometheus.GaugeValue, 1, recovery(snap.Counters[stats.NotifyResend]))

	n, errs := remount.CountLive(c.src.StateDir, c.src.Mountpoint)
	emit(descContainers, prometheus.GaugeValue, float64(n))
	emit(descScrapeErr, prometheus.GaugeValue, float64(len(errs)), "container_records")
	hook, err := stats.HookCounts(c.src.StateDir)
	for _, o := range stats.Outcomes {
		emit(descHook, prometheus.CounterValue, float64(hook[o]), o.String())
	}
	hookErr := 0.0
	if err != nil {
		hookErr = 1
	}
	emit(descScrapeErr, prometheus.GaugeValue, hookErr, "hook_counters")
}

// Cumulative turns a stats histogram (a count per bucket) into
// Prometheus's (the count at or below each upper bound, in seconds) and the
// total count.
func Cumulative(h stats.Histogram) (map[float64]uint64, uint64) {
	buckets := make(map[float64]uint64, len(stats.Buckets))
	var sum uint64
	for i, c := range h.Counts {
		sum += c
		if i < len(stats.Buckets) {
			buckets[stats.Buckets[i].Seconds()] = sum
		}
	}
	return buckets, sum
}

// Server serves /metrics on one address until stopped.
type Server struct {
	srv *http.Server
	ln  net.Listener
}

// Listen binds addr (from ListenAddress) and serves /metrics from reg in the
// background. Scrapes are bounded so a stuck scraper holds nothing for long.
func Listen(addr string, reg *prometheus.Registry, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-address %s: %w (another process on that port? pick another one)", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	s := &Server{ln: ln, srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics server stopped", "addr", addr, "err", err)
		}
	}()
	return s, nil
}

// Addr is where the server listens (the port chosen when addr had port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops serving.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// recovery names the stats.NotifyResend value (supervise.Resend*).
func recovery(v uint64) string {
	switch v {
	case 1:
		return "kernel"
	case 2:
		return "none"
	case 3:
		return "journal"
	}
	return "unknown"
}
