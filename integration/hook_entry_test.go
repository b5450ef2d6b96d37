package integration

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHookEntryPoints runs every entry point of the lxcfs-hook command from
// the built binaries: lxcfs-hook has the daemon run create-runtime and
// hands every other command line to lxcfs-hook-cli beside it, lxcfs-runc is
// the runtime wrapper,
// and whatever writes the hook's path into a config names lxcfs-hook, not
// lxcfs-hook-cli, even when lxcfs-hook-cli is run directly.
func TestHookEntryPoints(t *testing.T) {
	requireRoot(t)
	run := func(t *testing.T, bin string, stdin string, env []string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("%s %v: %v", bin, args, err)
		}
		return string(out), cmd.ProcessState.ExitCode()
	}
	mustRun := func(t *testing.T, bin string, args ...string) string {
		t.Helper()
		out, code := run(t, bin, "", nil, args...)
		if code != 0 {
			t.Fatalf("%s %v: exit %d\n%s", filepath.Base(bin), args, code, out)
		}
		return out
	}

	t.Run("version", func(t *testing.T) {
		for _, bin := range []string{hookBin, hookCLIBin} {
			if out := mustRun(t, bin, "--version"); !strings.Contains(out, testVersion) {
				t.Errorf("%s --version: %q lacks %s", filepath.Base(bin), out, testVersion)
			}
		}
	})
	t.Run("help", func(t *testing.T) {
		out := mustRun(t, hookBin, "--help")
		for _, want := range []string{"lxcfs-hook", "create-runtime", "inject", "configure", "remount", "runtime"} {
			if !strings.Contains(out, want) {
				t.Errorf("lxcfs-hook --help lacks %q:\n%s", want, out)
			}
		}
		// A hook command line the hook's own parser leaves alone.
		if out := mustRun(t, hookBin, "create-runtime", "--help"); !strings.Contains(out, "--fail-closed") {
			t.Errorf("lxcfs-hook create-runtime --help lacks --fail-closed:\n%s", out)
		}
	})
	t.Run("hook", func(t *testing.T) {
		bundle := t.TempDir()
		if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion": "1.0.2", "root": {"path": "rootfs"}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		state := `{"ociVersion": "1.0.2", "id": "entry", "status": "creating", "pid": 1, "bundle": "` + bundle + `"}`
		// Not opted in: the hook decides and exits 0 without touching
		// pid 1. lxcfs-hook-cli's create-runtime does the same.
		for _, bin := range []string{hookBin, hookCLIBin} {
			dir := t.TempDir()
			logFile := filepath.Join(dir, "hook.log")
			out, code := run(t, bin, state, nil, "--log-file", logFile, "create-runtime", "--state-dir", dir)
			if code != 0 {
				t.Fatalf("%s create-runtime: exit %d\n%s", filepath.Base(bin), code, out)
			}
			if log := readTrim(t, logFile); !strings.Contains(log, "container not served") || !strings.Contains(log, "container=entry") {
				t.Errorf("%s create-runtime logged:\n%s", filepath.Base(bin), log)
			}
		}
		// A bad --log-level is the exit status 2 and message urfave/cli
		// gave before the hook parsed its own command line.
		out, code := run(t, hookBin, state, nil, "--log-file", "-", "--log-level", "loud", "create-runtime", "--state-dir", t.TempDir())
		if code != 2 || !strings.Contains(out, "--log-level") {
			t.Errorf("lxcfs-hook --log-level loud: exit %d, want 2\n%s", code, out)
		}
	})
	t.Run("configure and inject name lxcfs-hook", func(t *testing.T) {
		for _, bin := range []string{hookBin, hookCLIBin} {
			dir := t.TempDir()
			mustRun(t, bin, "configure", "podman", "--hooks-dir", dir)
			var hooks struct {
				Hook struct{ Path string } `json:"hook"`
			}
			if err := json.Unmarshal([]byte(readTrim(t, filepath.Join(dir, "lxcfs.json"))), &hooks); err != nil {
				t.Fatal(err)
			}
			if hooks.Hook.Path != hookBin {
				t.Errorf("%s configure podman: hook path %q, want %s", filepath.Base(bin), hooks.Hook.Path, hookBin)
			}
			bundle := t.TempDir()
			if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion": "1.0.2", "root": {"path": "rootfs"}}`), 0o644); err != nil {
				t.Fatal(err)
			}
			mustRun(t, bin, "inject", "--bundle", bundle)
			var spec struct {
				Hooks struct {
					CreateRuntime []struct{ Path string } `json:"createRuntime"`
				} `json:"hooks"`
			}
			if err := json.Unmarshal([]byte(readTrim(t, filepath.Join(bundle, "config.json"))), &spec); err != nil {
				t.Fatal(err)
			}
			if len(spec.Hooks.CreateRuntime) != 1 || spec.Hooks.CreateRuntime[0].Path != hookBin {
				t.Errorf("%s inject: createRuntime hooks %+v, want one running %s", filepath.Base(bin), spec.Hooks.CreateRuntime, hookBin)
			}
		}
	})
	t.Run("lxcfs-runc", func(t *testing.T) {
		if _, err := exec.LookPath("runc"); err != nil {
			t.Skipf("needs runc: %v", err)
		}
		// The wrapper binary, and lxcfs-hook under the wrapper's name (an
		// install from before lxcfs-runc was a binary of its own), which
		// hands the command line to lxcfs-hook-cli.
		link := filepath.Join(t.TempDir(), "lxcfs-runc")
		if err := os.Symlink(hookBin, link); err != nil {
			t.Fatal(err)
		}
		for _, bin := range []string{wrapperBin, link} {
			out, code := run(t, bin, "", []string{"LXCFS_RUNTIME_CONFIG=none"}, "--version")
			if code != 0 || !strings.HasPrefix(out, "runc version") || !strings.Contains(out, "lxcfs-runc: lxcfs-oci "+testVersion) {
				t.Errorf("%s --version: exit %d\n%s", bin, code, out)
			}
		}
	})
	t.Run("without lxcfs-hook-cli", func(t *testing.T) {
		// lxcfs-hook alone runs only what the daemon runs for it; any
		// other command, and create-runtime the daemon did not run, say
		// what is missing.
		alone := filepath.Join(t.TempDir(), "lxcfs-hook")
		b, err := os.ReadFile(hookBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(alone, b, 0o755); err != nil {
			t.Fatal(err)
		}
		out, code := run(t, alone, "", nil, "--version")
		if code != 127 || !strings.Contains(out, "lxcfs-hook-cli") {
			t.Errorf("lxcfs-hook --version without lxcfs-hook-cli: exit %d, want 127 and a message naming it\n%s", code, out)
		}
		state := `{"ociVersion":"1.2.0","id":"alone","status":"creating","pid":1,"bundle":"/nonexistent"}`
		out, code = run(t, alone, state, nil, "--always", "--log-file", "-", "--state-dir", t.TempDir(), "create-runtime")
		if code != 127 || !strings.Contains(out, "the daemon did not run create-runtime") || !strings.Contains(out, "lxcfs-hook-cli") {
			t.Errorf("create-runtime with no daemon and no lxcfs-hook-cli: exit %d, want 127 and a message naming it\n%s", code, out)
		}
	})
}
