#!/usr/bin/env bash
# bench/pageload.sh: builds onaird, runs it on the test sources (720p) and
# times fresh loads of the viewer page in headless Chromium
# (test/browser/pageload.mjs): page load -> first decoded frame. The first
# load is a fresh browser's (its first RTCPeerConnection); the later ones a
# browser that has made one before. Usage: bench/pageload.sh [loads]
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build >/dev/null
[[ -d test/browser/node_modules ]] || (cd test/browser && npm ci --no-audit --no-fund --loglevel=error)
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
cat > "$data/onair.yaml" <<YAML
video: {source: test, width: 1280, height: 720}
audio: {source: test}
webrtc: {udp_port: 0}
YAML
bin/onaird --config "$data/onair.yaml" --data-dir "$data" --listen 127.0.0.1:18081 --admin-token bench 2>"$data/log" &
pid=$!
for _ in $(seq 100); do curl -sf http://127.0.0.1:18081/healthz >/dev/null && break; sleep 0.2; done
cd test/browser
ONAIR_URL=http://127.0.0.1:18081 ONAIR_TOKEN=bench node pageload.mjs "${1:-11}"
