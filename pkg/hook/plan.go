package hook

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// CPUOnline is the one sysfs file served, relative to the views root.
const CPUOnline = "sys/devices/system/cpu/online"

// DefaultRoot is where lxcfs-fused (and LXCFS) serve by default.
const DefaultRoot = "/var/lib/lxcfs"

// Mount is one bind of a served file over the container's own.
type Mount struct {
	// Source is the served file on the host, under the views root.
	Source string
	// Target is the path inside the container, absolute from its root
	// (e.g. /proc/meminfo); it is resolved inside the rootfs at mount time.
	Target string
}

// maxDepth bounds the walk of ROOT/proc: the views are at most two levels
// deep (proc/pressure/cpu), so anything deeper is not ours to serve.
const maxDepth = 3

// List returns the served files under root, as slash-separated paths relative
// to it: every regular file under ROOT/proc and ROOT/sys/devices/system/cpu/online.
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
	online := filepath.Join(root, filepath.FromSlash(CPUOnline))
	if mode, err := statCached(online); err == nil && mode.IsRegular() {
		entries = append(entries, CPUOnline)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("stat %s: %w", online, err)
	}
	return entries, nil
}

// Plan maps served entries (paths relative to the views root, as List
// returns them) to mounts over the same paths in the container. Entries
// outside proc/ and other than the CPU online file are dropped, as are paths
// that are not clean or climb out with "..": only what the views are meant
// to replace is ever covered. The result is sorted by target and has no
// duplicates.
func Plan(root string, entries ...string) []Mount {
	seen := make(map[string]bool)
	var mounts []Mount
	for _, e := range entries {
		e = strings.TrimPrefix(e, "/")
		if e == "" || path.Clean(e) != e || strings.HasPrefix(e, "../") || e == ".." {
			continue
		}
		if !strings.HasPrefix(e, "proc/") && e != CPUOnline {
			continue
		}
		if seen[e] {
			continue
		}
		seen[e] = true
		mounts = append(mounts, Mount{
			Source: filepath.Join(root, filepath.FromSlash(e)),
			Target: "/" + e,
		})
	}
	sort.Slice(mounts, func(i, j int) bool { return mounts[i].Target < mounts[j].Target })
	return mounts
}
