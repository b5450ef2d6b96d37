#!/usr/bin/env bash
# Installs, from Debian packages, what building and testing lxcfs-oci needs
# on this machine, skipping what is already there. Run as root.
#   fuse3          fusermount3, which bazil.org/fuse mounts through
#   runc, podman   the runtimes the integration tests and the demo drive
#   busybox-static a whole container rootfs in one binary
#   lxcfs          the reference implementation, for side-by-side checks
#   util-linux     unshare and nsenter
#   containerd     containerd 1.6 and ctr, for the runtime wrapper's tests
#   docker.io      dockerd 20.10, same; it installs beside a docker client
#                  not from a package (/usr/local/bin/docker), and the tests
#                  start both daemons themselves on private sockets
set -euo pipefail

want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
need fusermount3 fuse3
need runc runc
need busybox busybox-static
need unshare util-linux
need nsenter util-linux
if [ "${1:-}" != "--minimal" ]; then
	need podman podman
	need lxcfs lxcfs
	need containerd containerd
	need ctr containerd
	need dockerd docker.io
fi

if [ ${#want[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing ${want[*]}; run as root or install them with apt-get" >&2
	exit 1
fi
echo "install-deps: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${want[@]}" >/dev/null
# The lxcfs package starts its own daemon at /var/lib/lxcfs where systemd
# runs; the tests start their own instances on private directories.
