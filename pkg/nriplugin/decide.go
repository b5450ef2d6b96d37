package nriplugin

import (
	"fmt"
	"maps"
	"path/filepath"
	"strings"

	"github.com/containerd/nri/pkg/api"

	"github.com/lxcfs-oci/lxcfs-oci/pkg/hook"
	"github.com/lxcfs-oci/lxcfs-oci/pkg/wrapper"
)

// DefaultHookPath is where make install and the DaemonSet put lxcfs-hook on
// the node; the runtime runs the hook from there, outside any container.
const DefaultHookPath = "/usr/local/bin/lxcfs-hook"

// Config is what the plugin writes into the hooks it adds.
type Config struct {
	// HookPath is the hook binary on the node (absolute).
	HookPath string
	// Mode is wrapper.ModeOptIn (default: only pods that opt in) or
	// wrapper.ModeAll (every pod unless it opts out).
	Mode string
	// LXCFSRoot, FailClosed, LogFile and StateDir are passed to the hook.
	LXCFSRoot  string
	FailClosed bool
	LogFile    string
	StateDir   string
}

// Validate checks the configuration before the plugin registers, so a
// typo is an error at start, not a hook that fails on every container.
func (c Config) Validate() error {
	if !filepath.IsAbs(c.HookPath) {
		return fmt.Errorf("hook path %q is not absolute: the runtime runs hooks by absolute path", c.HookPath)
	}
	switch c.Mode {
	case wrapper.ModeOptIn, wrapper.ModeAll:
	default:
		return fmt.Errorf("mode %q: want %q or %q", c.Mode, wrapper.ModeOptIn, wrapper.ModeAll)
	}
	for name, p := range map[string]string{"lxcfs root": c.LXCFSRoot, "state dir": c.StateDir} {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("%s %q is not an absolute path", name, p)
		}
	}
	return nil
}

// ContainerSuffix names one container in a pod annotation:
// io.lxcfs.enabled/container.NAME=false opts container NAME out. Kubernetes
// has no container annotations of its own, so this NRI convention is how a
// pod spec speaks about one of its containers.
const ContainerSuffix = "/container."

// Annotations are the annotations the opt-in rules see for one container:
// the pod's, then the pod's per-container ones (KEY/container.NAME), then
// the container's own as CRI passes them, each winning over the one before.
func Annotations(pod, container map[string]string, name string) map[string]string {
	out := map[string]string{}
	for k, v := range pod {
		if !strings.Contains(k, ContainerSuffix) {
			out[k] = v
		}
	}
	for k, v := range pod {
		if key, ctr, ok := strings.Cut(k, ContainerSuffix); ok && ctr == name && key != "" {
			out[key] = v
		}
	}
	maps.Copy(out, container)
	return out
}

// Adjust decides, with the hook's own opt-in rules, whether the container
// gets the createRuntime hook, and returns the adjustment that adds it (nil
// when it is not served) and the reason for the log. The hook gets the same
// arguments as one the runtime wrapper injects: --always, since the
// decision is made here, and --fail-closed when required.
func Adjust(c Config, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, string) {
	annotations := Annotations(pod.GetAnnotations(), ctr.GetAnnotations(), ctr.GetName())
	plan := wrapper.Decide(wrapper.Config{
		Mode:       c.Mode,
		LXCFSRoot:  c.LXCFSRoot,
		FailClosed: c.FailClosed,
		LogFile:    c.LogFile,
		StateDir:   c.StateDir,
	}, annotations, ctr.GetEnv())
	if !plan.Inject {
		return nil, plan.Reason
	}
	adj := &api.ContainerAdjustment{}
	adj.AddHooks(&api.Hooks{CreateRuntime: []*api.Hook{{
		Path:    c.HookPath,
		Args:    plan.HookArgs,
		Timeout: api.Int(hook.HookTimeout),
	}}})
	return adj, plan.Reason
}
