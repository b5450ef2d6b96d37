#!/bin/bash
# PID 1 of the test VM after switch_root (scripts/vm/init): the host's root
# filesystem read-only under a tmpfs overlay. Makes a pure cgroup v2 host,
# runs each group of integration tests that the host listed in
# LXCVM_RUN/groups, writes everything to the serial console, and powers off.
# A group that outlives its -test.timeout by a minute is reported stuck; its
# FUSE connections are then aborted so that the next group starts clean.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
exec </dev/null >/dev/console 2>&1

mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts 2>/dev/null ||
	{ mkdir -p /dev/pts && mount -t devpts devpts /dev/pts; }
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
for d in /run /tmp /var/log /var/tmp; do mount -t tmpfs tmpfs "$d"; done
mount -t cgroup2 none /sys/fs/cgroup
echo "+memory +cpu +cpuset +io +pids" >/sys/fs/cgroup/cgroup.subtree_control
mount -t fusectl none /sys/fs/fuse/connections
ip link set lo up
hostname lxcfs-vm
# Kernel messages stay in dmesg, out of the test output.
echo 1 >/proc/sys/kernel/printk

. "$LXCVM_RUN/guest.env"
echo "VM-KERNEL $(uname -r) cgroup: $(cat /sys/fs/cgroup/cgroup.subtree_control)"

abort_fuse() {
	for c in /sys/fs/fuse/connections/*/abort; do
		[ -e "$c" ] && echo 1 >"$c"
	done
}

cd "$CHECKOUT/integration"
while IFS=';' read -r name envs regex timeout; do
	[ -z "$name" ] && continue
	case $name in \#*) continue ;; esac
	echo "VM-GROUP-START $name"
	start=$(date +%s)
	env $envs LXCFS_OCI_TEST_BINS="$BINS" "$TESTBIN" -test.v -test.count=1 \
		-test.run "$regex" -test.timeout "$timeout" &
	pid=$! rc=
	# Go's -test.timeout panics naming the stuck test; a test blocked in an
	# uninterruptible read may keep the process from ending even then.
	limit=$(($(date +%s) + ${timeout%s} + 60))
	while [ -d /proc/$pid ] && [ "$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)" != Z ]; do
		if [ "$(date +%s)" -ge "$limit" ]; then
			echo "VM-GROUP-STUCK $name"
			ps -eo pid,stat,wchan:32,args | awk '$2 ~ /D/'
			abort_fuse
			sleep 5
			kill -9 "$pid" 2>/dev/null
			rc=stuck
			break
		fi
		sleep 2
	done
	[ -z "$rc" ] && { wait "$pid"; rc=$?; }
	echo "VM-GROUP-END $name rc=$rc seconds=$(($(date +%s) - start))"
	abort_fuse
done <"$LXCVM_RUN/groups"
echo "VM-DONE"
sync
poweroff -f
