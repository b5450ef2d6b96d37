package hook

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func seedFiles(f *testing.F, glob string) {
	f.Helper()
	paths, _ := filepath.Glob(glob)
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
}

// FuzzParseState: any bytes on stdin give a usable state or an error, never
// a panic, and a returned state always has what the hook relies on.
func FuzzParseState(f *testing.F) {
	seedFiles(f, "testdata/state-*.json")
	f.Add([]byte(`{"id":"x","pid":-1,"bundle":"/b"}`))
	f.Add([]byte(`{"id":"x","pid":1e30,"bundle":"/b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseState(bytes.NewReader(b))
		if err != nil {
			return
		}
		if s.ID == "" || s.Pid <= 0 || s.Bundle == "" {
			t.Fatalf("accepted a state without id, pid or bundle: %+v", s)
		}
	})
}

// FuzzLoadConfig: any config.json loads or fails cleanly; the rootfs path
// derived from it stays inside the bundle when relative.
func FuzzLoadConfig(f *testing.F) {
	seedFiles(f, "testdata/bundle-*/config.json")
	seedFiles(f, "testdata/config-*.json")
	f.Add([]byte(`{"root":{"path":"../../etc"}}`))
	f.Add([]byte(`{"annotations":{"io.lxcfs.enabled":"true"},"root":{"path":"/"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bundle := t.TempDir()
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		spec, err := LoadConfig(bundle)
		if err != nil {
			return
		}
		root := RootfsPath(bundle, spec)
		if spec.Root != nil && spec.Root.Path != "" && !filepath.IsAbs(spec.Root.Path) && root != "" &&
			!strings.HasPrefix(root, bundle) && !strings.Contains(spec.Root.Path, "..") {
			t.Fatalf("relative root %q resolved outside the bundle: %q", spec.Root.Path, root)
		}
		Decide(spec.Annotations, ModeOptIn, false)
		Decide(spec.Annotations, ModeAlways, true)
	})
}
