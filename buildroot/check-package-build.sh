#!/usr/bin/env bash
# Runs the build command of Buildroot's onair package (package/onair/onair.mk
# through the golang-package infrastructure of the pinned release) here, for
# the two target architectures, and checks what came out:
#
#   linux/arm64          Pi 4, Pi 5       (BR2_aarch64)
#   linux/arm GOARM=7    Zero 2 W         (BR2_arm, Cortex-A53 in 32-bit mode)
#
# Like Buildroot it builds an exported copy of the module with vendored
# modules, GOFLAGS=-mod=vendor, GOPROXY=off and GOTOOLCHAIN=local, so it also
# proves the Go build runs offline. Vendoring needs the module cache or proxy.
#
#   buildroot/check-package-build.sh [VERSION]
#
# ONAIR_CHECK_DAEMON=1 also builds the daemon (cmd/onaird) with cgo. That
# needs C cross compilers and the target's x264, opus and alsa-lib headers and
# libraries (for example Debian's gcc-aarch64-linux-gnu and
# gcc-arm-linux-gnueabihf with libx264-dev, libopus-dev and libasound2-dev for
# :arm64 and :armhf); set CC_ARM64 / CC_ARM and PKG_CONFIG_ARM64 / PKG_CONFIG_ARM
# when their names differ from the defaults below.
set -euo pipefail

version=${1:-0.0.0}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

# Pure-Go commands: built now, whatever the machine has.
PURE_GO_COMMANDS="cmd/onair-bundle"
# The daemon: cgo (x264, opus, ALSA), built only with ONAIR_CHECK_DAEMON=1
# once the cross compilers above are installed.
CGO_COMMANDS="cmd/onaird"
ONAIR_CHECK_DAEMON=${ONAIR_CHECK_DAEMON:-0}
CC_ARM64=${CC_ARM64:-aarch64-linux-gnu-gcc}
CC_ARM=${CC_ARM:-arm-linux-gnueabihf-gcc}
PKG_CONFIG_ARM64=${PKG_CONFIG_ARM64:-aarch64-linux-gnu-pkg-config}
PKG_CONFIG_ARM=${PKG_CONFIG_ARM:-arm-linux-gnueabihf-pkg-config}

GOMOD=github.com/onair/onair
# The flags of package/onair/onair.mk (ONAIR_LDFLAGS, ONAIR_BUILD_OPTS) and of
# pkg-golang.mk; buildroot/tree_test.go checks that the two stay equal.
ONAIR_LDFLAGS="-s -w -X ${GOMOD}/internal/daemon.Version=${version}"
ONAIR_BUILD_OPTS="-buildmode=exe"
ONAIR_TAGS="dynamic"

die() {
	echo "check-package-build.sh: $*" >&2
	exit 1
}

command -v go >/dev/null || die "go is not on PATH"

work=$(mktemp -d "${TMPDIR:-/tmp}/onair-package-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
src=$work/src
out=$work/bin
mkdir -p "$src" "$out"

# The source as Buildroot's rsync of the local site gets it, plus vendor/
# (made by buildroot/image.sh before a real build).
tar -C "$repo" --exclude=./.git --exclude=./buildroot/_output --exclude=./vendor -cf - . |
	tar -C "$src" -xf -
(cd "$src" && go mod vendor)

# build GOARCH GOARM CGO COMMAND [CC PKG_CONFIG TRIPLET]
# Without a PKG_CONFIG wrapper for the target, plain pkg-config reading
# Debian's multiarch directory of TRIPLET does the same job.
build() {
	local goarch=$1 goarm=$2 cgo=$3 command=$4 cc=${5:-} pkg_config=${6:-} triplet=${7:-}
	local name binary pkg_config_libdir=""
	if [ -n "$pkg_config" ] && ! command -v "$pkg_config" >/dev/null; then
		pkg_config=pkg-config
		pkg_config_libdir=/usr/lib/$triplet/pkgconfig:/usr/share/pkgconfig
	fi
	name=$(basename "$command")
	binary=$out/$name-$goarch
	echo "== $command for linux/$goarch${goarm:+ GOARM=$goarm} (CGO_ENABLED=$cgo)"
	# shellcheck disable=SC2086 # ONAIR_BUILD_OPTS is a list of flags
	(cd "$src" && env \
		GO111MODULE=on \
		GOFLAGS=-mod=vendor \
		GOPROXY=off \
		GOTOOLCHAIN=local \
		GOOS=linux \
		GOARCH="$goarch" \
		${goarm:+GOARM=$goarm} \
		CGO_ENABLED="$cgo" \
		${cc:+CC=$cc} \
		${pkg_config:+PKG_CONFIG=$pkg_config} \
		${pkg_config_libdir:+PKG_CONFIG_LIBDIR=$pkg_config_libdir} \
		go build -v \
		-ldflags "$ONAIR_LDFLAGS" \
		-modcacherw \
		-tags "$ONAIR_TAGS" \
		-trimpath \
		-p "$(nproc)" \
		-buildvcs=false \
		$ONAIR_BUILD_OPTS \
		-o "$binary" \
		"$GOMOD/$command")
	check "$binary" "$goarch" "$goarm" "$command"
}

# check BINARY GOARCH GOARM COMMAND: the build settings Go recorded in the
# binary. With -trimpath Go does not record -ldflags, so the version is looked
# for in the binary itself, when the command links internal/daemon.
check() {
	local binary=$1 goarch=$2 goarm=$3 command=$4 info
	info=$(go version -m "$binary")
	expect() {
		grep -qF -- "$1" <<<"$info" || die "$binary: build info lacks '$1':
$info"
	}
	expect "GOOS=linux"
	expect "GOARCH=$goarch"
	if [ -n "$goarm" ]; then
		expect "GOARM=$goarm"
	fi
	expect "-trimpath=true"
	expect "-buildmode=exe"
	expect "mod	$GOMOD"
	if (cd "$src" && GOFLAGS=-mod=vendor GOPROXY=off go list -deps "./$command") | grep -qx "$GOMOD/internal/daemon"; then
		grep -qaF -- "$version" "$binary" || die "$binary: version $version was not linked in"
	else
		echo "note: $command does not link internal/daemon; -X ...daemon.Version has no effect on it"
	fi
	echo "ok $binary"
}

for command in $PURE_GO_COMMANDS; do
	build arm64 "" 0 "$command"
	build arm 7 0 "$command"
done

if [ "$ONAIR_CHECK_DAEMON" = 1 ]; then
	for command in $CGO_COMMANDS; do
		build arm64 "" 1 "$command" "$CC_ARM64" "$PKG_CONFIG_ARM64" aarch64-linux-gnu
		build arm 7 1 "$command" "$CC_ARM" "$PKG_CONFIG_ARM" arm-linux-gnueabihf
	done
else
	echo "skipped $CGO_COMMANDS (cgo): set ONAIR_CHECK_DAEMON=1 with cross compilers installed"
fi
