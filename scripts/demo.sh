#!/usr/bin/env bash
# demo.sh: see lxcfs-oci work. Starts lxcfs-fused on a temporary mountpoint,
# runs a busybox container with runc (64 MiB, cpuset 0, half a CPU of quota)
# whose config carries lxcfs-hook, and prints what the container sees beside
# what the host sees. Everything it starts is stopped and removed on exit,
# failure included. Run as root, after `make build` (binaries in bin/, or
# BIN_DIR=DIR).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_DIR=${BIN_DIR:-$here/../bin}
BIN_DIR=$(cd "$BIN_DIR" && pwd)
FUSED=$BIN_DIR/lxcfs-fused
HOOK=$BIN_DIR/lxcfs-hook

die() { echo "demo: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root: it mounts FUSE and runs a container (sudo make demo)"
for b in "$FUSED" "$HOOK"; do
	[ -x "$b" ] || die "$b missing: run 'make build' first, or set BIN_DIR"
done

# Debian packages, installed only when missing.
missing=()
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v fusermount3 >/dev/null 2>&1 || missing+=(fuse3)
[ -x /usr/bin/free ] || missing+=(procps)
if ! dpkg -s busybox-static >/dev/null 2>&1; then
	# Any statically linked busybox does; the package is the sure way.
	if ! { command -v busybox >/dev/null 2>&1 && file -L "$(command -v busybox)" 2>/dev/null | grep -q 'statically linked'; }; then
		missing+=(busybox-static)
	fi
fi
if [ ${#missing[@]} -gt 0 ]; then
	command -v apt-get >/dev/null 2>&1 || die "install ${missing[*]} (no apt-get here)"
	echo "demo: installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ -e /dev/fuse ] || die "/dev/fuse missing: load the fuse module (modprobe fuse)"
BUSYBOX=$(command -v busybox)

TMP=$(mktemp -d /tmp/lxcfs-demo.XXXXXX)
MNT=$TMP/lxcfs
BUNDLE=$TMP/bundle
STATE=$TMP/runc
ID=lxcfs-demo-$$
FUSED_PID=

mounted() { grep -q " $1 " /proc/self/mountinfo; }

cleanup() {
	local rc=$?
	set +e
	runc --root "$STATE" delete --force "$ID" >/dev/null 2>&1
	if [ -n "$FUSED_PID" ] && kill -0 "$FUSED_PID" 2>/dev/null; then
		kill -TERM "$FUSED_PID"
		for _ in $(seq 100); do kill -0 "$FUSED_PID" 2>/dev/null || break; sleep 0.1; done
		kill -0 "$FUSED_PID" 2>/dev/null && kill -KILL "$FUSED_PID"
		wait "$FUSED_PID" 2>/dev/null
	fi
	mounted "$MNT" && umount -l "$MNT"
	if [ $rc -ne 0 ] && [ -s "$TMP/fused.log" ]; then
		echo "--- lxcfs-fused log ---" >&2
		tail -20 "$TMP/fused.log" >&2
	fi
	if [ $rc -ne 0 ] && [ -s "$TMP/hook.log" ]; then
		echo "--- lxcfs-hook log ---" >&2
		cat "$TMP/hook.log" >&2
	fi
	rm -rf "$TMP"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "demo: starting lxcfs-fused on $MNT"
"$FUSED" --mountpoint "$MNT" --state-dir "$TMP/state" >"$TMP/fused.log" 2>&1 &
FUSED_PID=$!
for _ in $(seq 100); do
	if mounted "$MNT" && head -1 "$MNT/proc/meminfo" >/dev/null 2>&1; then break; fi
	kill -0 "$FUSED_PID" 2>/dev/null || die "lxcfs-fused exited: $(tail -5 "$TMP/fused.log")"
	sleep 0.1
done
mounted "$MNT" || die "lxcfs-fused did not serve $MNT within 10s"

# A rootfs in one file: busybox and its applet links.
mkdir -p "$BUNDLE/rootfs"/{bin,proc,sys,dev,tmp,etc,usr}
# The host's /usr, bound read-only, brings procps free(1), which reads
# /proc/meminfo (busybox free asks sysinfo(2) instead); the loader is found
# through the merged-/usr links.
for l in lib lib64; do [ -e "/usr/$l" ] && ln -s "usr/$l" "$BUNDLE/rootfs/$l"; done
cp "$BUSYBOX" "$BUNDLE/rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$BUNDLE/rootfs/bin/$applet"
done

# The view printed on both sides, one "key|value" a line.
cat >"$BUNDLE/rootfs/view.sh" <<'SH'
echo "MemTotal|$(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2-)"
echo "free total (procps)|$(/usr/bin/free -k | awk '/Mem:/ {print $2 " kB"}')"
echo "free total (busybox)|$(busybox free | awk '/Mem:/ {print $2 " kB"}')"
echo "free used (busybox)|$(busybox free | awk '/Mem:/ {print $3 " kB"}')"
echo "getconf _PHYS_PAGES|$(/usr/bin/getconf _PHYS_PAGES)"
echo "processors in cpuinfo|$(grep -c ^processor /proc/cpuinfo)"
echo "cpu online|$(cat /sys/devices/system/cpu/online)"
echo "nproc|$(nproc)"
echo "uptime (s)|$(cut -d' ' -f1 /proc/uptime)"
SH

# `runc spec` gives the defaults; the three limits and the command are set
# here with sed on its well-known layout, so no JSON tool is needed.
runc spec --bundle "$BUNDLE"
sed -i \
	-e 's/"terminal": true/"terminal": false/' \
	-e 's/"sh"$/"sh", "\/view.sh"/' \
	-e 's|"mounts": \[|"mounts": [\n\t\t{"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro"]},|' \
	-e 's/"resources": {/"resources": {\n\t\t\t"memory": {"limit": 67108864},\n\t\t\t"cpu": {"cpus": "0", "quota": 50000, "period": 100000},/' \
	"$BUNDLE/config.json"
grep -q '"limit": 67108864' "$BUNDLE/config.json" || die "could not set the limits in $BUNDLE/config.json (runc spec layout changed?)"
grep -q '"/view.sh"' "$BUNDLE/config.json" || die "could not set the command in $BUNDLE/config.json"
grep -q '"destination": "/usr"' "$BUNDLE/config.json" || die "could not add the /usr mount to $BUNDLE/config.json"
# inject also sends the container's sysinfo(2) (busybox free, glibc's
# sysconf(_SC_PHYS_PAGES)) to lxcfs-fused through a seccomp rule, by
# default, since lxcfs-fused listens.
"$HOOK" inject --bundle "$BUNDLE" --lxcfs-root "$MNT" --log-file "$TMP/hook.log" --state-dir "$TMP/state" >/dev/null

echo "demo: running busybox with runc: memory 64 MiB, cpuset 0, cpu quota 50000/100000"
runc --root "$STATE" run --bundle "$BUNDLE" "$ID" >"$TMP/container.out" </dev/null
sh "$BUNDLE/rootfs/view.sh" >"$TMP/host.out"

echo
printf '%-24s %-28s %s\n' "" "container (lxcfs-hook)" "host"
printf '%-24s %-28s %s\n' "" "----------------------" "----"
while IFS='|' read -r key cval; do
	hval=$(grep -F "$key|" "$TMP/host.out" | head -1 | cut -d'|' -f2-)
	printf '%-24s %-28s %s\n' "$key" "$cval" "$hval"
done <"$TMP/container.out"
echo
echo "(procps free, like top, ps and monitoring agents, reads /proc/meminfo, a bound file;"
echo " busybox free and getconf ask sysinfo(2), which lxcfs-fused answers through seccomp)"
echo "hook log: $(grep -o 'msg="views mounted".*' "$TMP/hook.log" | head -1)"
