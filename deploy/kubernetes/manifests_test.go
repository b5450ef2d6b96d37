package kubernetes

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/configure"
)

// decode splits a multi-document YAML file and decodes each document
// strictly into the type of its kind.
func decode(t *testing.T, file string) []any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var objs []any
	for i, doc := range bytes.Split(data, []byte("\n---")) {
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("%s document %d: %v", file, i, err)
		}
		if meta.Kind == "" {
			continue // comments only
		}
		var obj any
		switch meta.APIVersion + "/" + meta.Kind {
		case "v1/Namespace":
			obj = &corev1.Namespace{}
		case "v1/Pod":
			obj = &corev1.Pod{}
		case "apps/v1/DaemonSet":
			obj = &appsv1.DaemonSet{}
		case "node.k8s.io/v1/RuntimeClass":
			obj = &nodev1.RuntimeClass{}
		default:
			t.Fatalf("%s document %d: unexpected %s %s", file, i, meta.APIVersion, meta.Kind)
		}
		if err := strictDecode(doc, obj); err != nil {
			t.Fatalf("%s document %d (%s): %v", file, i, meta.Kind, err)
		}
		objs = append(objs, obj)
	}
	return objs
}

// strictDecode decodes as the API server does: field names are case
// sensitive, and unknown or duplicate fields are errors.
func strictDecode(doc []byte, obj any) error {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, obj, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		return fmt.Errorf("%v", strict)
	}
	return nil
}

func TestManifests(t *testing.T) {
	for _, tt := range []struct {
		file         string
		runtimeClass bool
		installs     string // what the init container runs
		nri          bool   // runs the NRI plugin beside the daemon
	}{
		{"lxcfs-crio.yaml", false, "configure crio", false},
		{"lxcfs-containerd.yaml", true, "configure containerd", false},
		{"lxcfs-nri.yaml", false, "", true},
	} {
		t.Run(tt.file, func(t *testing.T) {
			var ds *appsv1.DaemonSet
			var rc *nodev1.RuntimeClass
			for _, o := range decode(t, tt.file) {
				switch o := o.(type) {
				case *appsv1.DaemonSet:
					ds = o
				case *nodev1.RuntimeClass:
					rc = o
				}
			}
			if ds == nil {
				t.Fatal("no DaemonSet")
			}
			checkDaemonSet(t, ds, tt.installs, tt.nri)
			if tt.runtimeClass {
				if rc == nil || rc.Handler != configure.DefaultRuntimeName {
					t.Errorf("RuntimeClass = %+v, want handler %q (the name configure containerd writes)", rc, configure.DefaultRuntimeName)
				}
			}
		})
	}
}

func checkDaemonSet(t *testing.T, ds *appsv1.DaemonSet, installs string, nri bool) {
	t.Helper()
	spec := ds.Spec.Template.Spec
	if !spec.HostPID {
		t.Error("hostPID is false: the daemon cannot map readers' pids to their containers")
	}
	sel := ds.Spec.Selector.MatchLabels
	for k, v := range sel {
		if ds.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the pod labels %v", k, v, ds.Spec.Template.Labels)
		}
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	want := map[bool]int{false: 1, true: 2}[nri]
	if len(spec.Containers) != want || spec.Containers[0].Name != "lxcfs-fused" {
		t.Fatalf("%d containers, want %d, the daemon first", len(spec.Containers), want)
	}
	if nri {
		checkNRIPlugin(t, spec.Containers[1], volumes)
	}
	c := spec.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.Privileged == nil || !*c.SecurityContext.Privileged {
		t.Error("daemon container not privileged: it mounts FUSE")
	}
	cmd := strings.Join(c.Command, " ")
	if !strings.Contains(cmd, "lxcfs-fused") || !strings.Contains(cmd, "--mountpoint=/var/lib/lxcfs") {
		t.Errorf("daemon command %q", cmd)
	}
	found := false
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("mount of undeclared volume %q", m.Name)
			continue
		}
		if m.MountPath != "/var/lib/lxcfs" {
			continue
		}
		found = true
		if m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
			t.Error("/var/lib/lxcfs not Bidirectional: the node would not see the FUSE mount")
		}
		if v.HostPath == nil || v.HostPath.Path != "/var/lib/lxcfs" {
			t.Errorf("/var/lib/lxcfs is volume %+v, want hostPath /var/lib/lxcfs", v)
		}
	}
	if !found {
		t.Error("no /var/lib/lxcfs mount")
	}
	checkMetrics(t, ds, c)
	if len(spec.InitContainers) != 1 {
		t.Fatalf("%d init containers, want the installer", len(spec.InitContainers))
	}
	script := strings.Join(spec.InitContainers[0].Command, " ")
	// lxcfs-hook hands create-runtime to lxcfs-hook-cli beside it when the
	// daemon does not run it; containerd runs lxcfs-runc, a binary of its
	// own.
	installed := []string{"lxcfs-hook", "lxcfs-hook-cli"}
	if strings.Contains(installs, "containerd") {
		installed = append(installed, "lxcfs-runc")
	}
	for i, b := range installed {
		installed[i] = "mv -f /host/opt/lxcfs/bin/." + b + ".new /host/opt/lxcfs/bin/" + b
	}
	for _, want := range append([]string{"lxcfs-hook " + installs}, installed...) {
		if installs == "" && strings.HasPrefix(want, "lxcfs-hook ") {
			continue
		}
		if !strings.Contains(script, want) {
			t.Errorf("installer does not run %q:\n%s", want, script)
		}
	}
	for _, m := range spec.InitContainers[0].VolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			t.Errorf("installer mounts undeclared volume %q", m.Name)
		}
	}
}

