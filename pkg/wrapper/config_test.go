package wrapper

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseConfigFiles(t *testing.T) {
	tests := []struct {
		file    string
		want    Config
		wantErr string
	}{
		{file: "full.json", want: Config{Runtime: "/usr/bin/crun", Mode: ModeOptIn, LXCFSRoot: "/var/lib/lxcfs", FailClosed: true, HookPath: "/usr/bin/lxcfs-hook", LogFile: "/var/log/lxcfs-hook.log", StateDir: "/run/lxcfs-oci", Sysinfo: ptr(true)}},
		{file: "empty.json", want: Config{}},
		{file: "misspelt.json", wantErr: `unknown field "runtim"`},
		{file: "bad-mode.json", wantErr: `mode "always"`},
		{file: "relative-root.json", wantErr: `lxcfsRoot "lxcfs" is not an absolute path`},
		{file: "trailing.json", wantErr: "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := LoadConfigFile(filepath.Join("testdata", tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.file) {
					t.Errorf("err = %v, want the file named", err)
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

func TestLoadConfigFileMissing(t *testing.T) {
	c, err := LoadConfigFile(filepath.Join(t.TempDir(), "absent.json"))
	if err != nil || c != (Config{}) {
		t.Errorf("missing file: got %+v, %v; want an empty config", c, err)
	}
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, []byte(`{"runtime":"`+strings.Repeat("x", maxConfigFile)+`"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfigFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("oversized file: err = %v", err)
	}
}

func TestConfigFile(t *testing.T) {
	for v, want := range map[string]string{"": DefaultConfigFile, "none": "", "/x.json": "/x.json"} {
		got := ConfigFile(func(k string) string {
			if k == EnvConfig {
				return v
			}
			return ""
		})
		if got != want {
			t.Errorf("%s=%q: got %q, want %q", EnvConfig, v, got, want)
		}
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		layers  []Config
		want    Config
		wantErr string
	}{
		{"defaults", nil, Config{Runtime: "runc", Mode: ModeAll}, ""},
		{"flag over env over file", []Config{{Runtime: "flag"}, {Runtime: "env", Mode: ModeOptIn}, {Runtime: "file", Mode: ModeAll, LXCFSRoot: "/l"}}, Config{Runtime: "flag", Mode: ModeOptIn, LXCFSRoot: "/l"}, ""},
		{"name default under everything", []Config{{}, {}, {}, {Runtime: "crun"}}, Config{Runtime: "crun", Mode: ModeAll}, ""},
		{"fail closed from any layer", []Config{{}, {FailClosed: true}}, Config{Runtime: "runc", Mode: ModeAll, FailClosed: true}, ""},
		{"sysinfo unset: on", []Config{{}, {}}, Config{Runtime: "runc", Mode: ModeAll}, ""},
		{"sysinfo from the most important layer setting it", []Config{{}, {Sysinfo: ptr(false)}, {Sysinfo: ptr(true)}}, Config{Runtime: "runc", Mode: ModeAll, Sysinfo: ptr(false)}, ""},
		{"bad env mode", []Config{{Mode: "sometimes"}}, Config{}, `mode "sometimes"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Resolve(tt.layers...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestEnvAnnotations(t *testing.T) {
	got := EnvAnnotations([]string{"PATH=/bin", "LXCFS_ENABLED=false", "LXCFS_REQUIRED=true", "LXCFS_SYSINFO=true", "lxcfs_enabled=true", "BROKEN"})
	want := map[string]string{"io.lxcfs.enabled": "false", "io.lxcfs.required": "true", "io.lxcfs.sysinfo": "true"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestDecide(t *testing.T) {
	all := Config{Mode: ModeAll, LXCFSRoot: "/var/lib/lxcfs"}
	optIn := Config{Mode: ModeOptIn, LXCFSRoot: "/var/lib/lxcfs"}
	served := []string{"lxcfs-hook", "--lxcfs-root", "/var/lib/lxcfs", "--always", "create-runtime"}
	required := []string{"lxcfs-hook", "--lxcfs-root", "/var/lib/lxcfs", "--always", "--fail-closed", "create-runtime"}
	tests := []struct {
		name string
		c    Config
		ann  map[string]string
		env  []string
		want []string // nil: no hook
	}{
		{"all mode serves by default", all, nil, nil, served},
		{"all mode, annotation opts out", all, map[string]string{"io.lxcfs.enabled": "false"}, nil, nil},
		{"all mode, environment opts out", all, nil, []string{"LXCFS_ENABLED=false"}, nil},
		{"annotation wins over environment", all, map[string]string{"io.lxcfs.enabled": "true"}, []string{"LXCFS_ENABLED=false"}, served},
		{"opt-in mode, nothing", optIn, nil, []string{"PATH=/bin"}, nil},
		{"opt-in mode, annotation", optIn, map[string]string{"io.lxcfs.enabled": "true"}, nil, served},
		{"opt-in mode, pouch annotation", optIn, map[string]string{"io.kubernetes.lxcfs.enabled": "true"}, nil, served},
		{"opt-in mode, environment", optIn, nil, []string{"LXCFS_ENABLED=true"}, served},
		{"opt-in mode, not a boolean", optIn, nil, []string{"LXCFS_ENABLED=yes please"}, nil},
		{"required by environment", all, nil, []string{"LXCFS_REQUIRED=true"}, required},
		{"required by config", Config{Mode: ModeAll, LXCFSRoot: "/var/lib/lxcfs", FailClosed: true}, nil, nil, required},
		{"log file passed on", Config{Mode: ModeAll, LogFile: "/l.log"}, nil, nil, []string{"lxcfs-hook", "--always", "--log-file", "/l.log", "create-runtime"}},
		{"state dir passed on", Config{Mode: ModeAll, StateDir: "/run/x"}, nil, nil, []string{"lxcfs-hook", "--always", "--state-dir", "/run/x", "create-runtime"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Decide(tt.c, tt.ann, tt.env)
			if p.Sysinfo != p.Inject {
				t.Errorf("sysinfo %v for a container served %v: want it by default for every served one", p.Sysinfo, p.Inject)
			}
			if p.Inject != (tt.want != nil) || !reflect.DeepEqual(p.HookArgs, tt.want) {
				t.Errorf("got %+v, want args %q", p, tt.want)
			}
			if p.Reason == "" {
				t.Error("no reason given")
			}
		})
	}
}

func ptr(b bool) *bool { return &b }

func TestDecideSysinfo(t *testing.T) {
	on := Config{Mode: ModeAll} // the default
	off := Config{Mode: ModeAll, Sysinfo: ptr(false)}
	tests := []struct {
		name string
		c    Config
		ann  map[string]string
		env  []string
		want bool
	}{
		{"setting on", on, nil, nil, true},
		{"setting on explicitly", Config{Mode: ModeAll, Sysinfo: ptr(true)}, nil, nil, true},
		{"setting on, annotation opts out", on, map[string]string{"io.lxcfs.sysinfo": "false"}, nil, false},
		{"setting on, environment opts out", on, nil, []string{"LXCFS_SYSINFO=false"}, false},
		{"setting off", off, nil, nil, false},
		{"setting off, annotation opts in", off, map[string]string{"io.lxcfs.sysinfo": "true"}, nil, true},
		{"setting off, environment opts in", off, nil, []string{"LXCFS_SYSINFO=true"}, true},
		{"not a boolean", off, map[string]string{"io.lxcfs.sysinfo": "please"}, nil, false},
		{"container not served", on, map[string]string{"io.lxcfs.enabled": "false", "io.lxcfs.sysinfo": "true"}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.c, tt.ann, tt.env).Sysinfo; got != tt.want {
				t.Errorf("Sysinfo = %v, want %v", got, tt.want)
			}
		})
	}
}
