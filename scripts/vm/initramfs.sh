#!/usr/bin/env bash
# Makes an initramfs from busybox-static and a kernel package's modules.
#   initramfs.sh EXTRACTED_PACKAGE_ROOT KERNEL_VERSION OUTPUT.gz
# It holds /init (scripts/vm/init), busybox, and the modules the guest needs
# to reach the host's root filesystem (virtio, 9p), to overlay it, and to
# serve FUSE, decompressed (busybox insmod takes plain .ko) and listed in
# /modules.order dependency-first, as depmod's modules.dep says.
set -euo pipefail
root=$1 kver=$2 output=$3
here=$(cd "$(dirname "$0")" && pwd)
want=(virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci
	9pnet netfs fscache 9p 9pnet_virtio fuse overlay)
# Merged into netfs since Linux 6.4.
optional=" fscache "

mods=$root/lib/modules/$kver
depmod -b "$root" "$kver"
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{bin,dev,proc,sys,newroot,lib/modules}

declare -A deps=() seen=()
while IFS=: read -r mod rest; do
	deps[$mod]=$rest
done <"$mods/modules.dep"
order=()
visit() { # deps first; modules.dep lists them nearest first, so walk it backwards
	local m=$1 d i
	[ -n "${seen[$m]:-}" ] && return
	seen[$m]=1
	read -ra d <<<"${deps[$m]}"
	for ((i = ${#d[@]} - 1; i >= 0; i--)); do visit "${d[$i]}"; done
	order+=("$m")
}
for name in "${want[@]}"; do
	m=$(awk -F: -v n="$name" '{f=$1; sub(".*/", "", f); sub(/\.ko(\.[a-z]+)?$/, "", f); gsub("-", "_", f); if (f == n) {print $1; exit}}' "$mods/modules.dep")
	if [ -n "$m" ]; then
		visit "$m"
	elif [[ $optional != *" $name "* ]] &&
		! grep -q "/$name.ko\$" "$mods/modules.builtin" 2>/dev/null &&
		! grep -q "/${name//_/-}.ko\$" "$mods/modules.builtin" 2>/dev/null; then
		echo "initramfs.sh: module $name neither built in nor in the package" >&2
		exit 1
	fi
done
for m in "${order[@]}"; do
	base=$(basename "$m")
	case $base in
	*.xz) xz -dc "$mods/$m" >"$tree/lib/modules/${base%.xz}" ;;
	*.zst) zstd -qdc "$mods/$m" >"$tree/lib/modules/${base%.zst}" ;;
	*.gz) gzip -dc "$mods/$m" >"$tree/lib/modules/${base%.gz}" ;;
	*) cp "$mods/$m" "$tree/lib/modules/$base" ;;
	esac
	echo "${base%.ko*}.ko" >>"$tree/modules.order"
done
cp /bin/busybox "$tree/bin/busybox"
ln -s busybox "$tree/bin/sh"
install -m 0755 "$here/init" "$tree/init"
(cd "$tree" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$output"
