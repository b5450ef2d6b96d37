// Package nriplugin is the NRI plugin that adds lxcfs-hook to the OCI spec
// of the containers a pod opts in, through the runtime's node resource
// interface (containerd 1.7+, CRI-O 1.26+): no engine configuration, no
// runtime class. The decision (Adjust) is separate from the connection to
// the runtime (Run), which uses NRI's own stub.
package nriplugin
