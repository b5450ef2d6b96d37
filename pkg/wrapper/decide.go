package wrapper

import "github.com/lxcfs-oci/lxcfs-oci/pkg/hook"

// Plan is what the wrapper does to a bundle on create or run.
type Plan struct {
	// Inject says whether to add the hook to config.json.
	Inject bool
	// HookArgs are the hook's arguments when Inject.
	HookArgs []string
	// Required: the container must not start without the views (config
	// failClosed, or io.lxcfs.required / LXCFS_REQUIRED=true).
	Required bool
	// Reason explains Inject for the log.
	Reason string
	// Sysinfo: also send the container's sysinfo(2) to lxcfs-fused's
	// listener (config sysinfo, or io.lxcfs.sysinfo / LXCFS_SYSINFO).
	Sysinfo bool
}

// Decide applies the hook's opt-in rules (hook.Decide) at create time, to
// the bundle's annotations and the environment variables of its process,
// so a container that is not served gets no hook at all and starts exactly
// as with the plain runtime. A container that is served gets the hook with
// --always: the decision is made, and the hook, which reads only
// annotations, still honours an io.lxcfs.enabled=false among them.
func Decide(c Config, annotations map[string]string, env []string) Plan {
	merged := EnvAnnotations(env)
	// Annotations are set by the engine or the orchestrator; they win over
	// what the image or the user put in the environment.
	for k, v := range annotations {
		merged[k] = v
	}
	mode := hook.ModeAlways
	if c.Mode == ModeOptIn {
		mode = hook.ModeOptIn
	}
	d := hook.Decide(merged, mode, c.FailClosed)
	if !d.Serve {
		return Plan{Reason: d.Reason}
	}
	return Plan{
		Inject:   true,
		HookArgs: HookArgs(HookOptions{LXCFSRoot: c.LXCFSRoot, Always: true, FailClosed: d.Required, LogFile: c.LogFile, StateDir: c.StateDir}),
		Required: d.Required,
		Reason:   d.Reason,
		Sysinfo:  hook.WantSysinfo(merged, c.SysinfoOn()),
	}
}
