#!/usr/bin/env bash
# Serves a database with `sluice serve` and downloads it through the
# legacy synchronous route (`curl GET /export/dump` to /dev/null), sampling
# the server's memory all along. Peak RSS is the kernel's high-water mark
# (VmHWM in /proc/PID/status), read just before the server is stopped, so
# no short spike between samples is missed. Exits 1 if the dump fails or
# the peak reaches LIMIT_MIB (100 by default).
#
#   go run ./bench/gen -o /tmp/bench.db -scale 1     # ~1.05 GB, once
#   bench/legacy_rss.sh /tmp/bench.db [INTERVAL_SECONDS]
#
# Extra query parameters for the dump can be given in DUMP_QUERY (for
# example DUMP_QUERY="compress=zstd"). Linux only. Not part of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

db=${1:?usage: bench/legacy_rss.sh DB [INTERVAL_SECONDS]}
interval=${2:-2}
limit_mib=${LIMIT_MIB:-100}
[ -f "$db" ] || { log "$db does not exist (make one with: go run ./bench/gen -o $db)"; exit 1; }
db=$(cd "$(dirname "$db")" && pwd)/$(basename "$db")
command -v curl >/dev/null || { log "curl is needed"; exit 1; }

make_work srv_pid
bin="$work/sluice"
build_sluice "$bin"

start_serve "$bin" "$db" "$work"

size=$(stat -c %s "$db")
log "database $db: $(awk -v s="$size" 'BEGIN { printf "%.2f GB", s / 1e9 }'); server pid $srv_pid on $base"
log "warming the page cache"
cat "$db" "$db-wal" >/dev/null 2>&1 || cat "$db" >/dev/null
idle_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$srv_pid/status")

url="$base/export/dump${DUMP_QUERY:+?$DUMP_QUERY}"
log "GET $url"
start=$(date +%s.%N)
curl -sS --fail -o /dev/null -w '%{http_code} %{size_download} %{time_total}\n' "$url" >"$work/curl.out" 2>"$work/curl.err" &
curl_pid=$!
printf '%8s %8s %8s\n' seconds rss_mib hwm_mib
peak_sample=0
while kill -0 "$curl_pid" 2>/dev/null; do
  read -r rss hwm < <(awk '/^VmRSS:/ {r=$2} /^VmHWM:/ {h=$2} END {print r, h}' "/proc/$srv_pid/status")
  [ "$rss" -gt "$peak_sample" ] && peak_sample=$rss
  now=$(date +%s.%N)
  awk -v t="$now" -v s="$start" -v r="$rss" -v h="$hwm" 'BEGIN { printf "%8.1f %8.1f %8.1f\n", t - s, r / 1024, h / 1024 }'
  sleep "$interval"
done
rc=0; wait "$curl_pid" || rc=$?
hwm_kib=$(awk '/^VmHWM:/ {print $2}' "/proc/$srv_pid/status")
# The kernel's RSS counters are per-thread caches synced now and then, so
# VmHWM can trail a sample by a few pages: report the larger.
[ "$peak_sample" -gt "$hwm_kib" ] && hwm_kib=$peak_sample
cpu_ticks=$(awk '{print $14 + $15}' "/proc/$srv_pid/stat")
read -r code bytes secs <"$work/curl.out" || true
if [ "$rc" -ne 0 ] || [ "${code:-}" != 200 ]; then
  cat "$work/curl.err" "$work/serve.log" >&2
  log "the dump failed (curl exit $rc, HTTP ${code:-none})"
  exit 1
fi
printf '\nlegacy GET /export/dump: HTTP %s, %s bytes (%.2f GB) in %.1f s (%.0f MB/s)\n' "$code" "$bytes" \
  "$(awk -v b="$bytes" 'BEGIN { print b / 1e9 }')" "$secs" "$(awk -v b="$bytes" -v s="$secs" 'BEGIN { print b / 1e6 / s }')"
printf 'server CPU (user+sys, whole life) %.1f s\n' "$(awk -v t="$cpu_ticks" -v hz="$(getconf CLK_TCK)" 'BEGIN { print t / hz }')"
printf 'server RSS idle before the dump %.1f MiB; peak (max of VmHWM and samples) %.1f MiB; limit %d MiB\n' \
  "$(awk -v k="$idle_kib" 'BEGIN { print k / 1024 }')" "$(awk -v k="$hwm_kib" 'BEGIN { print k / 1024 }')" "$limit_mib"
if [ "$hwm_kib" -ge $((limit_mib * 1024)) ]; then
  log "FAIL: peak RSS over the limit"
  exit 1
fi
log "OK: peak RSS under ${limit_mib} MiB"
