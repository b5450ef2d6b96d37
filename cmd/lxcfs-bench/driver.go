package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/fusefs"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/register"
)

// config is the driver's flags.
type config struct {
	rounds        int
	duration      time.Duration
	warmup        time.Duration
	files         []string
	readers       []int
	scaleNs       []int
	scaleDuration time.Duration
	scaleWarmup   time.Duration
	loadavgN      int
	hookRuns      int
	staleTrials   int
	only          map[string]bool
	fused         string
	fusedArgs     []string
	lxcfs         string
	repo          string
	out           string
}

// benchFiles are the served files, by their path below either daemon's mount.
var benchFiles = map[string]string{
	"meminfo":   "proc/meminfo",
	"cpuinfo":   "proc/cpuinfo",
	"stat":      "proc/stat",
	"uptime":    "proc/uptime",
	"loadavg":   "proc/loadavg",
	"diskstats": "proc/diskstats",
	"swaps":     "proc/swaps",
	"online":    "sys/devices/system/cpu/online",
}

const allFiles = "meminfo,cpuinfo,stat,uptime,loadavg,diskstats,swaps,online"

func parseConfig(args []string) (*config, error) {
	fl := flag.NewFlagSet("lxcfs-bench", flag.ContinueOnError)
	fl.Usage = func() {
		fmt.Fprintf(fl.Output(), "usage: lxcfs-bench [flags]\n\nRuns lxcfs-fused and LXCFS side by side (as root) and prints ratio tables.\n\n")
		fl.PrintDefaults()
	}
	quick := fl.Bool("quick", false, "short run (about 1.5 minutes): 1 round of 0.5s per cell, 3s scale phases, 30 hook runs; overrides the duration flags")
	rounds := fl.Int("rounds", 5, "read benchmark: alternating rounds per cell (each daemon measured once per round)")
	dur := fl.Duration("duration", time.Second, "read benchmark: measured time per round")
	warm := fl.Duration("warmup", 200*time.Millisecond, "read benchmark: unmeasured reads before each round")
	files := fl.String("files", allFiles, "read benchmark: files to read")
	readers := fl.String("readers", "1,8", "read benchmark: concurrent readers")
	scale := fl.String("scale", "10,100,500", "scale benchmark: container counts (empty: skip)")
	sdur := fl.Duration("scale-duration", 10*time.Second, "scale benchmark: measured time per phase")
	swarm := fl.Duration("scale-warmup", 2*time.Second, "scale benchmark: unmeasured time before each phase (first lookups)")
	lavg := fl.Int("loadavg-n", 500, "scale benchmark: containers for the --enable-loadavg / lxcfs -l phase (0: skip)")
	hook := fl.Int("hook-runs", 200, "hook benchmark: runc runs of each kind (no hook, a /bin/true hook, the smallest Go hook, lxcfs-hook) (0: skip)")
	stale := fl.Int("stale-trials", 20, "read benchmark: limit changes timed per column for the staleness table")
	only := fl.String("only", "read,scale,hook", "benchmarks to run")
	fused := fl.String("fused", "bin/lxcfs-fused", "lxcfs-fused binary (make build)")
	fusedArgs := fl.String("fused-args", "", "extra flags for lxcfs-fused, space separated (e.g. \"--cpuprofile /tmp/cpu.pprof\")")
	lxcfs := fl.String("lxcfs", "lxcfs", "LXCFS binary; installed with scripts/install-deps.sh when absent")
	repo := fl.String("repo", ".", "repository root, for scripts/")
	out := fl.String("out", "", "also write the report (markdown) to this file")
	if err := fl.Parse(args); err != nil {
		return nil, err
	}
	if fl.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q; see -h", fl.Arg(0))
	}
	c := &config{
		rounds: *rounds, duration: *dur, warmup: *warm,
		scaleDuration: *sdur, scaleWarmup: *swarm, loadavgN: *lavg, hookRuns: *hook, staleTrials: max(*stale, 1),
		fusedArgs: strings.Fields(*fusedArgs), lxcfs: *lxcfs, repo: *repo, out: *out,
		only: map[string]bool{},
	}
	if *quick {
		c.rounds, c.duration, c.warmup = 1, 500*time.Millisecond, 100*time.Millisecond
		c.scaleDuration, c.scaleWarmup = 3*time.Second, time.Second
		c.hookRuns = min(c.hookRuns, 30)
		c.staleTrials = min(c.staleTrials, 5)
	}
	var err error
	for f := range strings.SplitSeq(*files, ",") {
		if _, ok := benchFiles[f]; !ok {
			return nil, fmt.Errorf("--files: unknown file %q; want some of %s", f, allFiles)
		}
		c.files = append(c.files, f)
	}
	if c.readers, err = intList(*readers); err != nil {
		return nil, fmt.Errorf("--readers: %w", err)
	}
	if c.scaleNs, err = intList(*scale); err != nil {
		return nil, fmt.Errorf("--scale: %w", err)
	}
	for b := range strings.SplitSeq(*only, ",") {
		switch b {
		case "read", "scale", "hook":
			c.only[b] = true
		default:
			return nil, fmt.Errorf("--only: unknown benchmark %q; want read, scale or hook", b)
		}
	}
	if c.rounds < 1 || c.duration <= 0 {
		return nil, fmt.Errorf("--rounds and --duration must be positive")
	}
	if c.fused, err = filepath.Abs(*fused); err != nil {
		return nil, err
	}
	if c.repo, err = filepath.Abs(c.repo); err != nil {
		return nil, err
	}
	return c, nil
}

