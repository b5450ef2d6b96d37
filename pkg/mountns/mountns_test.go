package mountns

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
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
		got, err := openInRoot(rootF, p)
		if err != nil {
			return
		}
		defer got.Close()
		where, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(got.Fd())))
		if err != nil {
			t.Fatal(err)
		}
		if where != root && !strings.HasPrefix(where, root+"/") {
			t.Fatalf("symlink %q, path %q: opened %s, outside the rootfs %s", link, p, where, root)
		}
	})
}
