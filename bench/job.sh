#!/usr/bin/env bash
# Times an async export job (POST /export/dump to the default file store)
# against `sluice dump -o FILE` and `sluice dump --to file://` on the same
# database, interleaved, as ratios within one run; once per export nice
# value (limits.exportNice), with the server's peak RSS.
#
#   go run ./bench/gen -o /tmp/bench.db -scale 0.25
#   bench/job.sh /tmp/bench.db [RUNS]
#
# NICES lists the exportNice values to run the job with (default "19 0").
# Linux only; needs curl and jq. Not part of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

db=${1:?usage: bench/job.sh DB [RUNS]}
runs=${2:-3}
nices=${NICES:-19 0}
[ -f "$db" ] || { log "$db does not exist (make one with: go run ./bench/gen -o $db)"; exit 1; }
command -v jq >/dev/null || { log "jq is needed"; exit 1; }
need_time
make_work srv_pid
bin="$work/sluice"
build_sluice "$bin"
cat "$db" >/dev/null

# job NICE: starts a server with that exportNice, runs one job to the
# file store, stops the server; prints "wall_seconds peak_rss_kib".
job() {
  local nice=$1 port base t0 t1 id st s hwm
  port=$(free_port)
  base="http://127.0.0.1:$port"
  rm -rf "$work/data" "$work/exports"
  cat >"$work/sluice.json" <<JSON
{"dataDir": "$work/data", "databases": {"default": "$db"}, "store": {"type": "file", "dir": "$work/exports"},
 "limits": {"exportNice": $nice}}
JSON
  "$bin" serve --config "$work/sluice.json" --listen "127.0.0.1:$port" --log-level warn 2>"$work/serve.log" &
  srv_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  t0=$(date +%s.%N)
  id=$(submit_job "$base" '{"format":"sql"}')
  wait_job "$base" "$id" >/dev/null || exit 1
  t1=$(date +%s.%N)
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$srv_pid/status")
  kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true; srv_pid=
  awk -v a="$t0" -v b="$t1" -v r="$hwm" 'BEGIN { printf "%.3f %d\n", b - a, r }'
}

f_t=(); s_t=(); declare -A j_t j_r
mkdir -p "$work/fs"
for i in $(seq 1 "$runs"); do
  read -r t _ _ < <(measure "$work/f.time" "$bin" dump --db "$db" --format sql -o "$work/out.sql" --progress never)
  f_t+=("$t"); rm -f "$work/out.sql"
  read -r t2 _ _ < <(measure "$work/s.time" "$bin" dump --db "$db" --format sql --to "file://$work/fs/run-$i.sql" --progress never)
  s_t+=("$t2"); rm -rf "${work:?}/fs/"*
  line=$(printf 'run %d: dump -o file %6.2f s   --to file:// %6.2f s' "$i" "$t" "$t2")
  for n in $nices; do
    read -r jt jr < <(job "$n")
    j_t[$n]="${j_t[$n]:-} $jt"; j_r[$n]="${j_r[$n]:-} $jr"
    line+=$(printf '   job (nice %s) %6.2f s, %d KiB' "$n" "$jt" "$jr")
  done
  echo "$line"
done
mf=$(median "${f_t[@]}"); ms=$(median "${s_t[@]}")
printf '\nmedian dump -o file %.2f s; --to file:// %.2f s (%.2f×)\n' "$mf" "$ms" "$(awk -v a="$ms" -v b="$mf" 'BEGIN { print a / b }')"
for n in $nices; do
  # shellcheck disable=SC2086 # the lists are split on purpose
  mj=$(median ${j_t[$n]})
  # shellcheck disable=SC2086
  printf 'median job, exportNice %s: %.2f s (%.2f× dump -o file), peak server RSS %.1f MiB\n' "$n" "$mj" \
    "$(awk -v a="$mj" -v b="$mf" 'BEGIN { print a / b }')" "$(awk -v k="$(max_of ${j_r[$n]})" 'BEGIN { print k / 1024 }')"
done
