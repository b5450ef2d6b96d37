package nriplugin

import (
	"slices"
	"strings"
	"testing"

	"github.com/containerd/nri/pkg/api"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

func TestAdjust(t *testing.T) {
	optIn := Config{HookPath: "/usr/local/bin/lxcfs-hook", Mode: wrapper.ModeOptIn}
	all := Config{HookPath: "/usr/local/bin/lxcfs-hook", Mode: wrapper.ModeAll}
	for _, tt := range []struct {
		name      string
		cfg       Config
		pod, ctr  map[string]string
		ctrName   string
		env       []string
		wantServe bool
		wantArgs  []string // checked when served
	}{
		{name: "unannotated pod, opt-in", cfg: optIn},
		{name: "pod io.lxcfs.enabled", cfg: optIn, pod: map[string]string{hook.AnnotationEnabled: "true"}, wantServe: true,
			wantArgs: []string{"lxcfs-hook", "--always", "create-runtime"}},
		{name: "pod PouchContainer annotation", cfg: optIn, pod: map[string]string{hook.AnnotationPouchEnabled: "true"}, wantServe: true},
		{name: "pod opts in, container opts out", cfg: optIn, pod: map[string]string{hook.AnnotationEnabled: "true"},
			ctr: map[string]string{hook.AnnotationEnabled: "false"}},
		{name: "container opts in alone", cfg: optIn, ctr: map[string]string{hook.AnnotationPouchEnabled: "true"}, wantServe: true},
		{name: "per-container pod annotation opts one out", cfg: optIn, ctrName: "sidecar",
			pod: map[string]string{hook.AnnotationEnabled: "true", hook.AnnotationEnabled + "/container.sidecar": "false"}},
		{name: "per-container pod annotation for another container", cfg: optIn, ctrName: "app", wantServe: true,
			pod: map[string]string{hook.AnnotationEnabled: "true", hook.AnnotationEnabled + "/container.sidecar": "false"}},
		{name: "per-container pod annotation opts one in", cfg: optIn, ctrName: "app", wantServe: true,
			pod: map[string]string{hook.AnnotationEnabled + "/container.app": "true"}},
		{name: "typo counts as absent", cfg: optIn, pod: map[string]string{hook.AnnotationEnabled: "yes please"}},
		{name: "mode all, unannotated", cfg: all, wantServe: true},
		{name: "mode all, pod opts out", cfg: all, pod: map[string]string{hook.AnnotationEnabled: "false"}},
		{name: "mode all, environment opts out", cfg: all, env: []string{"PATH=/bin", "LXCFS_ENABLED=false"}},
		{name: "required annotation writes --fail-closed", cfg: optIn, wantServe: true,
			pod:      map[string]string{hook.AnnotationEnabled: "true", hook.AnnotationRequired: "true"},
			wantArgs: []string{"lxcfs-hook", "--always", "--fail-closed", "create-runtime"}},
		{name: "hook flags passed on", cfg: Config{HookPath: "/opt/bin/lxcfs-hook", Mode: wrapper.ModeAll, LXCFSRoot: "/run/views", LogFile: "-", StateDir: "/run/st"},
			wantServe: true,
			wantArgs:  []string{"lxcfs-hook", "--lxcfs-root", "/run/views", "--always", "--log-file", "-", "--state-dir", "/run/st", "create-runtime"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pod := &api.PodSandbox{Name: "p", Namespace: "default", Annotations: tt.pod}
			ctr := &api.Container{Name: tt.ctrName, Annotations: tt.ctr, Env: tt.env}
			adj, reason := Adjust(tt.cfg, pod, ctr)
			if reason == "" {
				t.Error("no reason given")
			}
			if !tt.wantServe {
				if adj != nil {
					t.Fatalf("container served (%s), want not: %v", reason, adj.GetHooks())
				}
				return
			}
			if adj == nil {
				t.Fatalf("container not served (%s), want served", reason)
			}
			hooks := adj.GetHooks()
			if len(hooks.GetPrestart())+len(hooks.GetCreateContainer())+len(hooks.GetStartContainer())+len(hooks.GetPoststart())+len(hooks.GetPoststop()) != 0 {
				t.Errorf("hooks other than createRuntime added: %v", hooks)
			}
			cr := hooks.GetCreateRuntime()
			if len(cr) != 1 {
				t.Fatalf("%d createRuntime hooks, want 1", len(cr))
			}
			if cr[0].Path != tt.cfg.HookPath {
				t.Errorf("hook path %q, want %q", cr[0].Path, tt.cfg.HookPath)
			}
			if got := cr[0].GetTimeout().GetValue(); got != hook.HookTimeout {
				t.Errorf("timeout %d, want %d", got, hook.HookTimeout)
			}
			if tt.wantArgs != nil && !slices.Equal(cr[0].Args, tt.wantArgs) {
				t.Errorf("args %q, want %q", cr[0].Args, tt.wantArgs)
			}
			if !slices.Contains(cr[0].Args, "--always") {
				t.Errorf("args %q lack --always: the hook would decide again without the pod's annotations", cr[0].Args)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{HookPath: DefaultHookPath, Mode: wrapper.ModeOptIn}
	if err := good.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for name, c := range map[string]Config{
		"relative hook":  {HookPath: "lxcfs-hook", Mode: wrapper.ModeOptIn},
		"unknown mode":   {HookPath: DefaultHookPath, Mode: "sometimes"},
		"relative root":  {HookPath: DefaultHookPath, Mode: wrapper.ModeAll, LXCFSRoot: "var/lib/lxcfs"},
		"relative state": {HookPath: DefaultHookPath, Mode: wrapper.ModeAll, StateDir: "run"},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.Contains(err.Error(), "\"") {
			t.Errorf("%s: error %q does not quote the value", name, err)
		}
	}
}
