#!/usr/bin/env bash
# make test-vm: the integration tests on Debian's own kernels with pure
# cgroup v2, each booted under qemu (software emulation, no KVM needed).
#   VM_KERNELS   kernel series to boot, default "6.1 6.12" (Debian 12 and
#                its backports; 6.1 lacks FUSE_NOTIFY_RESEND, 6.12 has it)
#   VM_CACHE     kernel packages and initramfs, default /var/cache/lxcfs-oci-vm
#   VM_GROUPS    regular expression of the groups below to run, default all
#   LOAD_SECONDS the load test's duration in the VM, default 5
#   VM_ACCEL     qemu's -accel, default tcg,thread=single: one host thread
#                emulates both CPUs. Multi-threaded TCG is faster but
#                crashed 6.12 guests (an int3 in code the kernel was
#                patching) in 2 of 3 boots on a loaded machine.
#   VM_GROUP_TIMEOUT  seconds, replaces every group's -test.timeout (to see
#                what a hang looks like: VM_GROUPS=reliability VM_GROUP_TIMEOUT=60)
# The guest's root is this machine's own root filesystem, read-only over 9p
# under a tmpfs overlay, so it runs the same runc, crun, podman and busybox
# as the host, and the test binary built here from this checkout (a
# checkout under /tmp, /run, /var/log or /dev/shm, which the guest covers
# with tmpfs, is copied to VM_CACHE/checkout first). Logs: build/vm/KERNEL.log. Prints a table of every
# test per kernel and exits non-zero if any failed, hung or did not report.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
here=$repo/scripts/vm
cache=${VM_CACHE:-/var/cache/lxcfs-oci-vm}
run=$repo/build/vm
[ "$(id -u)" = 0 ] || { echo "test-vm: run as root (FUSE, cgroups, containers in the guest)" >&2; exit 1; }
case $cache in /tmp/* | /run/* | /var/log/* | /dev/shm/*)
	echo "test-vm: VM_CACHE=$cache would be hidden in the guest (tmpfs there)" >&2; exit 1 ;;
esac
case $repo in /tmp/* | /run/* | /var/log/* | /dev/shm/*)
	# The guest covers these with tmpfs: run from a copy of the tree
	# (CI checks out wherever it likes).
	stage=$cache/checkout
	echo "test-vm: the checkout $repo would be hidden in the guest (tmpfs there); running from a copy in $stage" >&2
	rm -rf "$stage"
	mkdir -p "$stage"
	tar -C "$repo" --exclude=./.git --exclude=./build -cf - . | tar -C "$stage" -xf -
	exec "$stage/scripts/vm/test-vm.sh" "$@" ;;
esac
"$repo/scripts/install-deps.sh" --vm

# Built here, where Go is several times faster than in the emulated guest,
# as integration/main_test.go would build them.
rm -rf "$run/bin"
mkdir -p "$run/bin"
(
	cd "$repo"
	ld="-X github.com/lxcfs-oci/lxcfs-oci/pkg/version.Version=v0.0.0-integration"
	for p in cmd/lxcfs-fused cmd/lxcfs-hook cmd/lxcfs-hook-cli cmd/lxcfs-runc cmd/lxcfs-nri integration/testdata/sysinfoprog integration/testdata/fdholder integration/testdata/psiprog; do
		CGO_ENABLED=0 go build -tags "urfave_cli_no_docs lxcfs_test_stall" -ldflags "$ld" -o "$run/bin/$(basename $p)" "./$p"
	done
	go test -c -o "$run/integration.test" ./integration
)

# name;environment;-test.run;-test.timeout. The crun group runs the hook's
# runc tests again with crun, which this host's cgroup v1 hybrid blocks.
# Engines (Docker, containerd, CRI) and make install are left to make test:
# they need no particular kernel and take most of the emulated time.
cat >"$run/groups.all" <<GROUPS
views;;^(TestFused|TestOps);300s
hook-runc;;^(TestHookRunc|TestHookHostile|TestHookLXCFSBackend|TestIdentitySpareIDs|TestIdentitySharedPidNamespaces);420s
hook-crun;LXCFS_OCI_TEST_RUNTIME=crun;^(TestHookRunc|TestHookHostile|TestIdentitySpareIDs);420s
podman;;^TestPodmanHooksDir\$;420s
load;LOAD_SECONDS=${LOAD_SECONDS:-5};^TestLoadManyContainers\$;300s
reliability;;^TestReliability;900s
cache;;^TestCache;300s
sysinfo;;^TestSysinfo;420s
psi;;^TestPSI;300s
GROUPS
awk -F';' -v OFS=';' -v re="${VM_GROUPS:-.}" -v t="${VM_GROUP_TIMEOUT:-}" \
	'$1 ~ re { if (t != "") $4 = t "s"; print }' "$run/groups.all" >"$run/groups.selected"
cat >"$run/guest.env" <<ENV
CHECKOUT=$repo
TESTBIN=$run/integration.test
BINS=$run/bin
ENV
# The guest's own deadline per group is its -test.timeout plus a minute;
# this one only catches a guest that stopped answering altogether.
budget=$(awk -F';' '{sub(/s$/, "", $4); t += $4 + 90} END {print t + 300}' "$run/groups.selected")

results=() times=()
for series in ${VM_KERNELS:-6.1 6.12}; do
	log=$run/$series.log
	rm -f "$log"
	if ! kdir=$("$here/kernel.sh" "$series" "$cache"); then
		echo "test-vm: no kernel for $series (see above); skipping it" >&2
		times+=("$series: not run")
		continue
	fi
	start=$(date +%s)
	cp "$run/groups.selected" "$run/groups"
	# The guest kernel sometimes oopses on an int3 in the middle of code it
	# is patching (static keys), a race of qemu's multi-threaded emulation;
	# then the groups it had not finished run again in a fresh boot, twice
	# at most.
	for attempt in 1 2 3; do
		echo "test-vm: booting $(basename "$kdir") (log $log, at most ${budget}s)" >&2
		timeout -k 10 "$budget" qemu-system-x86_64 -nodefaults -no-reboot -display none -monitor none \
			-accel "${VM_ACCEL:-tcg,thread=single}" -cpu max -m 4096 -smp 2 -nic none -serial stdio \
			-kernel "$kdir/vmlinuz" -initrd "$kdir/initrd.gz" \
			-append "console=ttyS0 panic=-1 loglevel=4 LXCVM_GUEST=$here/guest.sh LXCVM_RUN=$run" \
			-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,readonly=on,multidevs=remap \
			</dev/null 2>&1 | tee -a "$log" | grep --line-buffered -E '^(--- |VM-|panic:|init:)|Kernel panic' || true
		if [ "$attempt" = 3 ] || grep -q '^VM-DONE' "$log" || ! grep -q 'Kernel panic' "$log"; then
			break
		fi
		ended=$(sed -n 's/^VM-GROUP-END \([^ ]*\).*/\1/p' "$log" | tr '\n' ' ')
		awk -F';' -v ended=" $ended" 'index(ended, " " $1 " ") == 0' "$run/groups.selected" >"$run/groups"
		echo "test-vm: the guest kernel crashed; again for the groups left: $(cut -d';' -f1 "$run/groups" | tr '\n' ' ')" >&2
	done
	elapsed=$(($(date +%s) - start))
	times+=("$series: $((elapsed / 60))m$((elapsed % 60))s")
	results+=("$series=$log")
done

echo
rc=0
if [ ${#results[@]} -gt 0 ]; then
	"$here/report.sh" "${results[@]}" || rc=1
else
	rc=1
fi
echo
echo "wall time per kernel (boot, tests, power-off): ${times[*]}"
exit $rc