func intList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// bench holds what a run set up, so every piece is torn down however the
// run ends.
type bench struct {
	cfg  *config
	self string // this binary, re-executed as readers and the static server
	tmp  string
	rep  *report

	parent   string // the run's parent cgroup, once made
	scaleSet int    // numbers the scale benchmark's container sets

	mu      sync.Mutex
	undo    []func()
	cleaned bool
}

// atExit registers fn to run at cleanup, before the functions registered
// earlier (readers die before their cgroups are removed).
func (b *bench) atExit(fn func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.undo = append(b.undo, fn)
}

// cleanup undoes everything, once, whether the run ended, failed or was
// interrupted.
func (b *bench) cleanup() {
	b.mu.Lock()
	if b.cleaned {
		b.mu.Unlock()
		return
	}
	b.cleaned = true
	undo := b.undo
	b.mu.Unlock()
	for i := len(undo) - 1; i >= 0; i-- {
		undo[i]()
	}
}

func driverMain(args []string) error {
	cfg, err := parseConfig(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("run as root: the benchmark mounts FUSE and creates cgroups and pid namespaces")
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own binary: %w", err)
	}
	b := &bench{cfg: cfg, self: self, rep: newReport(cfg)}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "lxcfs-bench: %v: cleaning up\n", s)
		b.cleanup()
		os.Exit(130)
	}()
	defer b.cleanup()

	sweepLeftovers()
	if err := b.ensureDeps(); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.fused); err != nil {
		return fmt.Errorf("%s: %w (run make build first)", cfg.fused, err)
	}
	if b.tmp, err = os.MkdirTemp("", tmpPrefix); err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	b.atExit(func() { os.RemoveAll(b.tmp) })
	b.rep.header()

	if cfg.only["read"] || cfg.only["scale"] {
		ours, err := b.startOurs("ours")
		if err != nil {
			return err
		}
		ref, err := b.startLXCFS("lxcfs")
		if err != nil {
			return err
		}
		if cfg.only["read"] {
			static, err := b.startStatic()
			if err != nil {
				return err
			}
			// The same daemon with no kernel caching, for its own files
			// at TTL 0 (the shared tree is never cached).
			ttl0, err := b.startOurs("ours-ttl0", "--cache-ttl", "0")
			if err != nil {
				return err
			}
			if err := b.readBench(ours, ttl0, ref, static); err != nil {
				return err
			}
			ttl0.stop()
			static.stop()
		}
		if cfg.only["scale"] {
			if err := b.scaleBench(ours, ref); err != nil {
				return err
			}
		}
		ours.stop()
		ref.stop()
	}
	if cfg.only["hook"] && cfg.hookRuns > 0 {
		if err := b.hookBench(); err != nil {
			return err
		}
	}
	b.rep.summary()
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, b.rep.buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", cfg.out, err)
		}
	}
	return nil
}

// ensureDeps installs LXCFS (and runc and busybox for the hook benchmark)
// from Debian packages when they are missing.
func (b *bench) ensureDeps() error {
	script := filepath.Join(b.cfg.repo, "scripts/install-deps.sh")
	need := func(bin string) bool { _, err := exec.LookPath(bin); return err != nil }
	var args []string
	switch {
	case need(b.cfg.lxcfs):
		args = nil // the full set includes lxcfs
	case b.cfg.only["hook"] && (need("runc") || need("busybox")):
		args = []string{"--minimal"}
	default:
		return nil
	}
	fmt.Fprintf(os.Stderr, "lxcfs-bench: installing missing packages with %s\n", script)
	cmd := exec.Command(script, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w", script, err)
	}
	if need(b.cfg.lxcfs) {
		return fmt.Errorf("%s still not found after %s", b.cfg.lxcfs, script)
	}
	return nil
}

// The names below mark what a run creates, so the next run can remove what
// a killed one left behind.
const (
	tmpPrefix    = "lxcfs-bench."
	cgroupPrefix = "lxcfs-bench-"
)

