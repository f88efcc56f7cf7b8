#!/usr/bin/env bash
# The camera, microphone and button code on real Linux drivers: boots Debian's
# kernels for each architecture in qemu-system (TCG, no KVM) with vivid,
# snd-aloop and QEMU's PL061 GPIO, runs test/vm/guest inside, and fails on any
# failure or timeout. Installs what it needs; kernels, busybox and libraries
# are downloaded once into the cache (see test/vm/doc.go).
#
#   test/vm/run.sh                   amd64, arm64 and armv7, one after another
#   test/vm/run.sh arm64 armv7       some of them
#
# Environment: ONAIR_VM_CACHE (cache directory, default
# ${XDG_CACHE_HOME:-~/.cache}/onair-vm), ONAIR_VM_RUN (go test -run pattern
# for the guest tests), ONAIR_VM_PARALLEL=1 (boot the architectures side by
# side), TIMINGS (a file: one line per architecture is added, as
# scripts/timed.sh writes them).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

say() { printf '==> %s\n' "$*" >&2; }

arches=("$@")
[[ ${#arches[@]} -gt 0 ]] || arches=(amd64 arm64 armv7)
debs=(kmod cpio)
foreign=()
for a in "${arches[@]}"; do
	case "$a" in
	amd64) debs+=(qemu-system-x86 gcc) ;;
	# arm64 also boots the whole daemon (test/vm/daemon_test.go): its
	# codec libraries to build against, ffmpeg to decode what it sends.
	arm64) debs+=(qemu-system-arm gcc-aarch64-linux-gnu pkg-config libx264-dev:arm64 libopus-dev:arm64 ffmpeg); foreign+=(arm64) ;;
	armv7) debs+=(qemu-system-arm gcc-arm-linux-gnueabihf); foreign+=(armhf) ;;
	*) echo "unknown architecture $a (want amd64, arm64 or armv7)" >&2; exit 2 ;;
	esac
done

command -v go >/dev/null || { echo "Go 1.26 is needed: install it to /usr/local/go (https://go.dev/doc/install)" >&2; exit 1; }

# The kernels and libraries of arm64 and armhf come from those architectures'
# package indexes: add them once. An index of a foreign architecture can fail
# to update while a mirror syncs; apt then keeps the old one, which is enough
# to download from, so a failed update is retried and then tolerated.
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
added=0
for arch in "${foreign[@]}"; do
	if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
		say "adding Debian architecture $arch"
		$sudo dpkg --add-architecture "$arch"
		added=1
	fi
done
if [[ $added -eq 1 ]]; then
	for attempt in 1 2 3; do
		if $sudo apt-get update -qq; then break; fi
		say "apt-get update failed (attempt $attempt); going on with the indexes that arrived"
		sleep $((attempt * 5))
	done
fi
mapfile -t debs < <(printf '%s\n' "${debs[@]}" | sort -u)
"$root/scripts/apt-ensure.sh" "${debs[@]}"

start=$(date +%s.%N)
say "booting ${arches[*]} (console streamed below, summary at the end)"
rc=0
(
	cd "$root"
	ONAIR_VM=1 ONAIR_VM_ARCHES="${arches[*]}" go test -count=1 -v -timeout 20m -run '^TestVM$' ./test/vm
) || rc=$?
secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
if [[ $rc -eq 0 ]]; then
	say "VM tests passed on ${arches[*]} in ${secs}s"
else
	say "VM tests FAILED (exit $rc) after ${secs}s"
fi
exit $rc
