#!/usr/bin/env bash
# Builds the OnAir SD card image and the signed OTA bundle of one board with
# the pinned Buildroot release (buildroot/README.md). Needs network (Buildroot,
# toolchain, kernel, Go modules) and hours the first time.
#
#   buildroot/image.sh BOARD            BOARD: pi4, pi5 or zero2w
#
# Environment:
#   ONAIR_VERSION          MAJOR.MINOR.PATCH; default: newest vX.Y.Z tag, else 0.0.0
#   ONAIR_SIGNING_KEY      private key for the OTA bundle (onair-bundle keygen);
#                          default: a development key made in the output directory
#   ONAIR_OTA_PUBLIC_KEYS  space-separated public keys the image trusts;
#                          default: the signing key's .pub
#   ONAIR_OUTPUT           Buildroot output directory; default buildroot/_output/BOARD
#   ONAIR_CACHE            Buildroot checkout and downloads; default ~/.cache/onair
set -euo pipefail

# The pinned release: an LTS branch whose host Go (package/go) is at least the
# go line of go.mod. Check both when moving the pin.
BUILDROOT_RELEASE=2026.02.3
BUILDROOT_COMMIT=679b9ead7620bbf193620d1ebf56f53c1764d37a
BUILDROOT_GO_VERSION=1.26.3
BUILDROOT_GIT=https://gitlab.com/buildroot.org/buildroot.git

die() {
	echo "image.sh: $*" >&2
	exit 1
}

board=${1:-}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
boards() {
	local f
	for f in "$here"/configs/onair_*_defconfig; do
		f=${f##*/onair_}
		printf '%s ' "${f%_defconfig}"
	done
}
[ -n "$board" ] || die "usage: image.sh BOARD (one of: $(boards))"
defconfig=onair_${board}_defconfig
[ -f "$here/configs/$defconfig" ] || die "no configs/$defconfig: unknown board '$board'"

out=${ONAIR_OUTPUT:-$here/_output/$board}
cache=${ONAIR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/onair}
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)
export BR2_DL_DIR=${BR2_DL_DIR:-$cache/dl}

for tool in git go make rsync; do
	command -v "$tool" >/dev/null || die "$tool is not on PATH"
done

# Go: Buildroot builds with its own host-go and GOTOOLCHAIN=local, so go.mod
# must not ask for more than the pinned release ships.
need_go=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$repo/go.mod")
if [ "$(printf '%s\n%s\n' "$need_go" "$BUILDROOT_GO_VERSION" | sort -V | tail -n1)" != "$BUILDROOT_GO_VERSION" ]; then
	die "go.mod needs Go $need_go, Buildroot $BUILDROOT_RELEASE ships $BUILDROOT_GO_VERSION: move the pin (README.md, \"Buildroot release\")"
fi

version=${ONAIR_VERSION:-}
if [ -z "$version" ]; then
	tag=$(git -C "$repo" describe --tags --abbrev=0 --match 'v[0-9]*.[0-9]*.[0-9]*' 2>/dev/null || true)
	version=${tag#v}
	version=${version:-0.0.0}
fi
[[ "$version" =~ ^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]] ||
	die "version '$version' is not MAJOR.MINOR.PATCH (OTA bundles need that form)"

# Buildroot, at the pinned commit.
buildroot=$cache/buildroot-$BUILDROOT_RELEASE
if [ ! -d "$buildroot/.git" ]; then
	git clone --depth 1 --branch "$BUILDROOT_RELEASE" "$BUILDROOT_GIT" "$buildroot.tmp"
	mv "$buildroot.tmp" "$buildroot"
fi
[ "$(git -C "$buildroot" rev-parse HEAD)" = "$BUILDROOT_COMMIT" ] ||
	die "$buildroot is not Buildroot $BUILDROOT_RELEASE ($BUILDROOT_COMMIT)"

# The source Buildroot builds: the committed tree plus vendor/, so its Go
# build needs no network (GOFLAGS=-mod=vendor, GOPROXY=off).
if [ -n "$(git -C "$repo" status --porcelain)" ]; then
	echo "image.sh: the checkout has uncommitted changes; the image is built from HEAD" >&2
fi
src=$out/onair-src
rm -rf "$src"
mkdir -p "$src"
git -C "$repo" archive HEAD | tar -C "$src" -xf -
(cd "$src" && go mod vendor)

# Keys: without a release key, a development key that only this build trusts.
key=${ONAIR_SIGNING_KEY:-}
if [ -z "$key" ]; then
	key=$out/dev-keys/onair-dev.key
	if [ ! -f "$key" ]; then
		mkdir -p "$out/dev-keys"
		(cd "$src" && go run ./cmd/onair-bundle keygen -out "${key%.key}")
	fi
	echo "image.sh: signing with the development key $key; boxes running this image accept only bundles signed by it" >&2
fi
[ -f "$key" ] || die "signing key $key does not exist"
key=$(cd "$(dirname "$key")" && pwd)/$(basename "$key")
public_keys=${ONAIR_OTA_PUBLIC_KEYS:-${key%.key}.pub}
for pub in $public_keys; do
	[ -f "$pub" ] || die "public key $pub does not exist"
done

make -C "$buildroot" O="$out" BR2_EXTERNAL="$here" "$defconfig"
"$buildroot/utils/config" --file "$out/.config" \
	--set-str BR2_PACKAGE_ONAIR_FIRMWARE_VERSION "$version" \
	--set-str BR2_PACKAGE_ONAIR_OTA_PUBLIC_KEYS "$public_keys"
make -C "$buildroot" O="$out" olddefconfig
printf 'ONAIR_OVERRIDE_SRCDIR = %s\n' "$src" >"$out/local.mk"

ONAIR_SIGNING_KEY=$key make -C "$buildroot" O="$out"

echo "image.sh: $out/images/sdcard.img"
echo "image.sh: $out/images/onair-$board-$version.bundle"
