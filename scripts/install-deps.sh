#!/usr/bin/env bash
# Installs, from Debian packages, what building and testing lxcfs-oci needs
# on this machine, skipping what is already there. Run as root.
#   fuse3          fusermount3, which bazil.org/fuse mounts through
#   runc, podman   the runtimes the integration tests and the demo drive
#   busybox-static a whole container rootfs in one binary
#   lxcfs          the reference implementation, for side-by-side checks
#   util-linux     unshare and nsenter; lscpu, run in test containers
#   sysstat, procps, python3-minimal
#                  sar, mpstat, vmstat and python3, run in test containers
#                  to show each reports the container's CPUs and counters
#   containerd     containerd 1.6 and ctr, for the runtime wrapper's tests
#   docker.io      dockerd 20.10, same; it installs beside a docker client
#                  not from a package (/usr/local/bin/docker), and the tests
#                  start both daemons themselves on private sockets
#   crun           the second runtime, proven on pure cgroup v2 in make test-vm
# With --vm, what make test-vm needs on top (scripts/vm/test-vm.sh):
#   qemu-system-x86 the emulator the test kernels boot in
#   kmod, xz-utils  depmod and unxz, to put the kernel's modules in an initramfs
set -euo pipefail

want=()
need() { command -v "$1" >/dev/null 2>&1 || want+=("$2"); }
need fusermount3 fuse3
need runc runc
need busybox busybox-static
need unshare util-linux
need nsenter util-linux
need lscpu util-linux
if [ "${1:-}" = "--vm" ]; then
	need qemu-system-x86_64 qemu-system-x86
	need depmod kmod
	need xz xz-utils
fi
if [ "${1:-}" != "--minimal" ]; then
	need crun crun
	need podman podman
	need lxcfs lxcfs
	need containerd containerd
	need ctr containerd
	need dockerd docker.io
	# runc 1.2.6 is built below with cgo and seccomp.
	needpkg() { dpkg -s "$1" >/dev/null 2>&1 || want+=("$1"); }
	needpkg gcc
	needpkg libseccomp-dev
	needpkg pkg-config
	need sar sysstat
	need mpstat sysstat
	need vmstat procps
	[ -x /usr/bin/python3 ] || want+=(python3-minimal)
fi

if [ ${#want[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "install-deps: missing ${want[*]}; run as root or install them with apt-get" >&2
		exit 1
	fi
	echo "install-deps: installing ${want[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${want[@]}" >/dev/null
fi
# The lxcfs package starts its own daemon at /var/lib/lxcfs where systemd
# runs; the tests start their own instances on private directories.

# containerd 2.4 (with its runc shim and ctr), crictl and runc 1.2.6 for the
# NRI and CRI tests, built from Go modules into a fixed directory when
# absent. Debian's containerd is 1.6, without NRI; runc 1.2.6 is the newest
# whose module builds from a module download (later ones carry replace
# lines). CRITEST_DIR is where integration/engine_cri_test.go looks.
if [ "${1:-}" != "--minimal" ]; then
	CRITEST_DIR=/usr/local/lib/lxcfs-oci-test
	CONTAINERD_VERSION=v2.4.2
	CRICTL_VERSION=v1.37.0
	RUNC_VERSION=v1.2.6
	bin="$CRITEST_DIR/bin"
	mkdir -p "$bin"
	stamp() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
	built() { echo "$2" >"$bin/.$1.version"; }
	for tool in containerd containerd-shim-runc-v2 ctr; do
		if ! stamp "$tool" "$CONTAINERD_VERSION"; then
			echo "install-deps: building $tool $CONTAINERD_VERSION" >&2
			GOBIN="$bin" CGO_ENABLED=0 go install -tags "no_btrfs no_devmapper no_zfs" \
				"github.com/containerd/containerd/v2/cmd/$tool@$CONTAINERD_VERSION"
			built "$tool" "$CONTAINERD_VERSION"
		fi
	done
	if ! stamp crictl "$CRICTL_VERSION"; then
		echo "install-deps: building crictl $CRICTL_VERSION" >&2
		GOBIN="$bin" CGO_ENABLED=0 go install "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
		built crictl "$CRICTL_VERSION"
	fi
	if ! stamp runc "$RUNC_VERSION"; then
		echo "install-deps: building runc $RUNC_VERSION" >&2
		src=$(GOFLAGS=-mod=mod go mod download -json "github.com/opencontainers/runc@$RUNC_VERSION" |
			sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
		work=$(mktemp -d)
		cp -r "$src/." "$work"
		chmod -R u+w "$work"
		(cd "$work" && CGO_ENABLED=1 go build -mod=mod -buildvcs=false -tags seccomp -o "$bin/runc" .)
		rm -rf "$work"
		built runc "$RUNC_VERSION"
	fi
fi
