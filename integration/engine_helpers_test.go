package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// wrapperEnv is a runtime wrapper set up for one test: lxcfs-runc (a link
// to the built one, which finds lxcfs-hook beside it), and its config file
// pointing at the test's views.
type wrapperEnv struct {
	path   string // lxcfs-runc
	config string // its config file, named by LXCFS_RUNTIME_CONFIG
	log    string // the wrapper's and the hook's log
}

func setupWrapper(t *testing.T, root string, extra map[string]any) wrapperEnv {
	t.Helper()
	dir := t.TempDir()
	w := wrapperEnv{path: filepath.Join(dir, "lxcfs-runc"), config: filepath.Join(dir, "runtime.json"), log: filepath.Join(dir, "hook.log")}
	if err := os.Symlink(wrapperBin, w.path); err != nil {
		t.Fatal(err)
	}
	// The hook's records of served containers stay in the test, too.
	cfg := map[string]any{"lxcfsRoot": root, "logFile": w.log, "stateDir": filepath.Join(dir, "state")}
	for k, v := range extra {
		cfg[k] = v
	}
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(w.config, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(w.log)
			t.Logf("wrapper and hook log:\n%s", b)
		}
	})
	return w
}

// env is the environment the engine must pass on to the wrapper.
func (w wrapperEnv) env() []string {
	return append(os.Environ(), "LXCFS_RUNTIME_CONFIG="+w.config)
}

func requireBinaries(t *testing.T, bins ...string) {
	t.Helper()
	for _, b := range bins {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs %s (scripts/install-deps.sh installs it): %v", b, err)
		}
	}
}

// engineProc is an engine daemon started by a test.
type engineProc struct {
	cmd    *exec.Cmd
	exited chan error
	log    string
}

// startEngine starts a long-running engine process (name on $PATH, or a
// path), logging to a file, and stops it at cleanup: SIGTERM, then SIGKILL
// after grace.
func startEngine(t *testing.T, name string, env []string, grace time.Duration, args ...string) *engineProc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), filepath.Base(name)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// A crashed test binary must not leave an engine behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	d := &engineProc{cmd: cmd, exited: make(chan error, 1), log: logPath}
	go func() { d.exited <- cmd.Wait(); logFile.Close() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(grace):
			cmd.Process.Kill()
			<-d.exited
			t.Errorf("%s still running %v after SIGTERM", name, grace)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s log (last 4 KiB):\n%s", name, tail(b, 4096))
		}
	})
	return d
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitFor polls ready until it succeeds, the daemon exits or timeout.
func (d *engineProc) waitFor(t *testing.T, what string, timeout time.Duration, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = ready(); err == nil {
			return
		}
		select {
		case e := <-d.exited:
			d.exited <- e
			b, _ := os.ReadFile(d.log)
			t.Fatalf("%s exited before it was ready: %v\n%s", what, e, tail(b, 4096))
		case <-time.After(100 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(d.log)
	t.Fatalf("%s not ready within %v: %v\n%s", what, timeout, err, tail(b, 4096))
}

// startContainerd runs a private containerd (own root, state and socket,
// CRI plugin off) whose environment reaches the runtimes its shims start.
func startContainerd(t *testing.T, env []string) string {
	t.Helper()
	requireRoot(t)
	requireBinaries(t, "containerd", "ctr", "containerd-shim-runc-v2", "runc")
	// Shims keep runc's state and their sockets, and ctr its fifos, under
	// /run/containerd whatever --state says.
	cleanCreated(t, "/run/containerd")
	dir := t.TempDir()
	sock := filepath.Join(dir, "containerd.sock")
	conf := filepath.Join(dir, "config.toml")
	// The CRI plugin would set up networking and image services no test here uses.
	if err := os.WriteFile(conf, []byte("version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startEngine(t, "containerd", env, 20*time.Second,
		"--config", conf, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--address", sock)
	d.waitFor(t, "containerd", 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "version").CombinedOutput()
		if err != nil {
			return errors.New(strings.TrimSpace(string(out)))
		}
		return nil
	})
	return sock
}

// run runs a command with a timeout and returns stdout, stderr.
func runCmd(t *testing.T, timeout time.Duration, env []string, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return stdout.String(), stderr.String(), err
}

// commandIn is a command run in dir with env.
func commandIn(dir string, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, env
	return cmd
}

// stderrOf returns the stderr an *exec.ExitError captured, for messages.
func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(ee.Stderr)
	}
	return ""
}

// cleanCreated removes path at cleanup when it did not exist before the
// test: a file, or a directory with only empty directories under it.
// Files left in such a directory are reported, not removed.
func cleanCreated(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); err == nil {
		return
	}
	t.Cleanup(func() {
		if fi, err := os.Lstat(path); err == nil && !fi.IsDir() {
			os.Remove(path)
			return
		}
		var dirs, left []string
		filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() {
				dirs = append(dirs, p)
			} else {
				left = append(left, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			os.Remove(dirs[i]) // fails, as it should, when not empty
		}
		if len(left) > 0 {
			t.Errorf("left behind under %s: %v", path, left)
		}
	})
}

// stop stops the daemon before cleanup (cleanup then finds it gone).
func (d *engineProc) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.exited:
		d.exited <- err
	case <-time.After(30 * time.Second):
		t.Errorf("%s still running 30s after SIGTERM", d.cmd.Path)
	}
}
