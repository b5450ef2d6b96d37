package hook

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/seccomp/*.want.json from the current output")

const testListener = "/run/lxcfs-oci/sysinfo.sock"

// TestSysinfoNotify: each fixture's config either becomes its .want.json
// (one rule added, the rest of the profile and the file kept) or, where
// the profile decides sysinfo itself, is left alone with a reason.
func TestSysinfoNotify(t *testing.T) {
	tests := []struct {
		fixture    string
		wantChange bool
		reason     string
	}{
		{"no-linux", true, "minimal"},
		{"no-seccomp", true, "minimal"},
		{"docker-like", true, "added"},
		{"allow-only-sysinfo", true, "added"},
		{"allow-default", true, "added"},
		{"denied-by-default", false, "default action SCMP_ACT_ERRNO"},
		{"sysinfo-errno", false, "decides sysinfo itself (SCMP_ACT_ERRNO)"},
		{"sysinfo-args", false, "decides sysinfo itself"},
		{"other-listener", false, "already has a listener (/run/other-agent.sock)"},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata/seccomp", tt.fixture+".json"))
			if err != nil {
				t.Fatal(err)
			}
			out, changed, reason, err := SysinfoNotify(in, testListener)
			if err != nil {
				t.Fatal(err)
			}
			if changed != tt.wantChange || !strings.Contains(reason, tt.reason) {
				t.Fatalf("changed %v, reason %q; want %v, %q", changed, reason, tt.wantChange, tt.reason)
			}
			if !changed {
				if string(out) != string(in) {
					t.Errorf("unchanged config rewritten")
				}
				return
			}
			golden := filepath.Join("testdata/seccomp", tt.fixture+".want.json")
			if *updateGolden {
				os.WriteFile(golden, out, 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != string(want) {
				t.Errorf("got\n%s\nwant\n%s", out, want)
			}
			checkOneNotifyRule(t, out)
			// Idempotent: a second pass changes nothing.
			again, changed, reason, err := SysinfoNotify(out, testListener)
			if err != nil || changed || string(again) != string(out) {
				t.Errorf("second pass: changed %v (%s), %v", changed, reason, err)
			}
		})
	}
}

// checkOneNotifyRule: exactly one rule names sysinfo, it notifies, and the
// listener is ours.
func checkOneNotifyRule(t *testing.T, config []byte) {
	t.Helper()
	var c struct {
		Linux struct {
			Seccomp struct {
				ListenerPath string `json:"listenerPath"`
				Syscalls     []struct {
					Names  []string `json:"names"`
					Action string   `json:"action"`
				} `json:"syscalls"`
			} `json:"seccomp"`
		} `json:"linux"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		t.Fatal(err)
	}
	if c.Linux.Seccomp.ListenerPath != testListener {
		t.Errorf("listenerPath %q", c.Linux.Seccomp.ListenerPath)
	}
	n := 0
	for _, r := range c.Linux.Seccomp.Syscalls {
		if slices.Contains(r.Names, "sysinfo") {
			n++
			if r.Action != "SCMP_ACT_NOTIFY" || len(r.Names) != 1 {
				t.Errorf("sysinfo rule %+v", r)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d rules name sysinfo, want 1", n)
	}
}

func TestInjectSysinfoKeepsMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "config.json")
	in, _ := os.ReadFile("testdata/seccomp/docker-like.json")
	if err := os.WriteFile(p, in, 0o640); err != nil {
		t.Fatal(err)
	}
	changed, _, err := InjectSysinfo(p, testListener)
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, %v; want 0640", fi.Mode(), err)
	}
	if _, _, err := InjectSysinfo(filepath.Join(dir, "absent.json"), testListener); err == nil {
		t.Error("missing config: no error")
	}
	os.WriteFile(p, []byte("[1]"), 0o644)
	if _, _, err := InjectSysinfo(p, testListener); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("not an object: err %v, want one naming the file", err)
	}
}

// FuzzSysinfoNotify: whatever config.json holds, the edit never panics; a
// changed config parses, sends sysinfo to the listener by exactly one rule,
// and a second pass leaves it alone.
func FuzzSysinfoNotify(f *testing.F) {
	fixtures, _ := filepath.Glob("testdata/seccomp/*.json")
	for _, p := range fixtures {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, config []byte) {
		out, changed, _, err := SysinfoNotify(config, testListener)
		if err != nil || !changed {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid output:\n%s", out)
		}
		checkOneNotifyRule(t, out)
		if _, again, reason, err := SysinfoNotify(out, testListener); err != nil || again {
			t.Fatalf("second pass: changed %v (%s), %v", again, reason, err)
		}
	})
}
