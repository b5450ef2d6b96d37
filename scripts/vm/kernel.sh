#!/usr/bin/env bash
# Fetches one Debian kernel package and makes an initramfs for it.
#   kernel.sh 6.1|6.12 CACHE_DIR
# Prints the directory holding vmlinuz and initrd.gz. Downloads go to
# CACHE_DIR and are reused: a second run only extracts what is missing.
#   6.1   newest linux-image-6.1.0-N-amd64 from the machine's own sources
#         (bookworm, bookworm-security)
#   6.12  newest linux-image-6.12.*+deb12-amd64 from bookworm-backports,
#         through a private apt directory: the machine's sources are not
#         touched.
set -euo pipefail
series=$1 cache=$2
mkdir -p "$cache/debs"

apt_private=(-o APT::Sandbox::User=root)
case $series in
6.1) pattern='^linux-image-6\.1\.0-[0-9]+-amd64$' ;;
6.12)
	pattern='^linux-image-6\.12\.[0-9]+\+deb12(\.[0-9]+)?-amd64$'
	a=$cache/apt-backports
	mkdir -p "$a/lists/partial" "$a/archives/partial"
	echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main' \
		>"$a/sources.list"
	apt_private+=(-o "Dir::Etc::SourceList=$a/sources.list" -o Dir::Etc::SourceParts=/nonexistent
		-o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a" -o "Dir::Cache::archives=$a/archives")
	# A day-old index is good enough; refresh otherwise.
	if [ -z "$(find "$a/lists" -maxdepth 1 -name '*Packages*' -mtime -1 2>/dev/null)" ]; then
		apt-get "${apt_private[@]}" update -qq >&2 ||
			{ echo "kernel.sh: bookworm-backports unreachable" >&2; exit 2; }
	fi
	;;
*) echo "kernel.sh: unknown series $series (6.1 or 6.12)" >&2; exit 1 ;;
esac

pkg=$(apt-cache "${apt_private[@]}" search --names-only "$pattern" | awk '{print $1}' | sort -V | tail -n1)
[ -n "$pkg" ] || { echo "kernel.sh: no package matches $pattern" >&2; exit 2; }
out=$cache/kernels/$pkg
if [ ! -s "$out/initrd.gz" ]; then
	deb=$(ls "$cache/debs/${pkg}_"*.deb 2>/dev/null | tail -n1 || true)
	if [ -z "$deb" ]; then
		echo "kernel.sh: downloading $pkg" >&2
		(cd "$cache/debs" && apt-get "${apt_private[@]}" download -qq "$pkg" >&2)
		deb=$(ls "$cache/debs/${pkg}_"*.deb | tail -n1)
	fi
	rm -rf "$out"
	mkdir -p "$out"
	dpkg-deb -x "$deb" "$out/root"
	kver=$(ls "$out/root/lib/modules")
	cp "$out/root/boot/vmlinuz-$kver" "$out/vmlinuz"
	"$(dirname "$0")/initramfs.sh" "$out/root" "$kver" "$out/initrd.gz"
	rm -rf "$out/root"
fi
echo "$out"
