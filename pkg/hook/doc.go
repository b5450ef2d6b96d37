// Package hook holds the decisions of lxcfs-hook, the OCI createRuntime hook
// that bind-mounts the views served by lxcfs-fused (or LXCFS) over a
// container's own /proc and /sys files: parsing the runtime's state, loading
// the bundle's config, deciding whether a container is served, mapping the
// served files to targets in the container, and injecting the hook into a
// config.json.
//
// Nothing here mounts anything: package mountns does the mounting, so every
// decision can be tested without root.
package hook
