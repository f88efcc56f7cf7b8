#!/usr/bin/env bash
# apt-ensure.sh PKG...: installs the Debian packages that are missing, with
# one apt-get update first. Used by the Makefile; never needed by hand.
set -euo pipefail
missing=()
for p in "$@"; do
  # One status line per installed architecture (libx264-dev for amd64,
  # arm64 and armhf side by side): any installed one will do.
  if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -qx 'install ok installed'; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
echo "installing Debian packages: ${missing[*]}"
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
# An index of a foreign architecture can fail while a mirror syncs: retry,
# and go on with the indexes that did arrive.
for attempt in 1 2 3; do
  if $sudo apt-get update -qq; then break; fi
  echo "apt-get update failed (attempt $attempt), retrying" >&2
  sleep $((attempt * 5))
done
for attempt in 1 2 3; do
  if $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; then exit 0; fi
  echo "apt-get install failed (attempt $attempt), retrying" >&2
  sleep $((attempt * 5))
  $sudo apt-get update -qq || true
done
exit 1
