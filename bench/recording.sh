#!/usr/bin/env bash
# bench/recording.sh: does recording cost the live viewers anything? Runs
# onaird live on the test sources (720p30, 2.5 Mbit/s, x264, noise pattern so
# the bitrate is real) twice, with replay.enabled false and true, and each time
# lets one WHEP viewer (bench/whepload) measure frame rate and the gaps between
# complete frames for 30 s, with the daemon's CPU and RSS. Then prints what the
# recording wrote. Usage: bench/recording.sh
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory build >/dev/null
go build -o bin/whepload ./bench/whepload
for enabled in false true; do
  data=$(mktemp -d)
  cat > "$data/onair.yaml" <<YAML
video: {source: test, test_pattern: noise}
audio: {source: test}
replay: {enabled: $enabled}
YAML
  bin/onaird --config "$data/onair.yaml" --data-dir "$data" --listen 127.0.0.1:18082 --admin-token bench 2>"$data/log" &
  pid=$!
  for _ in $(seq 50); do curl -sf http://127.0.0.1:18082/healthz >/dev/null && break; sleep 0.2; done
  curl -sf -X POST -H 'Authorization: Bearer bench' http://127.0.0.1:18082/api/live >/dev/null
  sleep 2
  printf 'recording=%s ' "$enabled"
  bin/whepload -url http://127.0.0.1:18082/api/whep -n 1 -duration 30s -pid "$pid"
  if [[ $enabled == true ]]; then
    curl -sf -H 'Authorization: Bearer bench' http://127.0.0.1:18082/metrics | grep -E '^onair_recording_bytes_total|^onair_video_bitrate_kbps'
    curl -sf http://127.0.0.1:18082/api/replays
    echo
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$data"
done
