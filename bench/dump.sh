#!/usr/bin/env bash
# Times `sluice dump --format sql -o /dev/null` against `sqlite3 DB .dump`
# on the same database, interleaved (sluice, sqlite3, sluice, ...), and
# reports each run, the medians, the median ratio and peak RSS (GNU time).
#
#   go run ./bench/gen -o /tmp/bench.db -scale 1     # ~1.05 GB, once
#   bench/dump.sh /tmp/bench.db [RUNS]                 # RUNS defaults to 3
#
# Extra sluice flags can be passed in SLUICE_FLAGS (for example
# SLUICE_FLAGS="--compress zstd"). Not part of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

db=${1:?usage: bench/dump.sh DB [RUNS]}
runs=${2:-3}
[ -f "$db" ] || { log "$db does not exist (make one with: go run ./bench/gen -o $db)"; exit 1; }
command -v sqlite3 >/dev/null || { log "the sqlite3 CLI is needed"; exit 1; }
need_time

make_work
bin="$work/sluice"
build_sluice "$bin"

size=$(stat -c %s "$db")
log "database $db: $(awk -v s="$size" 'BEGIN { printf "%.2f GB", s / 1e9 }'), sqlite3 $(sqlite3 --version | cut -d' ' -f1)"
log "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
log "warming the page cache"
cat "$db" "$db-wal" >/dev/null 2>&1 || cat "$db" >/dev/null

s_times=(); q_times=(); s_rss=(); q_rss=(); s_cpu=(); q_cpu=()
for i in $(seq 1 "$runs"); do
  # shellcheck disable=SC2086
  read -r t r c < <(measure "$work/s.time" "$bin" dump --db "$db" --format sql -o /dev/null --progress never ${SLUICE_FLAGS:-})
  s_times+=("$t"); s_rss+=("$r"); s_cpu+=("$c")
  printf 'run %d sluice : %7.2f s  %7d KiB peak RSS  %6.2f s CPU\n' "$i" "$t" "$r" "$c"
  read -r t r c < <(measure "$work/q.time" sqlite3 "$db" .dump)
  q_times+=("$t"); q_rss+=("$r"); q_cpu+=("$c")
  printf 'run %d sqlite3: %7.2f s  %7d KiB peak RSS  %6.2f s CPU\n' "$i" "$t" "$r" "$c"
done

ms=$(median "${s_times[@]}"); mq=$(median "${q_times[@]}")
printf '\nmedian sluice  %.2f s, sqlite3 %.2f s, ratio sluice/sqlite3 = %.2f\n' "$ms" "$mq" "$(awk -v a="$ms" -v b="$mq" 'BEGIN { print a / b }')"
printf 'median CPU (user+sys) sluice %.2f s, sqlite3 %.2f s\n' "$(median "${s_cpu[@]}")" "$(median "${q_cpu[@]}")"
printf 'load average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'peak RSS sluice %.1f MiB, sqlite3 %.1f MiB (max over runs)\n' \
  "$(awk -v k="$(max_of "${s_rss[@]}")" 'BEGIN { print k / 1024 }')" \
  "$(awk -v k="$(max_of "${q_rss[@]}")" 'BEGIN { print k / 1024 }')"
