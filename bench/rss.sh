#!/usr/bin/env bash
# Samples the resident set size of one `sluice dump --format sql -o
# /dev/null` over its run, with the bytes it has written so far, to show
# that memory stays flat while the output grows. Run it on databases of
# different sizes to compare their peaks.
#
#   bench/rss.sh /tmp/bench.db [INTERVAL_SECONDS]
#
# Prints "seconds rss_mib written_mib" every interval, then the peak.
# Linux only (reads /proc). Not part of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

db=${1:?usage: bench/rss.sh DB [INTERVAL_SECONDS]}
interval=${2:-2}
[ -f "$db" ] || { log "$db does not exist"; exit 1; }
make_work
bin="$work/sluice"
build_sluice "$bin"

"$bin" dump --db "$db" --format sql -o /dev/null --progress never 2>"$work/err" &
pid=$!
start=$(date +%s.%N)
peak=0
printf '%8s %8s %12s\n' seconds rss_mib written_mib
while kill -0 "$pid" 2>/dev/null; do
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  wchar=$(awk '/^wchar:/ {print $2}' "/proc/$pid/io" 2>/dev/null || echo 0)
  [ -n "$rss" ] || rss=0
  [ "$rss" -gt "$peak" ] && peak=$rss
  now=$(date +%s.%N)
  awk -v t="$now" -v s="$start" -v r="$rss" -v w="$wchar" 'BEGIN { printf "%8.1f %8.1f %12.1f\n", t - s, r / 1024, w / 1048576 }'
  sleep "$interval"
done
wait "$pid"
cat "$work/err" >&2
awk -v p="$peak" 'BEGIN { printf "peak sampled RSS %.1f MiB\n", p / 1024 }'
