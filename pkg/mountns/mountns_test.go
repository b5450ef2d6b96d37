package mountns

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
)

// FuzzOpenInRoot: however a container lays out its rootfs with symlinks
// (absolute, relative, climbing with ".."), a path the hook opens in it
// resolves to a file inside the rootfs or fails; it never reaches the host.
func FuzzOpenInRoot(f *testing.F) {
	f.Add("..", "/a")
	f.Add("../../../etc", "/a/passwd")
	f.Add("/", "d/b/..")
	f.Add("/proc/self/root", "/a/etc")
	f.Add("d/../../..", "a")
	f.Fuzz(func(t *testing.T, link, p string) {
		if link == "" || strings.ContainsRune(link, 0) || strings.ContainsRune(p, 0) {
			return
		}
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "d/e"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"a", "d/b"} {
			if err := os.Symlink(link, filepath.Join(root, name)); err != nil {
				return // a name the file system refuses, e.g. too long
			}
		}
		rootF, err := os.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		defer rootF.Close()
		got, err := openInRoot(int(rootF.Fd()), p)
		if err != nil {
			return
		}
		defer unix.Close(got)
		where, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(got))
		if err != nil {
			t.Fatal(err)
		}
		if where != root && !strings.HasPrefix(where, root+"/") {
			t.Fatalf("symlink %q, path %q: opened %s, outside the rootfs %s", link, p, where, root)
		}
	})
}

// The sources are prepared side by side: one that fails (gone from the
// daemon, or of the wrong type) fails the whole preparation with its own
// name, and the clones already made of the others are closed, not leaked
// into the hook's or the daemon's (remount) fd table.
func TestPrepareFailsWholeAndKeepsNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cloning a mount (open_tree) needs root")
	}
	dir := t.TempDir()
	var mounts []hook.Mount
	for i := range 12 {
		p := filepath.Join(dir, "view"+strconv.Itoa(i))
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		mounts = append(mounts, hook.Mount{Source: p, Target: "/proc/view" + strconv.Itoa(i)})
	}
	ok, err := prepare(mounts)
	if err != nil {
		t.Fatalf("prepare of 12 files: %v", err)
	}
	for i, s := range ok {
		if s.Source != mounts[i].Source {
			t.Errorf("source %d is %s, want %s: the order must stay the plan's", i, s.Source, mounts[i].Source)
		}
	}
	ok.close()

	before := openFDs(t)
	for _, bad := range []hook.Mount{
		{Source: filepath.Join(dir, "absent"), Target: "/proc/absent"},
		{Source: dir, Target: "/proc/dir"}, // a directory where a file is planned
	} {
		withBad := append(append(append([]hook.Mount{}, mounts[:6]...), bad), mounts[6:]...)
		srcs, err := prepare(withBad)
		if err == nil {
			srcs.close()
			t.Fatalf("prepare with %s succeeded", bad.Source)
		}
		if !strings.Contains(err.Error(), bad.Source) {
			t.Errorf("error %q does not name the failing source %s", err, bad.Source)
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("%d fds open after failed preparations, %d before: clones leaked", after, before)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
