// Package configure computes the changes "lxcfs-hook configure" makes to
// container engines' configuration: Docker's daemon.json, containerd's
// config.toml and the hooks.d file of podman and CRI-O. Each function takes
// the current file's bytes and returns the new bytes, so the changes are
// tested as data and --dry-run shows exactly what would be written;
// cmd/lxcfs-hook-cli does the reading, backing up and writing.
package configure