// checkNRIPlugin checks that the plugin reaches the runtime's NRI socket on
// the node and adds the hook where the init container installs it.
func checkNRIPlugin(t *testing.T, c corev1.Container, volumes map[string]corev1.Volume) {
	t.Helper()
	cmd := strings.Join(c.Command, " ")
	for _, want := range []string{"lxcfs-nri", "--socket=/var/run/nri/nri.sock", "--hook-path=/opt/lxcfs/bin/lxcfs-hook", "--lxcfs-root=/var/lib/lxcfs"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("plugin command %q lacks %s", cmd, want)
		}
	}
	found := false
	for _, m := range c.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			t.Errorf("plugin mounts undeclared volume %q", m.Name)
			continue
		}
		if m.MountPath == "/var/run/nri" && v.HostPath != nil && v.HostPath.Path == "/var/run/nri" {
			found = true
		}
	}
	if !found {
		t.Error("the plugin does not mount the node's /var/run/nri, where the runtime's NRI socket is")
	}
}

// checkMetrics: the daemon serves metrics on the pod's own address (never a
// bare port, which would mean loopback only, unreachable by Prometheus), on
// the port the container declares and the scrape annotations name.
func checkMetrics(t *testing.T, ds *appsv1.DaemonSet, c corev1.Container) {
	t.Helper()
	var addr string
	for _, a := range c.Command {
		if v, ok := strings.CutPrefix(a, "--metrics-address="); ok {
			addr = v
		}
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "$(POD_IP)" {
		t.Fatalf("daemon --metrics-address %q (%v), want $(POD_IP):PORT", addr, err)
	}
	podIP := false
	for _, e := range c.Env {
		if e.Name == "POD_IP" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP" {
			podIP = true
		}
	}
	if !podIP {
		t.Error("no POD_IP from status.podIP for --metrics-address")
	}
	declared := false
	for _, p := range c.Ports {
		if p.Name == "metrics" && strconv.Itoa(int(p.ContainerPort)) == port && p.HostPort == 0 {
			declared = true
		}
	}
	if !declared {
		t.Errorf("no container port \"metrics\" %s (without a hostPort, which would open it on every node address): %+v", port, c.Ports)
	}
	a := ds.Spec.Template.Annotations
	if a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != port || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v, want scrape true, port %s, path /metrics", a, port)
	}
}

func TestExamplePods(t *testing.T) {
	objs := decode(t, "example-pods.yaml")
	var classes, annotated int
	for _, o := range objs {
		p, ok := o.(*corev1.Pod)
		if !ok {
			t.Fatalf("unexpected %T", o)
		}
		if p.Spec.RuntimeClassName != nil && *p.Spec.RuntimeClassName == configure.DefaultRuntimeName {
			classes++
		}
		if p.Annotations["io.lxcfs.enabled"] == "true" {
			annotated++
		}
	}
	if classes != 1 || annotated != 1 {
		t.Errorf("%d pods with the RuntimeClass and %d annotated, want one of each", classes, annotated)
	}
}

func TestStrictDecodingCatchesTypos(t *testing.T) {
	// The check above is only worth something if a typo fails it.
	for name, doc := range map[string]string{
		"case":      "spec:\n  template:\n    spec:\n      hostPid: true\n",
		"unknown":   "spec:\n  template:\n    spec:\n      hostPIDs: true\n",
		"duplicate": "spec:\n  minReadySeconds: 1\n  minReadySeconds: 2\n",
		"misplaced": "spec:\n  hostPID: true\n",
	} {
		if err := strictDecode([]byte(doc), &appsv1.DaemonSet{}); err == nil {
			t.Errorf("%s: accepted %q", name, doc)
		}
	}
}
