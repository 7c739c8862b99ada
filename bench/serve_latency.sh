#!/usr/bin/env bash
# Point-read latency through POST /query, idle and during a dump of the
# same database. Starts `sluice serve` on a free loopback port, runs
# bench/loadgen (fixed-rate point reads of `events` by id, plus a write
# every WRITE_EVERY) for IDLE_SECONDS with no dump, then again for the
# whole length of a dump, and prints both p50/p99 and the ratio. The goal
# is p99 during the dump within 2x of idle, with every write succeeding.
#
#   go run ./bench/gen -o /tmp/bench.db -scale 1     # ~1.05 GB, once
#   bench/serve_latency.sh /tmp/bench.db
#
# Settings (environment): DUMP=legacy (curl GET /export/dump > /dev/null,
# the default) or DUMP=async (POST /export/dump to the file store in a
# temporary directory, awaited with the status long poll); IDLE_SECONDS (30); RATE
# reads/s (200); WORKERS (8); WRITE_EVERY (100ms); LIMITS, the server
# config's limits object (for example '{"exportThreads": 1}').
#
# The writes go to a table `loadgen_writes` that the script creates in
# the database if missing (the benchmark database is scratch data).
# Linux only; needs curl and jq. Not part of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

db=${1:?usage: bench/serve_latency.sh DB}
mode=${DUMP:-legacy}
idle_seconds=${IDLE_SECONDS:-30}
rate=${RATE:-200}
workers=${WORKERS:-8}
write_every=${WRITE_EVERY:-100ms}
[ -f "$db" ] || { log "$db does not exist (make one with: go run ./bench/gen -o $db)"; exit 1; }
db=$(cd "$(dirname "$db")" && pwd)/$(basename "$db")
command -v curl >/dev/null || { log "curl is needed"; exit 1; }
command -v jq >/dev/null || { log "jq is needed"; exit 1; }
case "$mode" in legacy|async) ;; *) log "DUMP must be legacy or async"; exit 1 ;; esac

make_work lg_pid srv_pid
build_sluice "$work/sluice"
log "building bench/loadgen"
(cd "$BENCH_ROOT" && go build -o "$work/loadgen" ./bench/loadgen)

start_serve "$work/sluice" "$db" "$work" "${LIMITS:-}"

q() { curl -fsS -H 'Content-Type: application/json' -d "$1" "$base/query"; }
q '{"sql":"CREATE TABLE IF NOT EXISTS loadgen_writes(id INTEGER PRIMARY KEY, seq INTEGER, at TEXT)"}' >/dev/null
max_id=$(q '{"sql":"SELECT max(id) AS m FROM events"}' | jq -r '.result[0].m')
size=$(stat -c %s "$db")
log "database $db: $(awk -v s="$size" 'BEGIN { printf "%.2f GB", s / 1e9 }'), events up to id $max_id; server on $base"
log "warming the page cache"
cat "$db" "$db-wal" >/dev/null 2>&1 || cat "$db" >/dev/null

lg_args=(-url "$base" -sql 'SELECT * FROM events WHERE id = ?' -max-id "$max_id" -rate "$rate" -workers "$workers"
  -write-sql "INSERT INTO loadgen_writes(seq, at) VALUES (?, datetime('now'))" -write-every "$write_every")

log "phase 1: ${idle_seconds} s of load, no dump"
"$work/loadgen" "${lg_args[@]}" -duration "${idle_seconds}s" | tee "$work/idle.out"

log "phase 2: the same load for the whole of a $mode dump"
"$work/loadgen" "${lg_args[@]}" -duration 30m >"$work/dump.out" &
lg_pid=$!
t0=$(date +%s.%N)
if [ "$mode" = legacy ]; then
  curl -sS --fail -o /dev/null -w '%{http_code} %{size_download}\n' "$base/export/dump" >"$work/curl.out"
  read -r code bytes <"$work/curl.out"
  [ "$code" = 200 ] || { log "legacy dump answered $code"; exit 1; }
  dump_desc="legacy GET /export/dump, $bytes bytes"
else
  job=$(submit_job "$base" '{"format":"sql"}')
  st=$(wait_job "$base" "$job") || exit 1
  dump_desc="async POST /export/dump job $job, $(jq -r .result.size <<<"$st") bytes to the file store"
fi
t1=$(date +%s.%N)
kill -INT "$lg_pid"
wait "$lg_pid" || { log "loadgen failed"; exit 1; }
lg_pid=""
cat "$work/dump.out"
dump_secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')

# Idle again: on a shared machine the background load drifts, so the
# dump phase is compared with an idle phase on either side of it.
log "phase 3: ${idle_seconds} s of load, no dump (again)"
"$work/loadgen" "${lg_args[@]}" -duration "${idle_seconds}s" | tee "$work/idle2.out"

# field KEY FILE prints KEY's value from loadgen's "result k=v ..." line.
field() { awk -v k="$1" '$1 == "result" { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$2"; }
i50=$(field p50_ms "$work/idle.out"); i99=$(field p99_ms "$work/idle.out")
j50=$(field p50_ms "$work/idle2.out"); j99=$(field p99_ms "$work/idle2.out")
d50=$(field p50_ms "$work/dump.out"); d99=$(field p99_ms "$work/dump.out")
dw=$(field writes "$work/dump.out"); dwe=$(field write_errors "$work/dump.out")
dre=$(field read_errors "$work/dump.out"); dr=$(field reads "$work/dump.out")
ratio=$(awk -v a="$d99" -v b="$i99" 'BEGIN { printf "%.2f", a / b }')
printf '\ndump: %s in %s s\n' "$dump_desc" "$dump_secs"
printf 'idle before: p50 %s ms, p99 %s ms\n' "$i50" "$i99"
printf 'during dump: p50 %s ms, p99 %s ms (%s reads, %s failed)\n' "$d50" "$d99" "$dr" "$dre"
printf 'idle after:  p50 %s ms, p99 %s ms\n' "$j50" "$j99"
printf 'p99 ratio dump/idle = %s vs before, %s vs after (goal <= 2); p50 ratio = %s, %s\n' "$ratio" \
  "$(awk -v a="$d99" -v b="$j99" 'BEGIN { printf "%.2f", a / b }')" \
  "$(awk -v a="$d50" -v b="$i50" 'BEGIN { printf "%.2f", a / b }')" "$(awk -v a="$d50" -v b="$j50" 'BEGIN { printf "%.2f", a / b }')"
printf 'writes during the dump: %s ok, %s failed\n' "$dw" "$dwe"
[ "$dwe" = 0 ] && [ "$dre" = 0 ] || { log "FAIL: some requests failed during the dump"; exit 1; }
