package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestEngineContainerd runs containers with a private containerd 1.6 (ctr,
// runc v2 shim) through the wrapper given as --runc-binary, which is what
// a CRI runtime entry's BinaryName does, and checks that
// "configure containerd" writes a runtime containerd reads.
func TestEngineContainerd(t *testing.T) {
	root := startViews(t)
	before := mountPoints(t, "self")
	w := setupWrapper(t, root, nil)
	sock := startContainerd(t, w.env())
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	makeBusyboxRootfs(t, rootfs)
	host := hostMemTotal(t)

	seq := 0
	ctrRun := func(t *testing.T, extra ...string) string {
		t.Helper()
		seq++
		id := fmt.Sprintf("lxcfs-ctr-%d-%d", os.Getpid(), seq)
		// --rootfs is a boolean: the path is the first argument, and
		// ctr reads no options after it.
		args := []string{"--address", sock, "run", "--rm", "--env", "PATH=/bin", "--memory-limit", "67108864"}
		args = append(append(args, extra...), "--rootfs", rootfs, id, "/bin/sh", "-c", viewScript)
		out, stderr, err := runCmd(t, 60*time.Second, nil, "ctr", args...)
		if err != nil {
			t.Fatalf("ctr %v: %v\n%s", args, err, stderr)
		}
		return out
	}
	for _, tt := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"through the wrapper", []string{"--runc-binary", w.path}, servedMemTotal},
		{"opted out", []string{"--runc-binary", w.path, "--env", "LXCFS_ENABLED=false"}, host},
		{"plain runc", nil, host},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := ctrRun(t, tt.extra...)
			if got := field(out, "memtotal"); got != tt.want {
				t.Errorf("MemTotal = %q, want %q\n%s", got, tt.want, out)
			}
		})
	}

	t.Run("configure containerd", func(t *testing.T) {
		conf := filepath.Join(t.TempDir(), "config.toml")
		data, err := os.ReadFile("../pkg/configure/testdata/containerd/debian-default.toml")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(conf, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(hookBin, "configure", "containerd", "--config", conf, "--runtime-path", w.path).CombinedOutput(); err != nil {
			t.Fatalf("configure containerd: %v\n%s", err, out)
		}
		if b, err := os.ReadFile(conf + ".bak"); err != nil || string(b) != string(data) {
			t.Errorf("backup: %v, %q", err, b)
		}
		// containerd's own reading of the file, merged with its defaults.
		out, stderr, err := runCmd(t, 20*time.Second, nil, "containerd", "--config", conf, "config", "dump")
		if err != nil {
			t.Fatalf("containerd config dump: %v\n%s", err, stderr)
		}
		for _, want := range []string{
			`[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.lxcfs]`,
			`runtime_type = "io.containerd.runc.v2"`,
			`BinaryName = "` + w.path + `"`,
		} {
			if !strings.Contains(out, want) {
				t.Errorf("containerd's view of the config lacks %s", want)
			}
		}
		if out, err := exec.Command(hookBin, "configure", "containerd", "--config", conf, "--remove").CombinedOutput(); err != nil {
			t.Fatalf("configure containerd --remove: %v\n%s", err, out)
		}
		if b, _ := os.ReadFile(conf); string(b) != string(data) {
			t.Errorf("after --remove the file is not what it was:\n%s", b)
		}
	})
	sameMounts(t, before)
}
