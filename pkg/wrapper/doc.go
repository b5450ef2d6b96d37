// Package wrapper holds the decisions of lxcfs-runc, the runc-compatible
// runtime wrapper for engines that read no hooks.d (Docker, containerd,
// Kubernetes through a RuntimeClass): finding the subcommand and the bundle
// in a runtime's argv, resolving the wrapper's configuration, deciding
// whether a container gets the hook, and the hook's arguments.
//
// Nothing here edits a file or executes anything, so every decision is
// tested without root; pkg/hookrun does the injecting and the exec.
package wrapper
