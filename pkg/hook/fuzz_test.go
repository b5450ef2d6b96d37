package hook

import (
	"bytes"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"reflect"
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

// FuzzLoadConfig: any config.json loads or fails cleanly, and what the
// hook then decides holds its promises: a config it accepts round-trips
// through JSON unchanged (nothing is half-read), an annotation that opts out
// is never overridden, a container cannot weaken --fail-closed, and only an
// explicit opt-in is served when the hook is installed for every container.
func FuzzLoadConfig(f *testing.F) {
	seedFiles(f, "testdata/bundle-*/config.json")
	seedFiles(f, "testdata/config-*.json")
	f.Add([]byte(`{"root":{"path":"../../etc"}}`))
	f.Add([]byte(`{"annotations":{"io.lxcfs.enabled":"true"},"root":{"path":"/"}}`))
	f.Add([]byte(`{"annotations":{"io.lxcfs.enabled":"false","io.kubernetes.lxcfs.enabled":"true","io.lxcfs.required":"1"}}`))
	f.Add([]byte(`{"annotations":{"io.lxcfs.enabled":" TRUE ","io.lxcfs.required":"yes"}}`))
	f.Add([]byte(`{"annotations":{"io.lxcfs.enabled":"true","io.lxcfs.required":"false"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		bundle := t.TempDir()
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		spec, err := LoadConfig(bundle)
		if err != nil {
			return
		}
		again, err := json.Marshal(spec)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), again, 0o644); err != nil {
			t.Fatal(err)
		}
		spec2, err := LoadConfig(bundle)
		// JSON has no difference between an empty list or map and none.
		for _, c := range []*Config{spec, spec2} {
			if c == nil {
				continue
			}
			if len(c.Annotations) == 0 {
				c.Annotations = nil
			}
			if c.Process != nil && len(c.Process.Env) == 0 {
				c.Process.Env = nil
			}
		}
		if err != nil || !reflect.DeepEqual(spec, spec2) {
			t.Fatalf("accepted config does not round-trip: %+v -> %s -> %+v, %v", spec, again, spec2, err)
		}
		if root := RootfsPath(bundle, spec); root != "" && !filepath.IsAbs(root) {
			t.Fatalf("rootfs %q is not absolute", root)
		}

		optOut := false
		for _, k := range []string{AnnotationEnabled, AnnotationPouchEnabled} {
			if v, ok := boolAnnotation(spec.Annotations, k); ok {
				optOut = !v
				break
			}
		}
		for _, mode := range []Mode{ModeOptIn, ModeAlways} {
			for _, failClosed := range []bool{false, true} {
				d := Decide(spec.Annotations, mode, failClosed)
				switch {
				case optOut && d.Serve:
					t.Fatalf("mode %d serves a container whose annotations opt out: %+v", mode, d)
				case d.Required && !d.Serve:
					t.Fatalf("mode %d requires views for a container it does not serve: %+v", mode, d)
				case failClosed && d.Serve && !d.Required:
					t.Fatalf("annotations weakened --fail-closed: %+v", d)
				case d.Reason == "":
					t.Fatalf("decision without a reason: %+v", d)
				}
			}
		}
		if in, always := Decide(spec.Annotations, ModeOptIn, false), Decide(spec.Annotations, ModeAlways, false); in.Serve && !always.Serve {
			t.Fatalf("opted in, yet not served when the hook always applies: %+v / %+v", in, always)
		}
	})
}

// FuzzPlan: whatever entries the listing returns, every planned mount covers
// a clean path under /proc or /sys/devices/system/cpu in the container, and
// its source is the same path under the views root: nothing outside the
// views is ever bound, and nothing but what they replace is covered.
func FuzzPlan(f *testing.F) {
	for _, e := range []string{"proc/meminfo", CPUOnline, CPUDir, "sys/devices/system", "proc/../etc/passwd", "/proc/stat", "proc//cpuinfo", "etc/shadow", "proc/pressure/cpu", "..", "proc"} {
		f.Add(e, "proc/uptime")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		const root = "/var/lib/lxcfs"
		for _, m := range Plan(root, a, b, a) {
			if m.Target != path.Clean(m.Target) || !strings.HasPrefix(m.Target, "/") {
				t.Fatalf("target %q is not a clean absolute path", m.Target)
			}
			if !strings.HasPrefix(m.Target, "/proc/") && !strings.HasPrefix(m.Target, "/sys/devices/system/cpu/") && m.Target != "/"+CPUDir {
				t.Fatalf("target %q is outside what the views replace", m.Target)
			}
			if m.Dir != (m.Target == "/"+CPUDir) {
				t.Fatalf("target %q planned with Dir %v: only the CPU directory is one", m.Target, m.Dir)
			}
			for _, o := range Plan(root, a, b) {
				if m.Dir && o.Target == "/"+CPUOnline {
					t.Fatalf("online planned beside the CPU directory holding it")
				}
			}
			if m.Source != filepath.Join(root, m.Target) {
				t.Fatalf("source %q is not the target %q under the views root", m.Source, m.Target)
			}
		}
		if ms := Plan(root, a, a); len(ms) > 1 {
			t.Fatalf("one entry planned twice: %+v", ms)
		}
	})
}
