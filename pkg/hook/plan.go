package hook

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hookcmd"
)

// CPUOnline is the sysfs file bound alone where the daemon serves no CPU
// directory to bind (LXCFS, older lxcfs-fused), relative to the views root.
const CPUOnline = "sys/devices/system/cpu/online"

// CPUDir is the sysfs directory bound whole where the daemon passes it
// through, relative to the views root: its online, possible, present and
// offline files and its cpuN directories follow the container's CPUs.
const CPUDir = "sys/devices/system/cpu"

// cpuDirMarker is a file only a daemon passing CPUDir through serves: a
// daemon serving online alone has nothing else in the directory, and
// binding that would hide the container's cpuN directories.
const cpuDirMarker = CPUDir + "/possible"

// DefaultRoot is where lxcfs-fused (and LXCFS) serve by default.
const DefaultRoot = hookcmd.DefaultRoot

// Mount is one bind of a served file over the container's own.
type Mount struct {
	// Source is the served file on the host, under the views root.
	Source string
	// Target is the path inside the container, absolute from its root
	// (e.g. /proc/meminfo); it is resolved inside the rootfs at mount time.
	Target string
	// Dir is set for a directory view (CPUDir); the others are files.
	Dir bool
	// Writable is set for a view that takes writes (see Writable); the
	// others are mounted read-only.
	Writable bool
}

// Writable reports whether the view at target (as in Mount.Target, with or
// without the leading slash) is mounted writable: the pressure files, where
// a program registers a PSI trigger by writing to the file.
func Writable(target string) bool {
	return strings.HasPrefix(strings.TrimPrefix(target, "/"), "proc/pressure/")
}

// maxDepth bounds the walk of ROOT/proc: the views are at most two levels
// deep (proc/pressure/cpu), so anything deeper is not ours to serve.
const maxDepth = 3

// List returns the served files under root, as slash-separated paths relative
// to it: every regular file under ROOT/proc, and ROOT/sys/devices/system/cpu
// where the daemon passes that directory through (else its online file).
// It only lists; Plan decides what each maps to.
func List(root string) ([]string, error) {
	var entries []string
	procDir := filepath.Join(root, "proc")
	err := filepath.WalkDir(procDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if strings.Count(rel, string(filepath.Separator)) >= maxDepth {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() {
			entries = append(entries, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("list served files under %s: %w", procDir, err)
	}
	marker := filepath.Join(root, filepath.FromSlash(cpuDirMarker))
	if mode, err := statCached(marker); err == nil && mode.IsRegular() {
		return append(entries, CPUDir), nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stat %s: %w", marker, err)
	}
	online := filepath.Join(root, filepath.FromSlash(CPUOnline))
	if mode, err := statCached(online); err == nil && mode.IsRegular() {
		entries = append(entries, CPUOnline)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stat %s: %w", online, err)
	}
	return entries, nil
}

// Entries is List's answer computed from the names a daemon serves (paths
// relative to its root, files only, as lxcfs-fused lists them): what the
// daemon tells the hook at registration, so the hook need not list. The
// CPU directory stands for the files in it when the daemon passes it
// through (serves possible); Plan drops what is not a view.
func Entries(names []string) []string {
	var entries []string
	cpuDir := slices.Contains(names, cpuDirMarker)
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, "proc/"):
			entries = append(entries, n)
		case n == CPUOnline && !cpuDir:
			entries = append(entries, n)
		}
	}
	if cpuDir {
		entries = append(entries, CPUDir)
	}
	return entries
}

// Plan maps served entries (paths relative to the views root, as List
// returns them) to mounts over the same paths in the container. Entries
// outside proc/ and other than the CPU directory or online file are
// dropped (online too when the directory is bound: it is inside), as are paths
// that are not clean or climb out with "..": only what the views are meant
// to replace is ever covered. The result is sorted by target and has no
// duplicates.
func Plan(root string, entries ...string) []Mount {
	seen := make(map[string]bool)
	for _, e := range entries {
		if strings.TrimPrefix(e, "/") == CPUDir {
			seen[CPUOnline] = true
		}
	}
	var mounts []Mount
	for _, e := range entries {
		e = strings.TrimPrefix(e, "/")
		if e == "" || path.Clean(e) != e || strings.HasPrefix(e, "../") || e == ".." {
			continue
		}
		if !strings.HasPrefix(e, "proc/") && e != CPUOnline && e != CPUDir {
			continue
		}
		if seen[e] {
			continue
		}
		seen[e] = true
		mounts = append(mounts, Mount{
			Source:   filepath.Join(root, filepath.FromSlash(e)),
			Target:   "/" + e,
			Dir:      e == CPUDir,
			Writable: Writable(e),
		})
	}
	sort.Slice(mounts, func(i, j int) bool { return mounts[i].Target < mounts[j].Target })
	return mounts
}
