#!/usr/bin/env bash
# Takes a screenshot of the web console's jobs page with an export
# running: starts `sluice serve` on a small generated database, runs one
# export to completion and starts a slow one (chunk size 1), then saves
# the page as seen by headless Chromium (/usr/bin/chromium; on Debian:
# apt-get install chromium).
#
#   bench/screenshot.sh docs/ui-jobs.png
#   WIDTH=390 HEIGHT=844 bench/screenshot.sh /tmp/phone.png   # phone width
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

out=${1:-ui-jobs.png}
case "$out" in /*) ;; *) out="$(pwd)/$out" ;; esac
command -v curl >/dev/null || { log "curl is needed"; exit 1; }
command -v jq >/dev/null || { log "jq is needed"; exit 1; }
[ -x /usr/bin/chromium ] || { log "/usr/bin/chromium is needed (apt-get install chromium)"; exit 1; }

make_work srv_pid
build_sluice "$work/sluice"
: >"$work/app.db"
start_serve "$work/sluice" "$work/app.db" "$work"

q() { curl -fsS -H 'Content-Type: application/json' -d "$1" "$base/query" >/dev/null; }
q '{"sql":"CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT, email TEXT)"}'
q '{"sql":"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 5000) INSERT INTO customers(name, email) SELECT '"'"'customer '"'"' || i, '"'"'c'"'"' || i || '"'"'@example.com'"'"' FROM n"}'
q '{"sql":"CREATE TABLE events(id INTEGER PRIMARY KEY, at TEXT, payload BLOB)"}'
q '{"sql":"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 300000) INSERT INTO events(at, payload) SELECT datetime(1700000000 + i, '"'"'unixepoch'"'"'), randomblob(100) FROM n"}'

done_job=$(submit_job "$base" '{"format":"sql","compress":"zstd","tables":["customers"]}')
wait_job "$base" "$done_job" >/dev/null || exit 1
submit_job "$base" '{"format":"csv","chunkSize":1}' >/dev/null
sleep 3 # a few polls, so the rate and ETA have figures
log "taking the screenshot"
(cd "$BENCH_ROOT" && go run ./bench/screenshot -url "$base/ui/" -o "$out" -width "${WIDTH:-1280}" -height "${HEIGHT:-720}")
log "wrote $out ($(stat -c %s "$out") bytes)"
