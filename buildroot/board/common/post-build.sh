#!/usr/bin/env bash
# Buildroot post-build script of every OnAir board, run on the target tree
# before the root filesystem image is made:
#   post-build.sh TARGET_DIR BOARD
# The root filesystem is read-only; what the box writes goes to the data
# partition mounted on /data (board/common/rootfs-overlay/etc/init.d/S05onair-data).
set -euo pipefail

target_dir=${1:?usage: post-build.sh TARGET_DIR BOARD}
board=${2:?usage: post-build.sh TARGET_DIR BOARD}
tree=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

mkdir -p "$target_dir/data" "$target_dir/etc/onair" "$target_dir/var/lib" \
	"$target_dir/boot/firmware"

# onaird's default --config and data_dir, both on the data partition.
ln -sfn /data/etc/onair.yaml "$target_dir/etc/onair/onair.yaml"
ln -sfn /data/onair "$target_dir/var/lib/onair"

# A floor for the clock at first boot, before any time was saved or NTP ran.
echo "${SOURCE_DATE_EPOCH:-$(date +%s)}" >"$target_dir/etc/onair/build-time"

# The update agent: this board's layout and the keys that may sign updates
# (BR2_EXTERNAL keys/ota-keys.pem, made with `onair-bundle keygen`; several
# PEM blocks while a key is rotated).
install -D -m 0644 "$tree/board/$board/firmware.yaml" "$target_dir/etc/onair/firmware.yaml"
if [ -f "$tree/keys/ota-keys.pem" ]; then
	install -D -m 0644 "$tree/keys/ota-keys.pem" "$target_dir/etc/onair/ota-keys.pem"
else
	echo "post-build.sh: no keys/ota-keys.pem in the tree: this image will refuse every update" >&2
fi

# Boards with U-Boot: where fw_setenv finds the environment.
if [ -f "$tree/board/$board/fw_env.config" ]; then
	install -D -m 0644 "$tree/board/$board/fw_env.config" "$target_dir/etc/fw_env.config"
fi
