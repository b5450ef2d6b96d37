package linux

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRetry: EINTR is retried until the call gives something else; other
// errors come back at once.
func TestRetry(t *testing.T) {
	for _, tc := range []struct {
		name  string
		errs  []error // what each call returns, in order
		calls int
		err   error
	}{
		{"success", []error{nil}, 1, nil},
		{"EINTR twice", []error{unix.EINTR, unix.EINTR, nil}, 3, nil},
		{"other error", []error{unix.EIO}, 1, unix.EIO},
		{"EINTR then error", []error{unix.EINTR, unix.ENOENT}, 2, unix.ENOENT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			_, err := retry(func() (int, error) {
				err := tc.errs[calls]
				calls++
				return 0, err
			})
			if calls != tc.calls || err != tc.err {
				t.Errorf("%d calls, err %v; want %d, %v", calls, err, tc.calls, tc.err)
			}
		})
	}
}

func TestOpenat2(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	root, err := Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(root)
	fd, err := Openat2(root, "f", &unix.OpenHow{Flags: unix.O_RDONLY, Resolve: unix.RESOLVE_BENEATH})
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if _, err := Openat2(root, "../x", &unix.OpenHow{Flags: unix.O_RDONLY, Resolve: unix.RESOLVE_BENEATH}); err != unix.EXDEV {
		t.Errorf("a path out of the root: %v, want EXDEV", err)
	}
}
