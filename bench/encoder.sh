#!/usr/bin/env bash
# bench/encoder.sh: CPU per second of 720p30 video, OnAir's x264 wrapper
# against ffmpeg -c:v libx264 with the same settings (veryfast, zerolatency,
# constrained baseline, 2500 kbit/s CBR-like VBV, keyframe every 2 s), on the
# same raw frames, one after the other in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${FRAMES:-300}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/encodecpu" ./bench/encodecpu
"$tmp/encodecpu" -frames "$frames" -write-raw "$tmp/in.yuv"
for round in 1 2 3; do
  "$tmp/encodecpu" -frames "$frames" -raw "$tmp/in.yuv"
  /usr/bin/time -f "ffmpeg-libx264 frames=$frames cpu_s=%U+%S wall_s=%e" \
    ffmpeg -v error -f rawvideo -pix_fmt yuv420p -s 1280x720 -r 30 -i "$tmp/in.yuv" \
      -c:v libx264 -preset veryfast -tune zerolatency -profile:v baseline \
      -b:v 2500k -maxrate 2500k -bufsize 2500k -g 60 -f null - 2>&1 | \
    awk -v n="$frames" '{ split($3, a, "="); split(a[2], c, "+"); cpu = c[1] + c[2];
      printf "%s cpu_s=%.2f %s cpu_per_video_s=%.3f\n", $1" "$2, cpu, $4, cpu / (n / 30) }'
done
