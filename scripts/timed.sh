#!/usr/bin/env bash
# timed.sh NAME CMD...: runs CMD, then records how long it took in
# $TIMINGS (a file) and prints it, so `make test` can list each part's time.
set -uo pipefail
name=$1; shift
start=$(date +%s.%N)
"$@"
rc=$?
secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
status=ok; [[ $rc -eq 0 ]] || status="FAILED (exit $rc)"
line=$(printf '%-22s %8ss  %s' "$name" "$secs" "$status")
echo "== $line"
[[ -n "${TIMINGS:-}" ]] && echo "$line" >> "$TIMINGS"
exit $rc
