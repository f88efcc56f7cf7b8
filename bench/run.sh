#!/usr/bin/env bash
# bench/run.sh: starts onaird on the test sources (720p30, 2.5 Mbit/s, x264)
# and runs whepload for N = 0 (idle baseline), 1, 10, 50, 100 viewers while
# live. Prints one line per N. Usage: bench/run.sh [N...]
# PPROF=127.0.0.1:6060 serves the daemon's Go profiles there meanwhile;
# WINDOW=30 measures 30 s instead of 10 (baseline and each N).
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
window=${WINDOW:-10}
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat); sleep "$window"; read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat)
pct() { awk -v t="$1" -v w="$window" 'BEGIN{printf "%.1f", t/w}'; }
echo "viewers=0 daemon_cpu_pct=$(pct $((u1-u0+s1-s0))) daemon_user_pct=$(pct $((u1-u0))) daemon_sys_pct=$(pct $((s1-s0))) daemon_rss_mb=$(awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$pid/status)"
for n in ${counts[*]}; do
  bin/whepload -url http://127.0.0.1:18080/api/whep -n "$n" -stagger 20ms -duration "${window}s" -pid "$pid"
  sleep 2
done
