package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPodmanHooksDir runs real podman (with runc) through our hooks.d file:
// the annotation regexp must select containers with either opt-in
// annotation and leave the others alone.
func TestPodmanHooksDir(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("podman"); err != nil {
		t.Skipf("needs podman: %v", err)
	}
	root := startViews(t)
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	makeBusyboxRootfs(t, rootfs)

	// The shipped file, with the hook path of this test run and a log file.
	data, err := os.ReadFile("../hooks.d/lxcfs.json")
	if err != nil {
		t.Fatal(err)
	}
	var hf map[string]any
	if err := json.Unmarshal(data, &hf); err != nil {
		t.Fatalf("hooks.d/lxcfs.json: %v", err)
	}
	logPath := filepath.Join(dir, "hook.log")
	h := hf["hook"].(map[string]any)
	if h["path"] != "/usr/local/bin/lxcfs-hook" {
		t.Errorf("hooks.d/lxcfs.json path = %v, want the make install location", h["path"])
	}
	h["path"] = hookBin
	h["args"] = []any{"lxcfs-hook", "--lxcfs-root", root, "--log-file", logPath, "--state-dir", filepath.Join(filepath.Dir(logPath), "state"), "create-runtime"}
	hooksDir := filepath.Join(dir, "hooks.d")
	os.Mkdir(hooksDir, 0o755)
	data, _ = json.Marshal(hf)
	if err := os.WriteFile(filepath.Join(hooksDir, "lxcfs.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "containers.conf")
	// podman's default rlimits cannot be raised here (no CAP_SYS_RESOURCE).
	if err := os.WriteFile(conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{
		"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"),
		"--tmpdir", filepath.Join(dir, "tmp"), "--storage-driver", "vfs",
		"--runtime", ociRuntime(), "--cgroup-manager", "cgroupfs", "--events-backend", "file",
		"--hooks-dir", hooksDir,
	}
	podman := func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "podman", append(append([]string{}, base...), args...)...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
		return cmd
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		podman(ctx, "rm", "--all", "--force").Run()
		// podman leaves its storage mounted under --root until reset.
		podman(ctx, "system", "reset", "--force").Run()
	})

	host := hostMemTotal(t)
	for _, tt := range []struct {
		name string
		ann  []string
		want string
	}{
		{"io.lxcfs.enabled", []string{"io.lxcfs.enabled=true"}, servedMemTotal},
		{"io.kubernetes.lxcfs.enabled", []string{"io.kubernetes.lxcfs.enabled=true"}, servedMemTotal},
		{"no annotation", nil, host},
		{"not exactly true", []string{"io.lxcfs.enabled=untrue"}, host},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := len(readHookLog(t, logPath))
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			args := []string{"run", "--rm", "--network", "none", "--memory", "64m", "--cpuset-cpus", "0"}
			for _, a := range tt.ann {
				args = append(args, "--annotation", a)
			}
			args = append(args, "--rootfs", rootfs, "/bin/sh", "-c", viewScript)
			cmd := podman(ctx, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("podman run: %v\n%s", err, stderr.String())
			}
			out := stdout.String()
			if got := field(out, "memtotal"); got != tt.want {
				t.Errorf("MemTotal = %q, want %q\n%s", got, tt.want, out)
			}
			ran := len(readHookLog(t, logPath)) > before
			if wantRun := tt.want != host; ran != wantRun {
				t.Errorf("hook ran = %v, want %v (hooks.d when.annotations):\n%s", ran, wantRun, readHookLog(t, logPath))
			}
			if tt.want != host && !strings.Contains(field(out, "nproc"), "1") {
				t.Errorf("nproc = %q, want 1", field(out, "nproc"))
			}
		})
	}
}
