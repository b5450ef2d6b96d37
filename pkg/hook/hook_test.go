package hook

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParseState(t *testing.T) {
	tests := []struct {
		file    string
		want    *State
		wantErr string
	}{
		{file: "state-spec.json", want: &State{OCIVersion: "1.2.0", ID: "web-1", Status: "creating", Pid: 4242, Bundle: "/run/containers/web-1", Annotations: map[string]string{"io.lxcfs.enabled": "true"}}},
		{file: "state-crun.json", want: &State{OCIVersion: "1.0", ID: "crun-7", Status: "created", Pid: 31337, Bundle: "/var/lib/b/crun-7", Annotations: map[string]string{"io.kubernetes.lxcfs.enabled": "true"}}},
		{file: "state-unknown-fields.json", want: &State{OCIVersion: "1.3.0", ID: "u", Status: "creating", Pid: 7, Bundle: "/b"}},
		{file: "state-no-id.json", wantErr: `lacks "id"`},
		{file: "state-no-bundle.json", wantErr: `lacks "bundle"`},
		{file: "state-no-pid.json", wantErr: `has no "pid"`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseState(f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseStateBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"empty":      "",
		"not json":   "creating",
		"array":      "[1,2]",
		"both gone":  `{"pid": 3}`,
		"pid string": `{"id":"a","pid":"12","bundle":"/b"}`,
		"negative":   `{"id":"a","pid":-5,"bundle":"/b"}`,
		"oversized":  `{"id":"a","pid":1,"bundle":"/b","annotations":{"k":"` + strings.Repeat("x", MaxStateSize) + `"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if s, err := ParseState(strings.NewReader(in)); err == nil {
				t.Fatalf("got %+v, want an error", s)
			}
		})
	}
	_, err := ParseState(strings.NewReader(`{"pid": 3}`))
	if err == nil || !strings.Contains(err.Error(), `"id" and "bundle"`) {
		t.Errorf("err = %v, want both missing fields named", err)
	}
}

func TestLoadConfigAndRootfs(t *testing.T) {
	rel, err := LoadConfig("testdata/bundle-relative")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := RootfsPath("/run/b", rel), "/run/b/rootfs"; got != want {
		t.Errorf("relative root: got %q, want %q", got, want)
	}
	if rel.Annotations["io.lxcfs.enabled"] != "true" {
		t.Errorf("annotations not loaded: %v", rel.Annotations)
	}
	if rel.Process == nil || len(rel.Process.Env) != 2 || rel.Process.Env[1] != "LXCFS=1" {
		t.Errorf("process environment not loaded: %+v", rel.Process)
	}
	abs, err := LoadConfig("testdata/bundle-absolute")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := RootfsPath("/run/b", abs), "/srv/roots/c1"; got != want {
		t.Errorf("absolute root: got %q, want %q", got, want)
	}
	for _, tt := range []struct {
		spec *Config
		want string
	}{
		{nil, ""},
		{&Config{}, ""},
		{&Config{Root: &specs.Root{Path: "../x/./rootfs"}}, "/run/x/rootfs"},
		{&Config{Root: &specs.Root{Path: "/a/../b/"}}, "/b"},
	} {
		if got := RootfsPath("/run/b", tt.spec); got != tt.want {
			t.Errorf("RootfsPath(%+v) = %q, want %q", tt.spec, got, tt.want)
		}
	}
	if _, err := LoadConfig(t.TempDir()); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("missing config: err = %v", err)
	}
}

func TestLoadConfigRefusesOversized(t *testing.T) {
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	// Sparse: 50 MiB on paper, nothing on disk.
	if err := f.Truncate(50 << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, err = LoadConfig(dir)
	if err == nil || !strings.Contains(err.Error(), "allowed") {
		t.Fatalf("err = %v, want the size cap named", err)
	}
	if _, err := Inject(filepath.Join(dir, "config.json"), "/bin/lxcfs-hook", nil); err == nil {
		t.Fatal("Inject accepted a 50 MiB config")
	}
	// A FIFO would block a reader forever.
	if err := os.Remove(filepath.Join(dir, "config.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "config.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("/dev/zero config: err = %v", err)
	}
	// A FIFO blocks even the open of a reader that waits for a writer.
	if err := os.Remove(filepath.Join(dir, "config.json")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "config.json"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := LoadConfig(dir); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("FIFO config: err = %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("LoadConfig of a FIFO config.json still blocked after a minute")
	}
}

func TestDecide(t *testing.T) {
	on := map[string]string{AnnotationEnabled: "true"}
	tests := []struct {
		name        string
		ann         map[string]string
		mode        Mode
		failClosed  bool
		serve, req  bool
		reasonMatch string
	}{
		{"no annotations, opt-in", nil, ModeOptIn, false, false, false, "not opted in"},
		{"no annotations, always", nil, ModeAlways, false, true, false, "--always"},
		{"enabled", on, ModeOptIn, false, true, false, "io.lxcfs.enabled=true"},
		{"enabled TRUE", map[string]string{AnnotationEnabled: " TRUE "}, ModeOptIn, false, true, false, "io.lxcfs.enabled"},
		{"enabled 1", map[string]string{AnnotationEnabled: "1"}, ModeOptIn, false, true, false, ""},
		{"pouch", map[string]string{AnnotationPouchEnabled: "true"}, ModeOptIn, false, true, false, "io.kubernetes.lxcfs.enabled=true"},
		{"disabled beats always", map[string]string{AnnotationEnabled: "false"}, ModeAlways, true, false, false, "opts the container out"},
		{"pouch disabled beats always", map[string]string{AnnotationPouchEnabled: "false"}, ModeAlways, false, false, false, ""},
		{"ours wins over pouch", map[string]string{AnnotationEnabled: "false", AnnotationPouchEnabled: "true"}, ModeOptIn, false, false, false, ""},
		{"typo is absent, opt-in", map[string]string{AnnotationEnabled: "yes please"}, ModeOptIn, false, false, false, ""},
		{"typo is absent, always", map[string]string{AnnotationEnabled: "ture"}, ModeAlways, false, true, false, ""},
		{"other annotations", map[string]string{"io.lxcfs.enable": "true", "lxcfs.enabled": "true"}, ModeOptIn, false, false, false, ""},
		{"fail-closed flag", on, ModeOptIn, true, true, true, ""},
		{"required annotation", map[string]string{AnnotationEnabled: "true", AnnotationRequired: "true"}, ModeOptIn, false, true, true, ""},
		{"required=false cannot weaken the flag", map[string]string{AnnotationEnabled: "true", AnnotationRequired: "false"}, ModeOptIn, true, true, true, ""},
		{"required alone does not opt in", map[string]string{AnnotationRequired: "true"}, ModeOptIn, false, false, false, ""},
		{"required with always", map[string]string{AnnotationRequired: "true"}, ModeAlways, false, true, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decide(tt.ann, tt.mode, tt.failClosed)
			if d.Serve != tt.serve || d.Required != tt.req {
				t.Errorf("Decide = %+v, want serve=%v required=%v", d, tt.serve, tt.req)
			}
			if !strings.Contains(d.Reason, tt.reasonMatch) || d.Reason == "" {
				t.Errorf("reason %q, want it to contain %q", d.Reason, tt.reasonMatch)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	got := Plan("/var/lib/lxcfs",
		"proc/uptime", "proc/meminfo", "proc/cpuinfo", "proc/pressure/cpu",
		"sys/devices/system/cpu/online",
		"proc/meminfo",                   // duplicate
		"/proc/stat",                     // leading slash tolerated
		"sys/devices/system/cpu/offline", // not a served sysfs file
		"cgroup/memory/x",                // LXCFS's cgroupfs: not ours to bind
		"proc/../etc/passwd",             // not clean
		"../proc/meminfo",                // climbs out
		"proc/./swaps",                   // not clean
		"", "proc",
	)
	want := []Mount{
		{"/var/lib/lxcfs/proc/cpuinfo", "/proc/cpuinfo", false, false},
		{"/var/lib/lxcfs/proc/meminfo", "/proc/meminfo", false, false},
		{"/var/lib/lxcfs/proc/pressure/cpu", "/proc/pressure/cpu", false, true},
		{"/var/lib/lxcfs/proc/stat", "/proc/stat", false, false},
		{"/var/lib/lxcfs/proc/uptime", "/proc/uptime", false, false},
		{"/var/lib/lxcfs/sys/devices/system/cpu/online", "/sys/devices/system/cpu/online", false, false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Plan =\n%v\nwant\n%v", got, want)
	}
	// The CPU directory is bound whole, the online file inside it not again.
	got = Plan("/r", CPUOnline, "proc/meminfo", CPUDir, "sys/devices/system/cpu/cpu0")
	want = []Mount{
		{"/r/proc/meminfo", "/proc/meminfo", false, false},
		{"/r/sys/devices/system/cpu", "/sys/devices/system/cpu", true, false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Plan with the CPU directory =\n%v\nwant\n%v", got, want)
	}
	if got := Plan("/r"); len(got) != 0 {
		t.Errorf("Plan of nothing = %v", got)
	}
}

func TestList(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{
		"proc/meminfo", "proc/cpuinfo", "proc/pressure/io", "proc/pressure/cpu",
		"sys/devices/system/cpu/online", "sys/devices/system/cpu/possible",
		"proc/a/b/c/too-deep",
	} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "proc/link")); err != nil {
		t.Fatal(err)
	}
	got, err := List(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"proc/cpuinfo", "proc/meminfo", "proc/pressure/cpu", "proc/pressure/io", CPUDir}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
	// A daemon serving online alone (LXCFS, an older lxcfs-fused): the
	// directory would hide the container's cpuN entries, so online only.
	if err := os.Remove(filepath.Join(root, "sys/devices/system/cpu/possible")); err != nil {
		t.Fatal(err)
	}
	got, err = List(root)
	if err != nil {
		t.Fatal(err)
	}
	want[len(want)-1] = CPUOnline
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List without possible = %v, want %v", got, want)
	}
	// Nothing served at all is an empty list, not an error.
	if got, err := List(t.TempDir()); err != nil || len(got) != 0 {
		t.Errorf("List(empty) = %v, %v", got, err)
	}
}

// What the daemon tells the hook at registration (Entries of its names)
// plans the same mounts as listing the tree it serves: the hook may take
// either.
func TestEntriesAgreeWithList(t *testing.T) {
	full := []string{"proc/cpuinfo", "proc/diskstats", "proc/loadavg", "proc/meminfo", "proc/stat", "proc/swaps", "proc/uptime", "proc/vmstat",
		"sys/devices/system/cpu/online", "sys/devices/system/cpu/possible", "sys/devices/system/cpu/present", "sys/devices/system/cpu/offline",
		"proc/pressure/cpu", "proc/pressure/io", "proc/pressure/memory"}
	for _, tc := range []struct {
		name  string
		names []string
	}{
		{"lxcfs-fused", full},
		{"online alone", []string{"proc/meminfo", "proc/stat", "sys/devices/system/cpu/online"}},
		{"no CPU files", []string{"proc/meminfo", "proc/pressure/io"}},
		{"nothing", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range tc.names {
				p := filepath.Join(root, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			listed, err := List(root)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := Plan(root, Entries(tc.names)...), Plan(root, listed...); !reflect.DeepEqual(got, want) {
				t.Errorf("mounts from the daemon's names:\n%v\nfrom listing its tree:\n%v", got, want)
			}
		})
	}
}

func TestServingRefusesPlainDirectory(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "proc"), 0o755)
	os.WriteFile(filepath.Join(root, "proc/meminfo"), []byte("MemTotal: 1 kB\n"), 0o644)
	err := Serving(root)
	if err == nil || !strings.Contains(err.Error(), "not a FUSE mount") {
		t.Errorf("err = %v, want not a FUSE mount", err)
	}
	if err := Serving(filepath.Join(root, "missing")); err == nil {
		t.Error("missing root accepted")
	}
}

const hookPath = "/usr/local/bin/lxcfs-hook"

var hookArgs = []string{"lxcfs-hook", "--lxcfs-root", "/var/lib/lxcfs", "--always", "create-runtime"}

func copyFixture(t *testing.T, name string, mode os.FileMode) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func decode(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s is no longer JSON: %v", path, err)
	}
	return m
}

func TestInjectPreservesAndIsIdempotent(t *testing.T) {
	p := copyFixture(t, "config-unknown.json", 0o600)
	before := decode(t, p)

	changed, err := Inject(p, hookPath, hookArgs)
	if err != nil || !changed {
		t.Fatalf("first Inject = %v, %v", changed, err)
	}
	after := decode(t, p)
	// Everything but hooks.createRuntime is untouched, unknown keys included.
	for k, v := range before {
		if k == "hooks" {
			continue
		}
		if !reflect.DeepEqual(after[k], v) {
			t.Errorf("key %q changed: %v -> %v", k, v, after[k])
		}
	}
	bh, ah := before["hooks"].(map[string]any), after["hooks"].(map[string]any)
	for _, k := range []string{"prestart", "poststop"} {
		if !reflect.DeepEqual(ah[k], bh[k]) {
			t.Errorf("hooks.%s changed", k)
		}
	}
	cr := ah["createRuntime"].([]any)
	if len(cr) != 2 || !reflect.DeepEqual(cr[0], bh["createRuntime"].([]any)[0]) {
		t.Fatalf("createRuntime = %v, want the other hook kept first and ours appended", cr)
	}
	ours := cr[1].(map[string]any)
	if ours["path"] != hookPath || ours["timeout"] != float64(HookTimeout) || len(ours["args"].([]any)) != len(hookArgs) {
		t.Errorf("our entry = %v", ours)
	}
	// Key order survives: the vendor key still sits before hooks.
	data, _ := os.ReadFile(p)
	if bytes.Index(data, []byte("x-vendor-extension")) > bytes.Index(data, []byte(`"hooks"`)) {
		t.Errorf("key order changed:\n%s", data)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600 kept", fi.Mode().Perm())
	}

	changed, err = Inject(p, hookPath, hookArgs)
	if err != nil || changed {
		t.Fatalf("second Inject = %v, %v; want unchanged", changed, err)
	}
	again, _ := os.ReadFile(p)
	if !bytes.Equal(again, data) {
		t.Error("second Inject rewrote the file")
	}

	// New args replace our entry instead of adding a second one.
	changed, err = Inject(p, hookPath, []string{"lxcfs-hook", "create-runtime"})
	if err != nil || !changed {
		t.Fatalf("Inject with new args = %v, %v", changed, err)
	}
	cr = decode(t, p)["hooks"].(map[string]any)["createRuntime"].([]any)
	if len(cr) != 2 || len(cr[1].(map[string]any)["args"].([]any)) != 2 {
		t.Errorf("createRuntime after update = %v", cr)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestInjectNoHooksAndDuplicates(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.json")
	os.WriteFile(p, []byte(`{"ociVersion":"1.2.0","hooks":null}`), 0o644)
	if changed, err := Inject(p, hookPath, hookArgs); err != nil || !changed {
		t.Fatalf("Inject = %v, %v", changed, err)
	}
	if cr := decode(t, p)["hooks"].(map[string]any)["createRuntime"].([]any); len(cr) != 1 {
		t.Errorf("createRuntime = %v", cr)
	}
	dup := `{"hooks":{"createRuntime":[{"path":"` + hookPath + `","args":["a"]},{"path":"` + hookPath + `","args":["b"]}]}}`
	os.WriteFile(p, []byte(dup), 0o644)
	if changed, err := Inject(p, hookPath, hookArgs); err != nil || !changed {
		t.Fatalf("Inject = %v, %v", changed, err)
	}
	if cr := decode(t, p)["hooks"].(map[string]any)["createRuntime"].([]any); len(cr) != 1 {
		t.Errorf("duplicates kept: %v", cr)
	}
	for name, bad := range map[string]string{
		"not an object":  `[1]`,
		"hooks an array": `{"hooks":[]}`,
		"trailing":       `{} {}`,
		"truncated":      `{"a":`,
		"bad entry":      `{"hooks":{"createRuntime":[1]}}`,
	} {
		os.WriteFile(p, []byte(bad), 0o644)
		if _, err := Inject(p, hookPath, hookArgs); err == nil {
			t.Errorf("%s: Inject accepted %s", name, bad)
		}
		if got, _ := os.ReadFile(p); string(got) != bad {
			t.Errorf("%s: file changed on error", name)
		}
	}
	if _, err := Inject(p, "lxcfs-hook", hookArgs); err == nil {
		t.Error("relative hook path accepted")
	}
}
