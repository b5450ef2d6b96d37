package integration

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/yaml"
)

// criTestBin is where scripts/install-deps.sh builds containerd 2.4 (with
// its runc shim and ctr), crictl and runc 1.2.6 from Go modules: Debian's
// containerd is 1.6, which has no NRI.
const criTestBin = "/usr/local/lib/lxcfs-oci-test/bin"

// criImage is the one image of the CRI tests, made locally (there is no
// registry): busybox, whose default command keeps a pod sandbox alive.
const criImage = "localhost/lxcfs-oci-test/busybox:1"

// criContainerd is a private containerd 2.4 with the CRI plugin and NRI on,
// driven with crictl: its own config, root, state and sockets.
type criContainerd struct {
	dir, conf, sock, nriSock, crictlConf string
	env                                  []string
	proc                                 *engineProc
	seq                                  int
}

func requireCRI(t *testing.T) {
	t.Helper()
	requireRoot(t)
	for _, b := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "crictl", "runc"} {
		if _, err := os.Stat(filepath.Join(criTestBin, b)); err != nil {
			t.Skipf("needs %s in %s, built by scripts/install-deps.sh: %v", b, criTestBin, err)
		}
	}
}

// newCRIContainerd writes the config (version 3, as containerd 2.x reads
// it), starts containerd and imports the test image. env reaches the
// runtimes its shims start; criTestBin comes first on its $PATH, so the
// shim and runc are the ones built with it.
func newCRIContainerd(t *testing.T, env []string) *criContainerd {
	t.Helper()
	requireCRI(t)
	// Shims keep sockets under /run/containerd and runc its state under
	// /run/containerd/runc whatever the config says.
	cleanCreated(t, "/run/containerd")
	dir := t.TempDir()
	c := &criContainerd{
		dir:        dir,
		conf:       filepath.Join(dir, "config.toml"),
		sock:       filepath.Join(dir, "containerd.sock"),
		nriSock:    filepath.Join(dir, "nri.sock"),
		crictlConf: filepath.Join(dir, "crictl.yaml"),
	}
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PATH=") {
			c.env = append(c.env, kv)
		}
	}
	c.env = append(c.env, "PATH="+criTestBin+":"+os.Getenv("PATH"))
	for _, d := range []string{"nri-plugins", "nri-conf", "logs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// restrict_oom_score_adj: CRI gives sandboxes oomScoreAdj -998, which
	// needs CAP_SYS_RESOURCE that containers on this machine lack. Pods use
	// the host network (no CNI here), so the CNI directories are never read.
	conf := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.cri.v1.images".pinned_images]
  sandbox = %[5]q

[plugins."io.containerd.nri.v1.nri"]
  disable = false
  socket_path = %[6]q
  plugin_path = %[7]q
  plugin_config_path = %[8]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock, c.sock+".ttrpc", criImage,
		c.nriSock, filepath.Join(dir, "nri-plugins"), filepath.Join(dir, "nri-conf"))
	if err := os.WriteFile(c.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	crictl := fmt.Sprintf("runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n", c.sock, c.sock)
	if err := os.WriteFile(c.crictlConf, []byte(crictl), 0o644); err != nil {
		t.Fatal(err)
	}
	c.start(t)

	rootfs := filepath.Join(t.TempDir(), "rootfs")
	makeBusyboxRootfs(t, rootfs)
	archive := makeOCIArchive(t, rootfs, criImage, []string{"/bin/sleep", "2147483647"})
	if _, stderr, err := runCmd(t, 2*time.Minute, c.env, filepath.Join(criTestBin, "ctr"),
		"--address", c.sock, "-n", "k8s.io", "images", "import", archive); err != nil {
		t.Fatalf("ctr images import: %v\n%s", err, stderr)
	}
	return c
}

// start starts containerd and waits until its CRI service answers. Before
// it is stopped at cleanup, every pod is removed, so nothing is left in
// its directories or under /run/containerd.
func (c *criContainerd) start(t *testing.T) {
	t.Helper()
	proc := startEngine(t, filepath.Join(criTestBin, "containerd"), c.env, 30*time.Second, "--config", c.conf)
	c.proc = proc
	t.Cleanup(func() {
		select {
		case err := <-proc.exited:
			proc.exited <- err // stopped by the test, after a restart
			return
		default:
		}
		if _, stderr, err := runCmd(t, 2*time.Minute, c.env, filepath.Join(criTestBin, "crictl"), "--config", c.crictlConf, "rmp", "--all", "--force"); err != nil {
			t.Errorf("crictl rmp --all: %v\n%s", err, stderr)
		}
	})
	c.proc.waitFor(t, "containerd", 60*time.Second, func() error {
		_, stderr, err := runCmd(t, 10*time.Second, c.env, filepath.Join(criTestBin, "crictl"), "--config", c.crictlConf, "info")
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr))
		}
		return nil
	})
}

