package wrapper

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		args string // split on spaces
		want Invocation
	}{
		{"nothing", "", Invocation{}},
		{"version", "--version", Invocation{}},
		{"help after globals", "--root /r -h", Invocation{}},
		{"create in cwd", "create ctr", Invocation{Command: "create"}},
		{"create with bundle", "create --bundle /b ctr", Invocation{Command: "create", Bundle: "/b"}},
		{"create with short bundle", "create -b /b ctr", Invocation{Command: "create", Bundle: "/b"}},
		{"bundle with equals", "create --bundle=/b=x ctr", Invocation{Command: "create", Bundle: "/b=x"}},
		{"go flag single dash", "-root /r create -bundle /b ctr", Invocation{Command: "create", Bundle: "/b"}},
		{"short with equals", "create -b=/b ctr", Invocation{Command: "create", Bundle: "/b"}},
		{"bundle after the id", "create ctr --bundle /b", Invocation{Command: "create", Bundle: "/b"}},
		{"last bundle wins", "create -b /a ctr -b /b", Invocation{Command: "create", Bundle: "/b"}},
		{"run", "run -d --bundle /b ctr", Invocation{Command: "run", Bundle: "/b"}},
		{
			"containerd shim",
			"--root /run/containerd/runc/k8s.io --log /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/log.json --log-format json --systemd-cgroup create --bundle /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc --pid-file /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/init.pid abc",
			Invocation{Command: "create", Bundle: "/run/containerd/io.containerd.runtime.v2.task/k8s.io/abc"},
		},
		{"globals with equals", "--root=/r --log=/l --log-format=json create -b /b c", Invocation{Command: "create", Bundle: "/b"}},
		{"criu and rootless", "--criu /usr/sbin/criu --rootless false create -b /b c", Invocation{Command: "create", Bundle: "/b"}},
		{"crun globals", "--cgroup-manager systemd --log-level debug --root /r create --bundle /b c", Invocation{Command: "create", Bundle: "/b"}},
		{"debug is boolean", "--debug create c", Invocation{Command: "create"}},
		{"value flags skip values", "create --pid-file -b --console-socket /s --preserve-fds 2 c", Invocation{Command: "create"}},
		{"double dash ends globals", "--root /r -- create -b /b c", Invocation{Command: "create", Bundle: "/b"}},
		{"double dash ends create options", "create c -- -b /b", Invocation{Command: "create"}},
		{"bundle without value", "create c --bundle", Invocation{Command: "create"}},
		{"lone dash is an argument", "- create", Invocation{Command: "-"}},
		// A bundle is only looked for where it makes a container.
		{"exec", "--root /r exec -t c sh", Invocation{Command: "exec"}},
		{"exec with -b lookalike", "exec c ls -b /b", Invocation{Command: "exec"}},
		{"delete", "--root /r delete --force c", Invocation{Command: "delete"}},
		{"state", "state c", Invocation{Command: "state"}},
		{"features", "features", Invocation{Command: "features"}},
		{"restore is passed through", "restore --bundle /b c", Invocation{Command: "restore"}},
		{"value of a global is not the command", "--root create run", Invocation{Command: "run"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Parse(strings.Fields(tt.args))
			if got != tt.want {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.args, got, tt.want)
			}
		})
	}
}

func TestCreates(t *testing.T) {
	for cmd, want := range map[string]bool{"create": true, "run": true, "exec": false, "start": false, "restore": false, "": false} {
		if got := (Invocation{Command: cmd}).Creates(); got != want {
			t.Errorf("Creates(%q) = %v, want %v", cmd, got, want)
		}
	}
}

func TestAsksVersion(t *testing.T) {
	for args, want := range map[string]bool{
		"--version":           true,
		"-v":                  true,
		"-V":                  true,
		"-version":            true,
		"":                    false,
		"--version --root /r": false,
		"--root /r --version": false,
		"create --version":    false,
		"state --version":     false,
		"--versions":          false,
		"version":             false,
		"--debug":             false,
	} {
		if got := AsksVersion(strings.Fields(args)); got != want {
			t.Errorf("AsksVersion(%q) = %v, want %v", args, got, want)
		}
	}
}