// sweepLeftovers detaches mounts and removes cgroups left by a run that was
// killed before it could clean up (its readers died with it: they carry
// Pdeathsig). A run still alive is left alone.
func sweepLeftovers() {
	if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		for line := range strings.SplitSeq(string(mi), "\n") {
			f := strings.Fields(line)
			if len(f) > 4 && strings.HasPrefix(f[4], filepath.Join(os.TempDir(), tmpPrefix)) {
				fusefs.Unmount(f[4])
			}
		}
	}
	for _, ctrl := range benchControllers {
		dirs, _ := filepath.Glob(filepath.Join(cgroupRoot, ctrl, cgroupPrefix+"*"))
		for _, d := range dirs {
			pid, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), cgroupPrefix))
			if err != nil || unix.Kill(pid, 0) == nil {
				continue
			}
			subs, _ := os.ReadDir(d)
			for _, s := range subs {
				if s.IsDir() {
					os.Remove(filepath.Join(d, s.Name()))
				}
			}
			os.Remove(d)
		}
	}
}

// daemon is one FUSE server under test.
type daemon struct {
	name   string
	mp     string
	state  string // lxcfs-fused's --state-dir (its registration socket)
	cmd    *exec.Cmd
	log    string
	exited chan struct{}
	once   sync.Once
}

func (b *bench) startOurs(name string, extra ...string) (*daemon, error) {
	mp := filepath.Join(b.tmp, name)
	state := filepath.Join(b.tmp, name+".state")
	args := append([]string{"--mountpoint", mp, "--state-dir", state, "--log-level", "warn"}, b.cfg.fusedArgs...)
	d, err := b.startDaemon(name, mp, b.cfg.fused, append(args, extra...)...)
	if d != nil {
		d.state = state
	}
	return d, err
}

// ownRoot registers the container whose init is pid with d, as lxcfs-hook
// does, and returns the root of the container's own files there
// (MOUNT/.containers/ID), which the kernel may cache (--cache-ttl).
func (d *daemon) ownRoot(pid int) (string, error) {
	id, _, err := register.Register(filepath.Join(d.state, register.SocketName), pid, 10*time.Second)
	if err != nil {
		return "", fmt.Errorf("register reader %d with %s: %w", pid, d.name, err)
	}
	// The containers' own connection (lxcfs-fused --own-connection) is
	// attached once the first is served: read through it, as the hook does.
	var st struct {
		Own string `json:"own_mountpoint"`
	}
	if b, err := os.ReadFile(filepath.Join(d.state, "fused.json")); err == nil && json.Unmarshal(b, &st) == nil && st.Own != "" {
		for deadline := time.Now().Add(10 * time.Second); !mounted(st.Own); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				return "", fmt.Errorf("%s did not attach its own connection at %s within 10s", d.name, st.Own)
			}
		}
	}
	return filepath.Join(d.mp, ".containers", strconv.FormatUint(uint64(id), 10)), nil
}

func (b *bench) startLXCFS(name string, extra ...string) (*daemon, error) {
	mp := filepath.Join(b.tmp, name)
	// -f keeps it in the foreground, so the pid we measure is the server's.
	args := append([]string{"-f", "-p", filepath.Join(b.tmp, name+".pid")}, extra...)
	return b.startDaemon(name, mp, b.cfg.lxcfs, append(args, mp)...)
}

func (b *bench) startStatic() (*daemon, error) {
	mp := filepath.Join(b.tmp, "static")
	return b.startDaemon("static", mp, b.self, "static-server", "--mountpoint", mp)
}

func (b *bench) startDaemon(name, mp, bin string, args ...string) (*daemon, error) {
	if err := os.MkdirAll(mp, 0o755); err != nil {
		return nil, fmt.Errorf("create mountpoint: %w", err)
	}
	d := &daemon{name: name, mp: mp, log: filepath.Join(b.tmp, name+".log"), exited: make(chan struct{})}
	logf, err := os.Create(d.log)
	if err != nil {
		return nil, fmt.Errorf("create log: %w", err)
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { d.cmd.Wait(); logf.Close(); close(d.exited) }()
	b.atExit(d.stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if mounted(mp) {
			if _, err := os.ReadFile(filepath.Join(mp, "proc/meminfo")); err == nil {
				return d, nil
			}
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("%s (%s) exited before serving: %s", name, bin, tail(d.log))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not serve %s within 15s: %s", name, mp, tail(d.log))
		}
	}
}

func (d *daemon) pid() int { return d.cmd.Process.Pid }

// stop ends the daemon (TERM, then KILL) and makes sure its mount is gone.
func (d *daemon) stop() {
	d.once.Do(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
		if mounted(d.mp) {
			fusefs.Unmount(d.mp)
		}
	})
}