// crictl runs crictl against this containerd and returns its stdout.
func (c *criContainerd) crictl(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := runCmd(t, 2*time.Minute, c.env, filepath.Join(criTestBin, "crictl"), append([]string{"--config", c.crictlConf}, args...)...)
	if err != nil {
		t.Fatalf("crictl %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
	}
	return strings.TrimSpace(out)
}

// criPod is what a test asks of a pod with one container.
type criPod struct {
	annotations          map[string]string // the pod's
	containerAnnotations map[string]string
	handler              string // runtime handler ("" for the default)
}

// runPod starts a pod (host network, each container in its own pid
// namespace, as the kubelet does by default) with one busybox container
// limited to 64 MiB that sleeps, and returns the container's id. The pod is
// removed before containerd stops.
func (c *criContainerd) runPod(t *testing.T, p criPod) string {
	t.Helper()
	c.seq++
	name := fmt.Sprintf("lxcfs-%d-%d", os.Getpid(), c.seq)
	ns := map[string]any{"network": 2, "pid": 1} // NODE, CONTAINER
	pod := map[string]any{
		"metadata":      map[string]any{"name": name, "namespace": "lxcfs-test", "uid": name, "attempt": 0},
		"annotations":   p.annotations,
		"log_directory": filepath.Join(c.dir, "logs", name),
		"linux":         map[string]any{"security_context": map[string]any{"namespace_options": ns}},
	}
	ctr := map[string]any{
		"metadata":    map[string]any{"name": "main"},
		"image":       map[string]any{"image": criImage},
		"command":     []string{"/bin/sleep", "2147483647"},
		"envs":        []map[string]string{{"key": "PATH", "value": "/bin"}},
		"annotations": p.containerAnnotations,
		"log_path":    "main.log",
		"linux": map[string]any{
			"resources":        map[string]any{"memory_limit_in_bytes": 64 << 20},
			"security_context": map[string]any{"namespace_options": ns},
		},
	}
	podFile, ctrFile := filepath.Join(c.dir, name+"-pod.json"), filepath.Join(c.dir, name+"-ctr.json")
	for f, v := range map[string]any{podFile: pod, ctrFile: ctr} {
		data, _ := json.Marshal(v)
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"runp"}
	if p.handler != "" {
		args = append(args, "--runtime", p.handler)
	}
	podID := c.crictl(t, append(args, podFile)...)
	id := c.crictl(t, "create", podID, ctrFile, podFile)
	c.crictl(t, "start", id)
	return id
}

// exec runs script in the container with /bin/sh -c and returns its output.
func (c *criContainerd) exec(t *testing.T, id, script string) string {
	t.Helper()
	return c.crictl(t, "exec", "--sync", "--timeout", "60", id, "/bin/sh", "-c", script)
}

// makeOCIArchive writes an OCI image archive (what podman save --format
// oci-archive writes) of rootfs as one uncompressed layer, named name for
// ctr images import, with cmd as its default command.
func makeOCIArchive(t *testing.T, rootfs, name string, cmd []string) string {
	t.Helper()
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	err := filepath.WalkDir(rootfs, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == rootfs {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(path); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootfs, path)
		hdr.Name = rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname, hdr.ModTime = "", "", time.Unix(0, 0)
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		}
		return nil
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("layer of %s: %v", rootfs, err)
	}

	blobs := map[string][]byte{}
	type descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	blob := func(mediaType string, data []byte) descriptor {
		sum := sha256.Sum256(data)
		hexSum := hex.EncodeToString(sum[:])
		blobs[hexSum] = data
		return descriptor{MediaType: mediaType, Digest: "sha256:" + hexSum, Size: len(data)}
	}
	mustJSON := func(v any) []byte {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	layerDesc := blob("application/vnd.oci.image.layer.v1.tar", layer.Bytes())
	config := blob("application/vnd.oci.image.config.v1+json", mustJSON(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Cmd": cmd, "Env": []string{"PATH=/bin"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDesc.Digest}},
	}))
	manifest := blob("application/vnd.oci.image.manifest.v1+json", mustJSON(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        config,
		"layers":        []descriptor{layerDesc},
	}))
	manifest.Annotations = map[string]string{"io.containerd.image.name": name}
	index := mustJSON(map[string]any{"schemaVersion": 2, "manifests": []descriptor{manifest}})

	path := filepath.Join(t.TempDir(), "image.tar")
	var out bytes.Buffer
	aw := tar.NewWriter(&out)
	add := func(name string, data []byte) {
		if err := aw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := aw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	add("index.json", index)
	for sum, data := range blobs {
		add("blobs/sha256/"+sum, data)
	}
	if err := aw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// manifestCommand is the command of the container named name in the
// DaemonSet of a manifest file.
func manifestCommand(t *testing.T, file, name string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range bytes.Split(data, []byte("\n---")) {
		var ds appsv1.DaemonSet
		if err := yaml.Unmarshal(doc, &ds); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if ds.Kind != "DaemonSet" {
			continue
		}
		for _, c := range ds.Spec.Template.Spec.Containers {
			if c.Name == name {
				return c.Command
			}
		}
	}
	t.Fatalf("%s: no DaemonSet container %q", file, name)
	return nil
}

// countIn is how many times s occurs in the file at path.
func countIn(t *testing.T, path, s string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), s)
}

