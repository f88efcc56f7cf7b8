#!/usr/bin/env bash
# Buildroot post-image script of every OnAir board:
#   post-image.sh BINARIES_DIR BOARD        (BOARD: pi4, pi5 or zero2w)
# with Buildroot's environment (HOST_DIR, BR2_CONFIG). It stages the files of
# each FAT partition, lets genimage write sdcard.img from board/BOARD/genimage.cfg
# and signs the OTA bundle (slot A's boot partition image + the root filesystem)
# with onair-bundle.
#
# ONAIR_SIGNING_KEY names the ed25519 private key (`onair-bundle keygen`);
# ONAIR_SIGNING_KEY=none builds the SD card image without a bundle.
set -euo pipefail

binaries_dir=${1:?usage: post-image.sh BINARIES_DIR BOARD}
board=${2:?usage: post-image.sh BINARIES_DIR BOARD}
: "${HOST_DIR:?post-image.sh runs from Buildroot, which sets HOST_DIR}"
: "${BR2_CONFIG:?post-image.sh runs from Buildroot, which sets BR2_CONFIG}"

tree=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
board_dir=$tree/board/$board
genimage_cfg=$board_dir/genimage.cfg
export PATH="$HOST_DIR/bin:$HOST_DIR/sbin:$PATH"

die() {
	echo "post-image.sh: $*" >&2
	exit 1
}

[ -f "$genimage_cfg" ] || die "no genimage layout for board '$board' ($genimage_cfg)"

# Value of a string or bool option in Buildroot's .config.
config_value() {
	sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}\$/\1/p" "$BR2_CONFIG"
}

# PARTUUIDs of an MBR disk are <disk signature>-<partition number>; the
# signature is set in genimage.cfg, so it is read from there.
signature=$(sed -n 's/^[[:space:]]*disk-signature[[:space:]]*=[[:space:]]*0x\([0-9a-fA-F]\{8\}\).*/\1/p' "$genimage_cfg")
[ -n "$signature" ] || die "$genimage_cfg sets no 8-digit hex disk-signature"
signature=$(echo "$signature" | tr 'A-F' 'a-f')

stage=$(mktemp -d "${TMPDIR:-/tmp}/onair-post-image.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root/data/etc" "$root/data/onair" "$root/data/clock" "$stage/tmp"

firmware=$binaries_dir/rpi-firmware
[ -d "$firmware" ] || die "$firmware is missing (BR2_PACKAGE_RPI_FIRMWARE)"

copy_dtbs() {
	local dest=$1 found=0 dtb
	for dtb in "$binaries_dir"/*.dtb; do
		[ -e "$dtb" ] || continue
		cp "$dtb" "$dest/"
		found=1
	done
	[ "$found" -eq 1 ] || die "no *.dtb in $binaries_dir (BR2_LINUX_KERNEL_DTS_SUPPORT)"
}

# Pi 4 and Pi 5: partition 1 holds only autoboot.txt; each boot partition is a
# complete firmware + kernel set whose cmdline.txt names its own rootfs.
stage_tryboot() {
	local slot part dir template
	mkdir -p "$root/boot-select"
	cp "$tree/board/common/autoboot.txt" "$root/boot-select/autoboot.txt"
	template=$firmware/cmdline.txt
	grep -q '@ROOT_PARTUUID@' "$template" ||
		die "$template has no @ROOT_PARTUUID@ (BR2_PACKAGE_RPI_FIRMWARE_CMDLINE_FILE)"
	[ -f "$binaries_dir/Image" ] || die "$binaries_dir/Image (kernel) is missing"
	for slot in a:05 b:06; do
		part=${slot#*:}
		dir=$root/boot-${slot%%:*}
		mkdir -p "$dir"
		cp -r "$firmware/." "$dir/"
		cp "$binaries_dir/Image" "$dir/Image"
		copy_dtbs "$dir"
		sed "s/@ROOT_PARTUUID@/$signature-$part/g" "$template" >"$dir/cmdline.txt"
	done
}

# Zero 2 W: partition 1 holds the firmware, U-Boot and its boot script, which
# picks the slot; the boot partitions hold kernel and DTB only.
stage_uboot() {
	local slot dir
	mkdir -p "$root/firmware"
	cp -r "$firmware/." "$root/firmware/"
	rm -f "$root/firmware/cmdline.txt"
	for f in u-boot.bin boot.scr; do
		[ -f "$binaries_dir/$f" ] || die "$binaries_dir/$f is missing"
		cp "$binaries_dir/$f" "$root/firmware/"
	done
	copy_dtbs "$root/firmware"
	[ -f "$binaries_dir/zImage" ] || die "$binaries_dir/zImage (kernel) is missing"
	for slot in a b; do
		dir=$root/boot-$slot
		mkdir -p "$dir"
		cp "$binaries_dir/zImage" "$dir/zImage"
		copy_dtbs "$dir"
	done
}

case "$board" in
pi4 | pi5) stage_tryboot ;;
zero2w) stage_uboot ;;
*) die "unknown board '$board'" ;;
esac

[ -f "$binaries_dir/rootfs.ext4" ] || die "$binaries_dir/rootfs.ext4 is missing (BR2_TARGET_ROOTFS_EXT2_4)"

genimage \
	--rootpath "$root" \
	--tmppath "$stage/tmp" \
	--inputpath "$binaries_dir" \
	--outputpath "$binaries_dir" \
	--config "$genimage_cfg"

version=$(config_value BR2_PACKAGE_ONAIR_FIRMWARE_VERSION)
[ -n "$version" ] || die "BR2_PACKAGE_ONAIR_FIRMWARE_VERSION is not set in $BR2_CONFIG"
key=${ONAIR_SIGNING_KEY:-}
if [ "$key" = none ]; then
	echo "post-image.sh: ONAIR_SIGNING_KEY=none: no OTA bundle" >&2
	exit 0
fi
[ -n "$key" ] || die "ONAIR_SIGNING_KEY is not set: name the private key (or 'none' for no OTA bundle)"
[ -f "$key" ] || die "signing key $key does not exist"

# The flags are those of cmd/onair-bundle. The bundle carries ONE boot
# partition image, slot A's, and the root file system: boot A and boot B
# differ only in cmdline.txt's root= (Pi 4/5), which the update agent
# rewrites in place for the slot it installs into (the slots' values are
# cmdline_root in firmware.yaml); on the Zero 2 W they are the same bytes
# (boot.scr passes root=). -boot-root makes the build fail here, rather than
# on every box, if slot A's cmdline.txt does not name slot A's rootfs.
boot_root=()
case "$board" in
pi4 | pi5) boot_root=(-boot-root "PARTUUID=$signature-05") ;;
esac
[ -f "$binaries_dir/boot-a.vfat" ] || die "genimage left no $binaries_dir/boot-a.vfat"
onair-bundle create \
	-key "$key" \
	-version "$version" \
	-board "$board" \
	-boot "$binaries_dir/boot-a.vfat" \
	"${boot_root[@]}" \
	-rootfs "$binaries_dir/rootfs.ext4" \
	-out "$binaries_dir/onair-$board-$version.bundle"
