package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestEngineDocker runs Debian's dockerd 20.10 on private paths and socket,
// over a private containerd, with the wrapper registered by "lxcfs-hook
// configure docker", and drives containers through the docker CLI. One
// daemon serves every subtest: it takes seconds to start.
func TestEngineDocker(t *testing.T) {
	fused := startDaemon(t, fusedBin, "")
	root := fused.mp
	before := mountPoints(t, "self")
	requireBinaries(t, "dockerd")
	w := setupWrapper(t, root, nil)
	dockerCLI := "/usr/bin/docker" // docker.io's client, the daemon's version
	if _, err := os.Stat(dockerCLI); err != nil {
		p, err := exec.LookPath("docker")
		if err != nil {
			t.Skipf("needs the docker client (Debian docker.io): %v", err)
		}
		dockerCLI = p
	}
	ctrdSock := startContainerd(t, w.env())

	dir := t.TempDir()
	// A second runtime, the same wrapper in opt-in mode, through the
	// environment variable the wrapper reads.
	optIn := filepath.Join(dir, "lxcfs-runc-opt-in")
	if err := os.WriteFile(optIn, []byte("#!/bin/sh\nLXCFS_MODE=opt-in exec "+w.path+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A third: the wrapper with "sysinfo": true and the daemon's state dir,
	// where lxcfs-fused listens for sysinfo registrations.
	siConfig := filepath.Join(dir, "runtime-sysinfo.json")
	siCfg, _ := json.Marshal(map[string]any{"lxcfsRoot": root, "logFile": w.log, "stateDir": fused.stateDir, "sysinfo": true})
	withSysinfo := filepath.Join(dir, "lxcfs-runc-sysinfo")
	if err := os.WriteFile(siConfig, siCfg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(withSysinfo, []byte("#!/bin/sh\nLXCFS_RUNTIME_CONFIG="+siConfig+" exec "+w.path+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	base, _ := json.MarshalIndent(map[string]any{
		"data-root": filepath.Join(dir, "data"), "exec-root": filepath.Join(dir, "exec"),
		"pidfile": filepath.Join(dir, "docker.pid"), "hosts": []string{"unix://" + sock},
		"containerd": ctrdSock, "iptables": false, "ip-forward": false, "ip-masq": false,
		"bridge": "none", "storage-driver": "vfs", "log-level": "warn",
		"runtimes": map[string]any{"lxcfs-opt-in": map[string]any{"path": optIn}, "lxcfs-sysinfo": map[string]any{"path": withSysinfo}},
	}, "", "  ")
	daemonJSON := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(daemonJSON, base, 0o644); err != nil {
		t.Fatal(err)
	}
	// The runtime "lxcfs" comes from configure docker, as an admin would add it.
	if out, err := exec.Command(hookBin, "configure", "docker", "--config", daemonJSON, "--runtime-path", w.path).CombinedOutput(); err != nil {
		t.Fatalf("configure docker: %v\n%s", err, out)
	}
	// dockerd writes its trust key beside /etc/docker/daemon.json and a
	// socket directory under /run/docker, whatever its config says.
	cleanCreated(t, "/etc/docker/key.json")
	cleanCreated(t, "/run/docker")
	d := startEngine(t, "dockerd", w.env(), 30*time.Second, "--config-file", daemonJSON)
	env := append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+filepath.Join(dir, "client"))
	docker := func(t *testing.T, args ...string) (string, error) {
		t.Helper()
		out, stderr, err := runCmd(t, 90*time.Second, env, dockerCLI, args...)
		if err != nil {
			return out, fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, stderr)
		}
		return out, nil
	}
	d.waitFor(t, "dockerd", 60*time.Second, func() error { _, err := docker(t, "version"); return err })
	t.Cleanup(func() {
		out, _ := docker(t, "ps", "-aq")
		if ids := strings.Fields(out); len(ids) > 0 {
			t.Errorf("containers left: %v", ids)
			docker(t, append([]string{"rm", "-f"}, ids...)...)
		}
	})

	rootfs := filepath.Join(dir, "rootfs")
	makeBusyboxRootfs(t, rootfs)
	const image = "lxcfs-busybox:latest"
	imp := exec.Command(dockerCLI, "import", "-", image)
	imp.Env = env
	tar := exec.Command("tar", "-C", rootfs, "-c", ".")
	pipe, err := tar.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	imp.Stdin = pipe
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v\n%s", err, out)
	}
	if err := tar.Wait(); err != nil {
		t.Fatalf("tar: %v", err)
	}

	host := hostMemTotal(t)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"runtime lxcfs", []string{"--runtime", "lxcfs"}, servedMemTotal},
		{"runtime lxcfs, opted out", []string{"--runtime", "lxcfs", "-e", "LXCFS_ENABLED=false"}, host},
		{"default runtime runc", nil, host},
		{"opt-in runtime, not opted in", []string{"--runtime", "lxcfs-opt-in"}, host},
		{"opt-in runtime, opted in", []string{"--runtime", "lxcfs-opt-in", "-e", "LXCFS_ENABLED=true"}, servedMemTotal},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "--rm", "--network", "none", "-m", "64m", "--cpuset-cpus", "0"}, tt.args...)
			out, err := docker(t, append(args, image, "/bin/sh", "-c", viewScript)...)
			if err != nil {
				t.Fatal(err)
			}
			if got := field(out, "memtotal"); got != tt.want {
				t.Errorf("MemTotal = %q, want %q\n%s", got, tt.want, out)
			}
			if tt.want == servedMemTotal {
				if got := field(out, "procs"); got != "1" {
					t.Errorf("processors in cpuinfo = %q, want 1", got)
				}
			}
		})
	}

	// busybox free asks sysinfo(2): through the wrapper with its sysinfo
	// setting, Docker's own seccomp profile gets one rule sending sysinfo
	// to lxcfs-fused, and free shows the container's 64 MiB.
	hostFree := strconv.FormatUint(hostSysinfoKB(t), 10)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"busybox free, wrapper with sysinfo", []string{"--runtime", "lxcfs-sysinfo"}, "65536"},
		{"busybox free, opted out of sysinfo", []string{"--runtime", "lxcfs-sysinfo", "-e", "LXCFS_SYSINFO=false"}, hostFree},
		// sysinfo is on by default, but nothing listens in this wrapper's
		// state dir: the rule is left out and the container starts.
		{"busybox free, wrapper whose daemon does not listen", []string{"--runtime", "lxcfs"}, hostFree},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", "--rm", "--network", "none", "-m", "64m"}, tt.args...)
			out, err := docker(t, append(args, image, "/bin/sh", "-c", "free | grep Mem: | tr -s ' ' | cut -d' ' -f2")...)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out); got != tt.want {
				t.Errorf("busybox free total = %q kB, want %s", got, tt.want)
			}
		})
	}

	// docker exec loads the filter again in the new process: runc registers
	// it as another listener of the same container.
	t.Run("busybox free in docker exec, wrapper with sysinfo", func(t *testing.T) {
		name := fmt.Sprintf("lxcfs-docker-sysinfo-%d", os.Getpid())
		if _, err := docker(t, "run", "-d", "--name", name, "--network", "none", "--runtime", "lxcfs-sysinfo", "-m", "64m", image, "sleep", "600"); err != nil {
			t.Fatal(err)
		}
		defer docker(t, "rm", "-f", name)
		out, err := docker(t, "exec", name, "/bin/sh", "-c", "free | grep Mem: | tr -s ' ' | cut -d' ' -f2")
		if got := strings.TrimSpace(out); err != nil || got != "65536" {
			t.Errorf("busybox free total in docker exec = %q kB, %v; want 65536", got, err)
		}
	})

	t.Run("exec, pause, stop and rm through the wrapper", func(t *testing.T) {
		name := fmt.Sprintf("lxcfs-docker-%d", os.Getpid())
		if _, err := docker(t, "run", "-d", "--name", name, "--network", "none", "--runtime", "lxcfs", "-m", "64m", image, "sleep", "600"); err != nil {
			t.Fatal(err)
		}
		out, err := docker(t, "exec", name, "grep", "MemTotal", "/proc/meminfo")
		if got := strings.Join(strings.Fields(out), " "); err != nil || got != servedMemTotal {
			t.Errorf("docker exec: %q, %v; want %q", got, err, servedMemTotal)
		}
		for _, step := range [][]string{{"pause", name}, {"unpause", name}, {"stop", "-t", "2", name}, {"rm", name}} {
			if _, err := docker(t, step...); err != nil {
				t.Fatal(err)
			}
		}
		if out, _ := docker(t, "ps", "-a", "--format", "{{.Names}}"); strings.Contains(out, name) {
			t.Errorf("container still listed after rm: %q", out)
		}
	})

	// Stop dockerd now, in this test, so the mount check below sees
	// everything it set up taken down.
	d.stop(t)
	sameMounts(t, before)
}