// TestEngineCRIContainerd runs pods through a real containerd 2.4 with
// crictl, as the kubelet would: served through the NRI plugin by an
// annotation alone, with containerd's config untouched; not served without
// it; served through the lxcfs runtime handler (the wrapper); served after
// containerd restarted (the plugin registers again); and the views of a
// running pod come back after the daemon restarted.
func TestEngineCRIContainerd(t *testing.T) {
	requireCRI(t)
	d1 := startDaemon(t, fusedBin, "")
	w := setupWrapper(t, d1.mp, map[string]any{"runtime": filepath.Join(criTestBin, "runc"), "stateDir": d1.stateDir})
	c := newCRIContainerd(t, w.env())
	confBefore, err := os.ReadFile(c.conf)
	if err != nil {
		t.Fatal(err)
	}
	host := hostMemTotal(t)

	// The plugin as the DaemonSet runs it, the node's paths replaced by
	// this test's (a flag given again wins).
	args := append(manifestCommand(t, "../deploy/kubernetes/lxcfs-nri.yaml", "lxcfs-nri")[1:],
		"--socket", c.nriSock, "--hook-path", hookBin, "--lxcfs-root", d1.mp,
		"--state-dir", d1.stateDir, "--hook-log-file", w.log, "--log-level", "debug")
	plugin := startEngine(t, nriBin, os.Environ(), 10*time.Second, args...)
	registered := func(n int) {
		t.Helper()
		plugin.waitFor(t, "lxcfs-nri registration", 60*time.Second, func() error {
			if got := countIn(t, plugin.log, "registered with the runtime"); got < n {
				return fmt.Errorf("registered %d times, want %d", got, n)
			}
			return nil
		})
	}
	registered(1)

	memTotal := func(t *testing.T, id string) string {
		t.Helper()
		return field(c.exec(t, id, viewScript), "memtotal")
	}
	// Served through NRI, and kept running for the restarts below.
	served := c.runPod(t, criPod{annotations: map[string]string{"io.kubernetes.lxcfs.enabled": "true"}})
	t.Run("NRI, PouchContainer annotation", func(t *testing.T) {
		if got := memTotal(t, served); got != servedMemTotal {
			t.Errorf("MemTotal = %q, want %q", got, servedMemTotal)
		}
	})
	for _, tt := range []struct {
		name string
		pod  criPod
		want string
	}{
		{"NRI, io.lxcfs.enabled", criPod{annotations: map[string]string{"io.lxcfs.enabled": "true"}}, servedMemTotal},
		{"unannotated", criPod{}, host},
		{"container opts out of its pod", criPod{annotations: map[string]string{"io.lxcfs.enabled": "true"}, containerAnnotations: map[string]string{"io.lxcfs.enabled": "false"}}, host},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := c.runPod(t, tt.pod)
			if got := memTotal(t, id); got != tt.want {
				t.Errorf("MemTotal = %q, want %q", got, tt.want)
			}
		})
	}
	if b, _ := os.ReadFile(c.conf); !bytes.Equal(b, confBefore) {
		t.Errorf("containerd's config changed while pods were served through NRI")
	}

	// Restarts at the top level: containerd and the daemon then live until
	// the test ends, not the subtest.
	c.proc.stop(t)
	if out, err := exec.Command(hookBin, "configure", "containerd", "--config", c.conf, "--runtime-path", w.path).CombinedOutput(); err != nil {
		t.Fatalf("configure containerd: %v\n%s", err, out)
	}
	c.start(t)
	t.Run("containerd restarted, lxcfs runtime handler configured", func(t *testing.T) {
		registered(2)
		id := c.runPod(t, criPod{annotations: map[string]string{"io.lxcfs.enabled": "true"}})
		if got := memTotal(t, id); got != servedMemTotal {
			t.Errorf("through NRI after the restart: MemTotal = %q, want %q", got, servedMemTotal)
		}
		// Unannotated, so the plugin leaves it alone: the wrapper serves it.
		id = c.runPod(t, criPod{handler: "lxcfs"})
		if got := memTotal(t, id); got != servedMemTotal {
			t.Errorf("runtime handler lxcfs: MemTotal = %q, want %q", got, servedMemTotal)
		}
		// The pod served before the restart still is.
		if got := memTotal(t, served); got != servedMemTotal {
			t.Errorf("pod started before the restart: MemTotal = %q, want %q", got, servedMemTotal)
		}
	})

	d1.stop(t)
	if out := c.exec(t, served, "cat /proc/meminfo 2>&1 >/dev/null; true"); !strings.Contains(out, "not connected") {
		t.Fatalf("with the daemon stopped, the pod's /proc/meminfo reads %q; want not connected", out)
	}
	startDaemon(t, fusedBin, d1.mp, "--state-dir", d1.stateDir)
	t.Run("daemon restarted", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second)
		got := ""
		for time.Now().Before(deadline) {
			if got = memTotal(t, served); got == servedMemTotal {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if got != servedMemTotal {
			t.Errorf("30s after the daemon started again the running pod reads MemTotal %q, want %q", got, servedMemTotal)
		}
	})
}
