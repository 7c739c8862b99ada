#!/usr/bin/env bash
# Point-read latency through POST /query with no console open, then with
# CONSOLES (20) web consoles open, then with none again. A console is
# played by bench/loadgen -consoles: the requests of api/ui/app.js (each
# database's job list every 1.5 s, /databases and /schedules every 15 s),
# without a browser, since the browser runs on the operator's machine,
# not the server's. The goal: p99 with the consoles within 2x of idle.
#
#   go run ./bench/gen -o /tmp/console.db -scale 0.05     # ~55 MB, once
#   bench/console_latency.sh /tmp/console.db
#
# Settings (environment): CONSOLES (20), SECONDS_EACH (20), RATE reads/s
# (200), JOBS completed export jobs to fill the job lists first (20).
# Linux only; needs curl and jq. Not part of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

db=${1:?usage: bench/console_latency.sh DB}
consoles=${CONSOLES:-20}
secs=${SECONDS_EACH:-20}
rate=${RATE:-200}
jobs=${JOBS:-20}
[ -f "$db" ] || { log "$db does not exist (make one with: go run ./bench/gen -o $db -scale 0.05)"; exit 1; }
db=$(cd "$(dirname "$db")" && pwd)/$(basename "$db")
command -v curl >/dev/null || { log "curl is needed"; exit 1; }
command -v jq >/dev/null || { log "jq is needed"; exit 1; }

make_work srv_pid
build_sluice "$work/sluice"
log "building bench/loadgen"
(cd "$BENCH_ROOT" && go build -o "$work/loadgen" ./bench/loadgen)
start_serve "$work/sluice" "$db" "$work"

q() { curl -fsS -H 'Content-Type: application/json' -d "$1" "$base/query"; }
q '{"sql":"CREATE TABLE IF NOT EXISTS loadgen_writes(id INTEGER PRIMARY KEY, seq INTEGER, at TEXT)"}' >/dev/null
max_id=$(q '{"sql":"SELECT max(id) AS m FROM events"}' | jq -r '.result[0].m')
log "filling the job list: $jobs exports of the users table"
for _ in $(seq 1 "$jobs"); do
  job=$(submit_job "$base" '{"format":"csv","tables":["users"]}')
  wait_job "$base" "$job" >/dev/null || exit 1
done
cat "$db" >/dev/null

lg=("$work/loadgen" -url "$base" -sql 'SELECT * FROM events WHERE id = ?' -max-id "$max_id" -rate "$rate"
  -write-sql "INSERT INTO loadgen_writes(seq, at) VALUES (?, datetime('now'))" -duration "${secs}s")
log "phase 1: ${secs} s, no console"
"${lg[@]}" | tee "$work/idle.out"
log "phase 2: ${secs} s with $consoles consoles"
"${lg[@]}" -consoles "$consoles" | tee "$work/consoles.out"
log "phase 3: ${secs} s, no console (again)"
"${lg[@]}" | tee "$work/idle2.out"

field() { awk -v k="$1" '$1 == "result" { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$2"; }
i99=$(field p99_ms "$work/idle.out"); c99=$(field p99_ms "$work/consoles.out"); j99=$(field p99_ms "$work/idle2.out")
i50=$(field p50_ms "$work/idle.out"); c50=$(field p50_ms "$work/consoles.out"); j50=$(field p50_ms "$work/idle2.out")
printf '\nload average: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'idle before:        p50 %s ms, p99 %s ms\n' "$i50" "$i99"
printf 'with %s consoles:   p50 %s ms, p99 %s ms (%s console requests, %s failed)\n' "$consoles" "$c50" "$c99" \
  "$(field console_requests "$work/consoles.out")" "$(field console_errors "$work/consoles.out")"
printf 'idle after:         p50 %s ms, p99 %s ms\n' "$j50" "$j99"
printf 'p99 ratio consoles/idle = %s vs before, %s vs after (goal <= 2)\n' \
  "$(awk -v a="$c99" -v b="$i99" 'BEGIN { printf "%.2f", a / b }')" "$(awk -v a="$c99" -v b="$j99" 'BEGIN { printf "%.2f", a / b }')"
for f in idle consoles idle2; do
  [ "$(field read_errors "$work/$f.out")" = 0 ] && [ "$(field write_errors "$work/$f.out")" = 0 ] || { log "FAIL: requests failed in phase $f"; exit 1; }
done
[ "$(field console_errors "$work/consoles.out")" = 0 ] || { log "FAIL: console requests failed"; exit 1; }
