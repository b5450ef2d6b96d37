// Package remount re-attaches the views in running containers after the
// FUSE connection behind them was lost (the daemon was stopped, or killed
// with its supervisor): their bind mounts then answer "transport endpoint is
// not connected" until replaced.
//
// The hook records every container it served; Run walks the records, drops
// those of containers that are gone, and in each live container replaces
// dead view mounts with fresh ones. The fresh mounts are cloned from the
// daemon's files in the host's namespace (open_tree) and moved into the
// container's namespace (move_mount), so no host directory is ever reachable
// from inside the container, even for a moment: the hook's own mount path,
// pkg/mountns. A container gets a time limit, so one whose namespace stalls
// (a file system of its own that never answers) does not hold up the rest.
package remount

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/lxcfs-oci/lxcfs-oci/internal/linux"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/edit"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/mountns"
)

// DefaultTimeout is how long re-attaching one container's views may take.
// It is spent only on a container whose namespace does not answer: a
// healthy one takes milliseconds.
const DefaultTimeout = 10 * time.Second

// DefaultStateDir is where records live: tmpfs, so a reboot (which ends
// every container) forgets them.
const DefaultStateDir = hookcmd.DefaultStateDir

// Record is what the hook remembers of a served container.
type Record struct {
	ID         string   `json:"id"`
	Pid        int      `json:"pid"`         // host pid of the container's init
	StartTicks uint64   `json:"start_ticks"` // its start time, to tell a recycled pid
	Root       string   `json:"lxcfs_root"`  // where the views were served from
	Targets    []string `json:"targets"`     // paths in the container, e.g. /proc/meminfo
}

func recordDir(stateDir string) string { return filepath.Join(stateDir, "containers") }

func recordPath(stateDir, id string) (string, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/\x00") {
		return "", fmt.Errorf("container id %q cannot name a record file", id)
	}
	return filepath.Join(recordDir(stateDir), id+".json"), nil
}

// StartTicks reads a process's start time (clock ticks after boot), field 22
// of /proc/PID/stat.
func StartTicks(pid int) (uint64, error) { return linux.StartTicks("/proc", pid) }

// Save writes r atomically.
func Save(stateDir string, r Record) error {
	path, err := recordPath(stateDir, r.ID)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return edit.WriteAtomic(path, b, 0o600)
}

// Load reads every record. Unreadable ones are returned as errors beside the
// good ones, never stopping the walk.
func Load(stateDir string) ([]Record, []error) {
	entries, err := os.ReadDir(recordDir(stateDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("read %s: %w", recordDir(stateDir), err)}
	}
	var out []Record
	var errs []error
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(recordDir(stateDir), e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", path, err))
			continue
		}
		var r Record
		if err := json.Unmarshal(b, &r); err != nil || r.Pid <= 0 {
			errs = append(errs, fmt.Errorf("parse %s: not a container record (%v); removing it", path, err))
			os.Remove(path)
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, errs
}

// Remove forgets a container.
func Remove(stateDir, id string) error {
	path, err := recordPath(stateDir, id)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", path, err)
	}
	return nil
}

// Outcome is what Run did for one container.
type Outcome struct {
	ID         string
	Gone       bool     // the container no longer runs; its record was dropped
	Reattached []string // targets given a fresh view
	Alive      []string // targets whose view still answered
	Err        error
}

// Run re-attaches dead views served from root (the shared files, or a
// registered container's own below root/.containers) in every recorded
// container, and drops the records of containers that are gone. Records of
// other roots are left alone. Each container gets at most timeout. Once
// ctx is done no further container is started (the daemon is stopping:
// its worker must outlive every request of ours to its mount).
func Run(ctx context.Context, stateDir, root string, timeout time.Duration) ([]Outcome, []error) {
	records, errs := Load(stateDir)
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	var out []Outcome
	var live []Record
	for _, r := range records {
		if !servedFrom(r, root) {
			continue
		}
		start, err := StartTicks(r.Pid)
		if err != nil || start != r.StartTicks {
			if err := Remove(stateDir, r.ID); err != nil {
				errs = append(errs, err)
			}
			out = append(out, Outcome{ID: r.ID, Gone: true})
			continue
		}
		live = append(live, r)
	}
	// A few containers at a time: one that stalls holds up only its own
	// slot until its time limit, not every container after it.
	done := make([]Outcome, len(live))
	slots := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, r := range live {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			done[i] = Outcome{ID: r.ID, Err: fmt.Errorf("not re-attached: %w", ctx.Err())}
			continue
		}
		if ctx.Err() != nil {
			<-slots
			done[i] = Outcome{ID: r.ID, Err: fmt.Errorf("not re-attached: %w", ctx.Err())}
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			o := Outcome{ID: r.ID}
			o.Reattached, o.Alive, o.Err = Reattach(r, timeout)
			done[i] = o
		}()
	}
	wg.Wait()
	return append(out, done...), errs
}

// parallel is how many containers Run handles at once.
const parallel = 4

// servedFrom reports whether r's views are served from root: the shared
// files, or a registered container's own below root/.containers.
func servedFrom(r Record, root string) bool {
	rr := filepath.Clean(r.Root)
	return rr == root || strings.HasPrefix(rr, root+"/.containers/")
}

// CountLive counts the recorded containers served from root that still run:
// the containers a daemon serving root gives views to.
func CountLive(stateDir, root string) (int, []error) {
	records, errs := Load(stateDir)
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	n := 0
	for _, r := range records {
		if !servedFrom(r, root) {
			continue
		}
		if start, err := StartTicks(r.Pid); err == nil && start == r.StartTicks {
			n++
		}
	}
	return n, errs
}

// Reattach replaces every dead (or missing) view of r in its container,
// through the hook's own mount path (mountns.Attach, with "/" as the root:
// the container has pivoted into it). timeout bounds the work in the
// container's namespace.
func Reattach(r Record, timeout time.Duration) (reattached, alive []string, err error) {
	mounts := make([]hook.Mount, 0, len(r.Targets))
	for _, t := range r.Targets {
		target := filepath.Clean("/" + t)
		src := filepath.Join(r.Root, target)
		st, err := os.Stat(src)
		if err != nil {
			return nil, nil, fmt.Errorf("view %s (is lxcfs-fused serving %s?): %w", src, r.Root, err)
		}
		mounts = append(mounts, hook.Mount{Source: src, Target: target, Dir: st.IsDir(), Writable: hook.Writable(target)})
	}
	res, err := mountns.Attach(r.Pid, "/", mounts, timeout)
	for _, m := range res.Mounted {
		reattached = append(reattached, m.Target)
	}
	for _, s := range res.Skipped {
		if s.Live {
			alive = append(alive, s.Target)
		}
	}
	return reattached, alive, err
}
