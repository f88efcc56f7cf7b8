#!/usr/bin/env bash
# bench/encoder.sh: CPU per second of 720p30 video, OnAir's x264 wrapper
# against ffmpeg -c:v libx264 with the same settings (veryfast, zerolatency,
# constrained baseline, 2500 kbit/s CBR-like VBV, keyframe every 2 s), on the
# same raw frames, side by side in one run.
#
# Fair by construction:
# - the settings: x264 writes its options into the first keyframe (SEI
#   "x264 - core ... options: ..."); the script encodes a few frames with
#   both, and stops unless the two strings, x264 build included, are equal;
# - the input: both processes read the raw file frame by frame into a
#   reused buffer (as a camera hands frames over), discard the output, and
#   are measured the same way: whole-process user+system CPU (/usr/bin/time);
# - the order: the two alternate which goes first, round by round.
#
# ROUNDS (default 4) and FRAMES (default 300) tune it.
set -euo pipefail
cd "$(dirname "$0")/.."
frames=${FRAMES:-300}
rounds=${ROUNDS:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/encodecpu" ./bench/encodecpu
"$tmp/encodecpu" -frames "$frames" -write-raw "$tmp/in.yuv"

raw_input=(-f rawvideo -pix_fmt yuv420p -s 1280x720 -r 30 -i "$tmp/in.yuv")
# What ffmpeg's own mapping leaves different from encoder/x264 is set
# through x264-params: keyint-min (ffmpeg: x264's default keyint/10, the
# wrapper 1), force-cfr (ffmpeg feeds x264 timestamps, the wrapper rate
# control by frame rate), vbv-init (x264's default 0.9, which the wrapper
# keeps). The last two are not in x264's options string.
ffmpeg_x264=(-c:v libx264 -preset veryfast -tune zerolatency -profile:v baseline
  -b:v 2500k -maxrate 2500k -bufsize 2500k -g 60
  -x264-params keyint-min=1:force-cfr=1:vbv-init=0.9)

# x264_options FILE: the "x264 - core ..." string of the stream's first SEI.
x264_options() {
  tr -c '[:print:]' '\n' <"$1" | grep -m1 '^x264 - core ' || true
}

"$tmp/encodecpu" -frames 30 -raw "$tmp/in.yuv" -out "$tmp/onair.h264" >/dev/null
ffmpeg -v error "${raw_input[@]}" -frames:v 30 "${ffmpeg_x264[@]}" -f h264 "$tmp/ffmpeg.h264"
onair_options=$(x264_options "$tmp/onair.h264")
ffmpeg_options=$(x264_options "$tmp/ffmpeg.h264")
if [ -z "$onair_options" ] || [ "$onair_options" != "$ffmpeg_options" ]; then
  echo "x264 options differ; no ratio (< OnAir, > ffmpeg):" >&2
  diff <(tr ' ' '\n' <<<"$onair_options") <(tr ' ' '\n' <<<"$ffmpeg_options") >&2 || true
  exit 1
fi
echo "x264 options, the same in both: ${onair_options#*options: }"
echo "x264 build: ${onair_options%% - H.264*}"

video_s=$(awk -v n="$frames" 'BEGIN { print n / 30 }')
# cpu_per_video_s CMD...: whole-process CPU seconds per second of video.
cpu_per_video_s() {
  /usr/bin/time -f '%U %S' -o "$tmp/time" "$@" >"$tmp/stdout"
  awk -v v="$video_s" '{ printf "%.3f", ($1 + $2) / v }' "$tmp/time"
}
onair() { cpu_per_video_s "$tmp/encodecpu" -frames "$frames" -raw "$tmp/in.yuv" "$@"; }
ffmpeg_x264() { cpu_per_video_s ffmpeg -v error "${raw_input[@]}" "$@" -f null -; }

# What each side costs besides encoding (start-up, reading the frames):
# net_ratio leaves it out.
onair_base=$(onair -encode=false)
ffmpeg_base=$(ffmpeg_x264 -c:v copy)
echo "without encoding (CPU-s per s of video): onair=$onair_base ffmpeg=$ffmpeg_base"

printf '%-5s %-13s %-6s %-6s %-10s %-5s %-9s %s\n' round order onair ffmpeg onair_loop ratio net_ratio load
for round in $(seq 1 "$rounds"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  if ((round % 2)); then
    order=onair,ffmpeg
    o=$(onair); loop=$(sed -n 's/.*cpu_per_video_s=\([0-9.]*\).*/\1/p' "$tmp/stdout")
    f=$(ffmpeg_x264 "${ffmpeg_x264[@]}")
  else
    order=ffmpeg,onair
    f=$(ffmpeg_x264 "${ffmpeg_x264[@]}")
    o=$(onair); loop=$(sed -n 's/.*cpu_per_video_s=\([0-9.]*\).*/\1/p' "$tmp/stdout")
  fi
  load="$load->$(cut -d' ' -f1 /proc/loadavg)"
  ratio=$(awk -v o="$o" -v f="$f" 'BEGIN { printf "%.2f", o / f }')
  net=$(awk -v o="$o" -v f="$f" -v ob="$onair_base" -v fb="$ffmpeg_base" 'BEGIN { printf "%.2f", (o - ob) / (f - fb) }')
  printf '%-5s %-13s %-6s %-6s %-10s %-5s %-9s %s\n' "$round" "$order" "$o" "$f" "$loop" "$ratio" "$net" "$load"
done
