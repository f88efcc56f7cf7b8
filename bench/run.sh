#!/usr/bin/env bash
# bench/run.sh: starts onaird on the test sources (720p30, 2.5 Mbit/s, x264)
# and runs whepload for N = 0 (idle baseline), 1, 10, 50, 100 viewers while
# live. Prints one line per N. Usage: bench/run.sh [N...]
# PPROF=127.0.0.1:6060 serves the daemon's Go profiles there meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
counts=("${@:-1 10 50 100}")
make --no-print-directory build >/dev/null
go build -o bin/whepload ./bench/whepload
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
cat > "$data/onair.yaml" <<YAML
video: {source: test, test_pattern: noise}
audio: {source: test}
webrtc: {max_viewers: 200}
YAML
bin/onaird --config "$data/onair.yaml" --data-dir "$data" --listen 127.0.0.1:18080 --admin-token bench ${PPROF:+--pprof "$PPROF"} 2>"$data/log" &
pid=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.2; done
curl -sf -X POST -H 'Authorization: Bearer bench' http://127.0.0.1:18080/api/live >/dev/null
sleep 2
# Baseline: live, no viewer.
t0=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 10; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "viewers=0 daemon_cpu_pct=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/10}') daemon_rss_mb=$(awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$pid/status)"
for n in ${counts[*]}; do
  bin/whepload -url http://127.0.0.1:18080/api/whep -n "$n" -stagger 20ms -duration 10s -pid "$pid"
  sleep 2
done
