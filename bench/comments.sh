#!/usr/bin/env bash
# bench/comments.sh: starts onaird on the test sources (720p30, x264, live)
# and runs commentload: N sockets (default 500), 20 comments/s in all, 20 s.
# Usage: bench/comments.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-500}"
make --no-print-directory build >/dev/null
go build -o bin/commentload ./bench/commentload
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
cat > "$data/onair.yaml" <<YAML
video: {source: test}
audio: {source: test}
YAML
bin/onaird --config "$data/onair.yaml" --data-dir "$data" --listen 127.0.0.1:18081 --admin-token bench 2>"$data/log" &
pid=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:18081/healthz >/dev/null && break; sleep 0.2; done
curl -sf -X POST -H 'Authorization: Bearer bench' http://127.0.0.1:18081/api/live >/dev/null
sleep 2
t0=$(awk '{print $14+$15}' /proc/$pid/stat); sleep 10; t1=$(awk '{print $14+$15}' /proc/$pid/stat)
echo "baseline: live, no sockets: daemon_cpu_pct=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", (b-a)/10}') daemon_rss_mb=$(awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$pid/status)"
bin/commentload -url ws://127.0.0.1:18081/api/live/ws -n "$n" -rate 20 -duration 20s -pid "$pid"
