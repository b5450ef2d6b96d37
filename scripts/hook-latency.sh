#!/usr/bin/env bash
# hook-latency.sh [N]: how much lxcfs-hook adds to a container start.
# Times N (default 20) alternating `runc run` of a trivial busybox container
# (`true`) without and with the hook (views served by lxcfs-fused on a
# temporary mountpoint) and prints median and p90 of each and the
# difference. Run as root after `make build` (or BIN_DIR=DIR).
set -euo pipefail

N=${1:-20}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_DIR=$(cd "${BIN_DIR:-$here/../bin}" && pwd)
FUSED=$BIN_DIR/lxcfs-fused
HOOK=$BIN_DIR/lxcfs-hook

die() { echo "hook-latency: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
for b in "$FUSED" "$HOOK" "$(command -v runc || true)" "$(command -v busybox || true)"; do
	[ -n "$b" ] && [ -x "$b" ] || die "needs $FUSED, $HOOK, runc and busybox-static"
done

TMP=$(mktemp -d /tmp/lxcfs-latency.XXXXXX)
MNT=$TMP/lxcfs
STATE=$TMP/runc
FUSED_PID=
mounted() { grep -q " $1 " /proc/self/mountinfo; }
cleanup() {
	set +e
	for id in plain hooked; do runc --root "$STATE" delete --force "lat-$id-$$" >/dev/null 2>&1; done
	if [ -n "$FUSED_PID" ]; then
		kill -TERM "$FUSED_PID" 2>/dev/null
		wait "$FUSED_PID" 2>/dev/null
	fi
	mounted "$MNT" && umount -l "$MNT"
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$FUSED" --mountpoint "$MNT" >"$TMP/fused.log" 2>&1 &
FUSED_PID=$!
for _ in $(seq 100); do
	mounted "$MNT" && head -1 "$MNT/proc/meminfo" >/dev/null 2>&1 && break
	sleep 0.1
done
mounted "$MNT" || die "lxcfs-fused did not serve: $(tail -3 "$TMP/fused.log")"

mkbundle() {
	mkdir -p "$1/rootfs"/{bin,proc,sys,dev}
	cp "$(command -v busybox)" "$1/rootfs/bin/busybox"
	ln -s busybox "$1/rootfs/bin/true"
	ln -s busybox "$1/rootfs/bin/sh"
	runc spec --bundle "$1"
	sed -i -e 's/"terminal": true/"terminal": false/' -e 's/"sh"$/"true"/' "$1/config.json"
}
mkbundle "$TMP/plain"
mkbundle "$TMP/hooked"
"$HOOK" inject --bundle "$TMP/hooked" --lxcfs-root "$MNT" --log-file "$TMP/hook.log" --state-dir "$TMP/state" >/dev/null

run_ms() { # bundle id -> wall ms of runc run
	local t0 t1
	t0=$(date +%s%N)
	runc --root "$STATE" run --bundle "$1" "$2" </dev/null >/dev/null
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000))
}

# One warm-up each: page cache, first FUSE lookups.
run_ms "$TMP/plain" "lat-plain-$$" >/dev/null
run_ms "$TMP/hooked" "lat-hooked-$$" >/dev/null
: >"$TMP/plain.us"
: >"$TMP/hooked.us"
for _ in $(seq "$N"); do
	run_ms "$TMP/plain" "lat-plain-$$" >>"$TMP/plain.us"
	run_ms "$TMP/hooked" "lat-hooked-$$" >>"$TMP/hooked.us"
done
grep -q 'views mounted' "$TMP/hook.log" || die "the hook did not mount: $(tail -3 "$TMP/hook.log")"

pct() { # file percentile -> value (nearest rank)
	sort -n "$1" | awk -v p="$2" '{v[NR]=$1} END {i=int((p*NR+99)/100); if (i<1) i=1; print v[i]}'
}
pm=$(pct "$TMP/plain.us" 50); p9=$(pct "$TMP/plain.us" 90)
hm=$(pct "$TMP/hooked.us" 50); h9=$(pct "$TMP/hooked.us" 90)
ms() { awk -v u="$1" 'BEGIN {printf "%.1f ms", u/1000}'; }
echo "runc run of busybox true, $N alternating runs each (lxcfs-fused serving $MNT)"
printf '%-14s %-10s %s\n' "" median p90
printf '%-14s %-10s %s\n' "without hook" "$(ms "$pm")" "$(ms "$p9")"
printf '%-14s %-10s %s\n' "with hook" "$(ms "$hm")" "$(ms "$h9")"
printf '%-14s %-10s %s\n' "difference" "$(ms $((hm - pm)))" "$(ms $((h9 - p9)))"
echo "hook's own time (its log, median): $(grep -o 'took=[0-9.]*[mµu]*s' "$TMP/hook.log" | tail -n "$N" | sed 's/took=//' | sort -n | awk '{v[NR]=$0} END {print v[int((NR+1)/2)]}')"
