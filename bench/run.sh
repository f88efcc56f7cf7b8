#!/usr/bin/env bash
# bench/run.sh: starts onaird on the test sources (720p30, 2.5 Mbit/s, x264)
# and runs whepload for N = 0 (idle baseline), 1, 10, 50, 100 viewers while
# live. Prints one line per N, and what each viewer adds to the idle
# baseline (in all, and without the encoder's threads). Usage:
# bench/run.sh [N...]
# PPROF=127.0.0.1:6060 serves the daemon's Go profiles there meanwhile;
# WINDOW=30 measures 30 s instead of 10 (baseline and each N); ONAIRD=path
# runs another build of the daemon (to compare two versions in turn).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- 1 10 50 100
make --no-print-directory build >/dev/null
go build -o bin/whepload ./bench/whepload
data=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$data"' EXIT
cat > "$data/onair.yaml" <<YAML
video: {source: test, test_pattern: noise}
audio: {source: test}
webrtc: {max_viewers: 200}
YAML
"${ONAIRD:-bin/onaird}" --config "$data/onair.yaml" --data-dir "$data" --listen 127.0.0.1:18080 --admin-token bench ${PPROF:+--pprof "$PPROF"} 2>"$data/log" &
pid=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.2; done
curl -sf -X POST -H 'Authorization: Bearer bench' http://127.0.0.1:18080/api/live >/dev/null
sleep 2
# Baseline: live, no viewer.
window=${WINDOW:-10}
# encoderTicks: CPU ticks of the daemon's x264 threads (x264.ThreadName).
encoderTicks() {
  local t=0 task
  for task in "/proc/$pid/task/"*; do
    [ "$(cat "$task/comm" 2>/dev/null)" = onair-x264 ] || continue
    t=$((t + $(awk '{print $14 + $15}' "$task/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}
# switches: context switches of the daemon's other threads (whepload's
# daemon_switches_per_s).
switches() {
  # A thread that ends meanwhile makes cat fail: not a reason to stop.
  { cat "/proc/$pid/task/"*/status 2>/dev/null || true; } |
    awk '/^Name:/ {enc = $2 == "onair-x264"} /ctxt_switches/ && !enc {s += $2} END {print s + 0}'
}
read -r u0 s0 < <(awk '{print $14, $15}' /proc/$pid/stat); e0=$(encoderTicks); w0=$(switches)
sleep "$window"
read -r u1 s1 < <(awk '{print $14, $15}' /proc/$pid/stat); e1=$(encoderTicks); w1=$(switches)
pct() { awk -v t="$1" -v w="$window" 'BEGIN{printf "%.1f", t/w}'; }
base="viewers=0 daemon_cpu_pct=$(pct $((u1-u0+s1-s0))) daemon_user_pct=$(pct $((u1-u0))) daemon_sys_pct=$(pct $((s1-s0))) daemon_encoder_pct=$(pct $((e1-e0))) daemon_switches_per_s=$(((w1-w0)/window)) daemon_rss_mb=$(awk '/VmRSS/{printf "%.1f", $2/1024}' /proc/$pid/status) daemon_goroutines=$(curl -sf http://127.0.0.1:18080/metrics | awk '$1 == "go_goroutines" {print $2}')"
echo "$base"
# perViewer: what each viewer adds to the idle live baseline, in % of a
# core, in all and without the encoder's threads (whose CPU does not depend
# on the viewers, but moves by a few points from run to run).
perViewer() {
  awk -v base="$base" -v line="$1" 'function get(s, k) { s = " " s; return match(s, " " k "=[^ ]*") ? substr(s, RSTART + length(k) + 2, RLENGTH - length(k) - 2) : "" }
    BEGIN { n = get(line, "viewers"); c = get(line, "daemon_cpu_pct"); e = get(line, "daemon_encoder_pct")
      if (n == "" || n == 0 || c == "") exit
      c0 = get(base, "daemon_cpu_pct"); e0 = get(base, "daemon_encoder_pct")
      w = get(line, "daemon_switches_per_s"); w0 = get(base, "daemon_switches_per_s")
      printf "viewers=%d per_viewer_pct=%.3f per_viewer_without_encoder_pct=%.3f per_viewer_switches_per_s=%.1f\n", n, (c - c0) / n, ((c - e) - (c0 - e0)) / n, (w - w0) / n }'
}
for n in "$@"; do
  line=$(bin/whepload -url http://127.0.0.1:18080/api/whep -n "$n" -stagger 20ms -duration "${window}s" -pid "$pid")
  echo "$line"
  perViewer "$line"
  sleep 2
done