func mounted(path string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == path {
			return true
		}
	}
	return false
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], " | ")
}

// procStat is what the driver reads of a process in /proc/PID/stat.
type procStat struct {
	ppid int
	cpu  time.Duration // utime+stime+cutime+cstime
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	// Fields from 3 (state) on; utime is field 14.
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("unparsable /proc/%d/stat", pid)
	}
	var ticks uint64
	for _, field := range f[11:15] {
		v, err := strconv.ParseUint(field, 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("unparsable /proc/%d/stat", pid)
		}
		ticks += v
	}
	const userHZ = 100 // fixed in the kernel's user ABI
	return procStat{ppid: ppid, cpu: time.Duration(ticks) * time.Second / userHZ}, nil
}

// daemonTree is pid and its descendants: a daemon that serves from a worker
// child (lxcfs-fused's supervisor) is measured whole.
func daemonTree(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readProcStat(p); err == nil {
			children[st.ppid] = append(children[st.ppid], p)
		}
	}
	tree := []int{pid}
	for i := 0; i < len(tree); i++ {
		tree = append(tree, children[tree[i]]...)
	}
	return tree
}

// cpuTime is the CPU time a daemon (its whole process tree, threads and
// reaped children included) has used so far: utime+stime (+cutime+cstime)
// from /proc/PID/stat, in USER_HZ ticks.
func cpuTime(pid int) (time.Duration, error) {
	var total time.Duration
	for i, p := range daemonTree(pid) {
		st, err := readProcStat(p)
		if err != nil {
			if i == 0 {
				return 0, fmt.Errorf("daemon cpu time: %w", err)
			}
			continue // a child that just exited
		}
		total += st.cpu
	}
	return total, nil
}

// rss is a daemon's resident set size, its process tree's summed.
func rss(pid int) (uint64, error) {
	var total uint64
	for i, p := range daemonTree(pid) {
		v, err := procRSS(p)
		if err != nil {
			if i == 0 {
				return 0, err
			}
			continue
		}
		total += v
	}
	return total, nil
}

func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("daemon rss: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, err := strconv.ParseUint(f[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("daemon rss: no VmRSS in /proc/%d/status", pid)
}

// readerProc is a running reader: the init of its own pid namespace, in its
// own cgroups.
type readerProc struct {
	once  sync.Once
	cmd   *exec.Cmd
	in    io.WriteCloser
	out   *bufio.Reader
	lines chan lineOrErr
}

type lineOrErr struct {
	line string
	err  error
}

// spawnReader starts a reader in a new pid namespace and moves it into cg
// before it receives any job (it reads nothing until then).
func (b *bench) spawnReader(cg *cgroup) (*readerProc, error) {
	cmd := exec.Command(b.self, "reader")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "GOGC=400")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start reader: %w", err)
	}
	r := &readerProc{cmd: cmd, in: in, out: bufio.NewReader(out), lines: make(chan lineOrErr, 4)}
	b.atExit(r.kill)
	go func() {
		for {
			line, err := r.out.ReadString('\n')
			r.lines <- lineOrErr{strings.TrimSuffix(line, "\n"), err}
			if err != nil {
				return
			}
		}
	}()
	if err := cg.join(cmd.Process.Pid); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *readerProc) kill() {
	r.once.Do(func() {
		r.in.Close()
		r.cmd.Process.Kill()
		r.cmd.Wait()
	})
}

func (r *readerProc) send(j job) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if _, err := r.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("send job to reader %d: %w", r.cmd.Process.Pid, err)
	}
	return nil
}

func (r *readerProc) line(timeout time.Duration) (string, error) {
	select {
	case l := <-r.lines:
		if l.err != nil {
			return "", fmt.Errorf("reader %d: %w", r.cmd.Process.Pid, l.err)
		}
		return l.line, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("reader %d: no answer within %v (a daemon hung?)", r.cmd.Process.Pid, timeout)
	}
}

func (r *readerProc) awaitMeasuring(timeout time.Duration) error {
	l, err := r.line(timeout)
	if err == nil && l != "measuring" {
		err = fmt.Errorf("reader %d: got %q, want measuring", r.cmd.Process.Pid, l)
	}
	return err
}

func (r *readerProc) awaitResult(timeout time.Duration) (result, error) {
	var res result
	l, err := r.line(timeout)
	if err != nil {
		return res, err
	}
	if err := json.Unmarshal([]byte(l), &res); err != nil {
		return res, fmt.Errorf("reader %d: bad result %q: %w", r.cmd.Process.Pid, l, err)
	}
	return res, nil
}

func execOutput(bin string, args ...string) (string, error) {
	out, err := exec.Command(bin, args...).CombinedOutput()
	return string(out), err
}
