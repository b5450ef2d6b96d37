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
// from inside the container, even for a moment.
package remount

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
)

// DefaultStateDir is where records live: tmpfs, so a reboot (which ends
// every container) forgets them.
const DefaultStateDir = "/run/lxcfs-oci"

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
// of /proc/PID/stat. The line is parsed here rather than with
// prometheus/procfs, whose package initialisation alone cost the hook a
// quarter of a millisecond of every container start.
func StartTicks(pid int) (uint64, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err // *fs.PathError: names the file
	}
	v, err := parseStartTicks(b)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

// parseStartTicks takes field 22 from a /proc/PID/stat line. The command
// (field 2) is in parentheses and may itself hold spaces and parentheses, so
// fields are counted from the last ')'.
func parseStartTicks(b []byte) (uint64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no command field")
	}
	const startTime = 22 - 3 // index among the fields after the command
	f := strings.Fields(string(b[i+1:]))
	if len(f) <= startTime {
		return 0, fmt.Errorf("%d fields after the command, want at least %d", len(f), startTime+1)
	}
	v, err := strconv.ParseUint(f[startTime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("start time: %w", err)
	}
	return v, nil
}

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
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
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
// other roots are left alone.
func Run(stateDir, root string) ([]Outcome, []error) {
	records, errs := Load(stateDir)
	if abs, err := filepath.Abs(root); err == nil {
		root = abs
	}
	var out []Outcome
	for _, r := range records {
		if !servedFrom(r, root) {
			continue
		}
		o := Outcome{ID: r.ID}
		start, err := StartTicks(r.Pid)
		if err != nil || start != r.StartTicks {
			o.Gone = true
			if err := Remove(stateDir, r.ID); err != nil {
				errs = append(errs, err)
			}
			out = append(out, o)
			continue
		}
		o.Reattached, o.Alive, o.Err = Reattach(r)
		out = append(out, o)
	}
	return out, errs
}

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

// viewAttrs are the attributes of a view mount: read-only data.
const viewAttrs = unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC

// Reattach replaces every dead (or missing) view of r in its container.
func Reattach(r Record) (reattached, alive []string, err error) {
	// Clone each view in the host's namespace, where root is visible. The
	// clones are detached: reachable only through these fds.
	trees := make(map[string]int, len(r.Targets))
	defer func() {
		for _, fd := range trees {
			unix.Close(fd)
		}
	}()
	for _, t := range r.Targets {
		src := filepath.Join(r.Root, filepath.Clean("/"+t))
		fd, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
		if err != nil {
			return nil, nil, fmt.Errorf("clone view %s (is lxcfs-fused serving %s?): %w", src, r.Root, err)
		}
		trees[t] = fd
		attrs := uint64(viewAttrs)
		if hook.Writable(t) {
			attrs &^= unix.MOUNT_ATTR_RDONLY // takes PSI triggers
		}
		if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &unix.MountAttr{Attr_set: attrs}); err != nil {
			return nil, nil, fmt.Errorf("make view %s read-only: %w", src, err)
		}
	}
	type result struct {
		reattached, alive []string
		err               error
	}
	ch := make(chan result, 1)
	go func() {
		// Never unlocked: the thread joins the container's mount namespace
		// and must die with this goroutine.
		runtime.LockOSThread()
		a, b, err := attachInNamespace(r, trees)
		ch <- result{a, b, err}
	}()
	res := <-ch
	return res.reattached, res.alive, res.err
}

func attachInNamespace(r Record, trees map[string]int) (reattached, alive []string, err error) {
	nsPath := "/proc/" + strconv.Itoa(r.Pid) + "/ns/mnt"
	nsFd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", nsPath, err)
	}
	defer unix.Close(nsFd)
	var theirs, ours unix.Stat_t
	if err := unix.Fstat(nsFd, &theirs); err != nil {
		return nil, nil, fmt.Errorf("stat %s: %w", nsPath, err)
	}
	if err := unix.Stat("/proc/thread-self/ns/mnt", &ours); err != nil {
		return nil, nil, fmt.Errorf("stat own mount namespace: %w", err)
	}
	if theirs.Dev == ours.Dev && theirs.Ino == ours.Ino {
		return nil, nil, fmt.Errorf("process %d shares our mount namespace: not a container, refusing to mount over the host's files", r.Pid)
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return nil, nil, fmt.Errorf("unshare CLONE_FS: %w", err)
	}
	// Joining also moves this thread's root and cwd to the namespace's
	// root: the container's own / after its pivot_root.
	if err := unix.Setns(nsFd, unix.CLONE_NEWNS); err != nil {
		return nil, nil, fmt.Errorf("join mount namespace of process %d: %w", r.Pid, err)
	}
	for _, t := range r.Targets {
		target := filepath.Clean("/" + t)
		state, err := probe(target)
		if err != nil {
			return reattached, alive, err
		}
		switch state {
		case stateAbsent:
			continue
		case stateLive:
			alive = append(alive, target)
			continue
		case stateDead:
			// Dead mounts may be stacked (several connections lost);
			// peel them all.
			for range 8 {
				if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
					return reattached, alive, fmt.Errorf("remove dead view at %s: %w", target, err)
				}
				if s, _ := probe(target); s != stateDead {
					break
				}
			}
		}
		if err := unix.MoveMount(trees[t], "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
			return reattached, alive, fmt.Errorf("attach view at %s: %w", target, err)
		}
		reattached = append(reattached, target)
	}
	return reattached, alive, nil
}

type viewState int

const (
	stateAbsent  viewState = iota // no such file in the container
	stateDead                     // a view whose connection is gone
	stateLive                     // a view that answers
	stateMissing                  // the container's own file, no view on it
)

// FUSESuperMagic is the statfs type of FUSE file systems.
const fuseSuperMagic = 0x65735546

func probe(target string) (viewState, error) {
	var st unix.Stat_t
	err := unix.Lstat(target, &st)
	switch {
	case errors.Is(err, unix.ENOTCONN), errors.Is(err, unix.ECONNABORTED):
		return stateDead, nil
	case errors.Is(err, unix.ENOENT):
		return stateAbsent, nil
	case err != nil:
		return 0, fmt.Errorf("stat %s in the container: %w", target, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return 0, fmt.Errorf("%s is a symlink in the container: not following it", target)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(target, &sfs); err == nil && sfs.Type == fuseSuperMagic {
		return stateLive, nil
	}
	return stateMissing, nil
}
