package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRuntimeWrapperRunc drives runc through lxcfs-runc directly, as an
// engine would: run and the create/start/exec/kill/delete lifecycle, with
// runc's global options before the command, and the opt-in rules.
func TestRuntimeWrapperRunc(t *testing.T) {
	root := startViews(t)
	before := mountPoints(t, "self")
	w := setupWrapper(t, root, nil)
	host := hostMemTotal(t)
	state := t.TempDir()
	seq := 0
	id := func() string { seq++; return fmt.Sprintf("lxcfs-wrap-%d-%d", os.Getpid(), seq) }
	t.Cleanup(func() {
		// Anything a failed subtest left behind.
		out, _, _ := runCmd(t, 10*time.Second, nil, "runc", "--root", state, "list", "-q")
		for _, c := range strings.Fields(out) {
			runCmd(t, 10*time.Second, nil, "runc", "--root", state, "delete", "--force", c)
		}
	})

	for _, tt := range []struct {
		name string
		argv func(bundle, id string) (string, []string) // binary and arguments
		env  []string                                   // the container's
		ann  map[string]string
		want string
	}{
		{
			name: "lxcfs-runc run",
			argv: func(b, id string) (string, []string) {
				return w.path, []string{"--root", state, "--log-format", "text", "run", "--bundle", b, id}
			},
			want: servedMemTotal,
		},
		{
			name: "bundle from the working directory",
			argv: func(b, id string) (string, []string) { return w.path, []string{"-root", state, "run", id} },
			want: servedMemTotal,
		},
		{
			name: "opted out by the environment",
			argv: func(b, id string) (string, []string) { return w.path, []string{"--root=" + state, "run", "-b", b, id} },
			env:  []string{"LXCFS_ENABLED=false"},
			want: host,
		},
		{
			name: "opt-in mode, not opted in",
			argv: func(b, id string) (string, []string) {
				return hookBin, []string{"runtime", "--mode", "opt-in", "--config", w.config, "--", "--root", state, "run", "-b", b, id}
			},
			want: host,
		},
		{
			name: "opt-in mode, annotation",
			argv: func(b, id string) (string, []string) {
				return hookBin, []string{"runtime", "--mode", "opt-in", "--runtime", "runc", "--config", w.config, "--", "--root", state, "run", "-b", b, id}
			},
			ann:  map[string]string{"io.lxcfs.enabled": "true"},
			want: servedMemTotal,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bundle := busyboxBundle(t, bundleOpts{script: viewScript, limits: true, annotations: tt.ann})
			if tt.env != nil {
				editConfig(t, bundle, func(c map[string]any) {
					p := c["process"].(map[string]any)
					env, _ := p["env"].([]any)
					for _, e := range tt.env {
						env = append(env, e)
					}
					p["env"] = env
				})
			}
			bin, args := tt.argv(bundle, id())
			cmd := commandIn(bundle, w.env(), bin, args...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", bin, args, err, stderrOf(err))
			}
			if got := field(string(out), "memtotal"); got != tt.want {
				t.Errorf("MemTotal = %q, want %q\n%s", got, tt.want, out)
			}
			hooks := countHooks(t, bundle)
			if want := map[bool]int{true: 1, false: 0}[tt.want == servedMemTotal]; hooks != want {
				t.Errorf("config.json has %d createRuntime hooks, want %d", hooks, want)
			}
		})
	}

	t.Run("lifecycle", func(t *testing.T) {
		bundle := busyboxBundle(t, bundleOpts{script: "sleep 60", limits: true})
		id := id()
		wr := func(args ...string) (string, string, error) {
			return runCmd(t, 30*time.Second, w.env(), w.path, append([]string{"--root", state, "--log", filepath.Join(state, "runc.log")}, args...)...)
		}
		// runc create leaves the container's stdio open: give it files, not pipes.
		stdio, err := os.Create(filepath.Join(t.TempDir(), "stdio"))
		if err != nil {
			t.Fatal(err)
		}
		defer stdio.Close()
		create := commandIn("/", w.env(), w.path, "--root", state, "create", "--bundle", bundle, "--pid-file", filepath.Join(state, id+".pid"), id)
		create.Stdout, create.Stderr = stdio, stdio
		if err := create.Run(); err != nil {
			b, _ := os.ReadFile(stdio.Name())
			t.Fatalf("create: %v\n%s", err, b)
		}
		for _, step := range [][]string{{"start", id}} {
			if _, stderr, err := wr(step...); err != nil {
				t.Fatalf("%v: %v\n%s", step, err, stderr)
			}
		}
		out, stderr, err := wr("state", id)
		var st struct{ Status string }
		if err != nil || json.Unmarshal([]byte(out), &st) != nil || st.Status != "running" {
			t.Fatalf("state through the wrapper: %v %q\n%s", err, out, stderr)
		}
		out, stderr, err = wr("exec", id, "grep", "MemTotal", "/proc/meminfo")
		if got := strings.Join(strings.Fields(out), " "); err != nil || got != servedMemTotal {
			t.Errorf("exec: %q, %v, want %q\n%s", got, err, servedMemTotal, stderr)
		}
		if _, stderr, err := wr("kill", id, "KILL"); err != nil {
			t.Errorf("kill: %v\n%s", err, stderr)
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			out, _, _ := wr("state", id)
			if strings.Contains(out, `"stopped"`) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, stderr, err := wr("delete", id); err != nil {
			t.Errorf("delete: %v\n%s", err, stderr)
		}
		if out, _, _ := wr("list", "-q"); strings.Contains(out, id) {
			t.Errorf("container still listed after delete: %q", out)
		}
	})

	t.Run("passthrough output", func(t *testing.T) {
		for _, args := range [][]string{{"--version"}, {"features"}, {"--root", state, "list", "--format", "json"}} {
			want, _, werr := runCmd(t, 10*time.Second, nil, "runc", args...)
			got, stderr, gerr := runCmd(t, 10*time.Second, w.env(), w.path, args...)
			if args[0] == "--version" {
				// runc's lines untouched, then one naming the wrapper's build.
				want += "lxcfs-runc: lxcfs-oci " + testVersion + " in front of " + runcPath(t) + "\n"
			}
			if (werr == nil) != (gerr == nil) || got != want {
				t.Errorf("%v through the wrapper: %q (%v, %s), runc: %q (%v)", args, got, gerr, stderr, want, werr)
			}
		}
		// What the wrapper adds to a call is a benchmark figure
		// (scripts/hook-latency.sh), not something a test can time.
	})

	t.Run("wrapper refuses to wrap itself", func(t *testing.T) {
		env := append(w.env(), "LXCFS_RUNTIME="+w.path)
		_, stderr, err := runCmd(t, 10*time.Second, env, w.path, "--version")
		if err == nil || !strings.Contains(stderr, "is this wrapper itself") {
			t.Errorf("err = %v, stderr %q; want a refusal", err, stderr)
		}
	})

	log := readHookLog(t, w.log)
	for _, want := range []string{"hook=lxcfs-runc", "hook added", "container not served: no hook added", "views mounted"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	sameMounts(t, before)
}

// countHooks counts the createRuntime hooks in a bundle's config.json.
// runcPath is the runc the wrapper runs when none is configured.
func runcPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("runc")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func countHooks(t *testing.T, bundle string) int {
	t.Helper()
	var c struct {
		Hooks struct {
			CreateRuntime []json.RawMessage `json:"createRuntime"`
		} `json:"hooks"`
	}
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return len(c.Hooks.CreateRuntime)
}
