#!/usr/bin/env bash
# Times `sluice restore` against `sqlite3 new.db < dump.sql` on the same
# SQL dump (written once by sluice dump), interleaved, and `sluice verify`
# of that dump against its manifest; reports each run, the medians and the
# ratios restore/sqlite3 and verify/restore, with peak RSS (GNU time).
#
#   go run ./bench/gen -o /tmp/bench.db -scale 0.1   # ~0.1 GB, once
#   bench/restore.sh /tmp/bench.db [RUNS]              # RUNS defaults to 3
#
# Not part of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

db=${1:?usage: bench/restore.sh DB [RUNS]}
runs=${2:-3}
[ -f "$db" ] || { log "$db does not exist (make one with: go run ./bench/gen -o $db)"; exit 1; }
command -v sqlite3 >/dev/null || { log "the sqlite3 CLI is needed"; exit 1; }
need_time

make_work
bin="$work/sluice"
build_sluice "$bin"

dumpfile="$work/dump.sql"
"$bin" dump --db "$db" -o "$dumpfile" --manifest --progress never 2>/dev/null
size=$(stat -c %s "$dumpfile")
log "dump of $db: $(awk -v s="$size" 'BEGIN { printf "%.2f GB", s / 1e9 }'), sqlite3 $(sqlite3 --version | cut -d' ' -f1)"
cat "$dumpfile" >/dev/null

s_times=(); q_times=(); v_times=(); s_rss=(); q_rss=(); v_rss=()
for i in $(seq 1 "$runs"); do
  rm -f "$work/s.db" "$work/q.db"
  read -r t r c < <(measure "$work/s.time" "$bin" restore --db "$work/s.db" --progress never "$dumpfile")
  s_times+=("$t"); s_rss+=("$r")
  printf 'run %d sluice restore : %7.2f s  %7d KiB peak RSS  %6.2f s CPU\n' "$i" "$t" "$r" "$c"
  read -r t r c < <(measure "$work/q.time" sh -c "sqlite3 '$work/q.db' < '$dumpfile'")
  q_times+=("$t"); q_rss+=("$r")
  printf 'run %d sqlite3 < dump : %7.2f s  %7d KiB peak RSS  %6.2f s CPU\n' "$i" "$t" "$r" "$c"
  read -r t r c < <(measure "$work/v.time" "$bin" verify --progress never --tmp-dir "$work" "$dumpfile")
  v_times+=("$t"); v_rss+=("$r")
  printf 'run %d sluice verify  : %7.2f s  %7d KiB peak RSS  %6.2f s CPU\n' "$i" "$t" "$r" "$c"
done
if [ "$(sqlite3 "$work/s.db" .dump | sha256sum)" != "$(sqlite3 "$work/q.db" .dump | sha256sum)" ]; then
  log "WARNING: the two restored databases do not .dump identically"
fi

ms=$(median "${s_times[@]}"); mq=$(median "${q_times[@]}"); mv=$(median "${v_times[@]}")
printf '\nmedian restore %.2f s, sqlite3 %.2f s, ratio restore/sqlite3 = %.2f\n' "$ms" "$mq" "$(awk -v a="$ms" -v b="$mq" 'BEGIN { print a / b }')"
printf 'median verify %.2f s, ratio verify/restore = %.2f\n' "$mv" "$(awk -v a="$mv" -v b="$ms" 'BEGIN { print a / b }')"
printf 'peak RSS restore %.1f MiB, sqlite3 %.1f MiB, verify %.1f MiB (max over runs)\n' \
  "$(awk -v k="$(max_of "${s_rss[@]}")" 'BEGIN { print k / 1024 }')" \
  "$(awk -v k="$(max_of "${q_rss[@]}")" 'BEGIN { print k / 1024 }')" \
  "$(awk -v k="$(max_of "${v_rss[@]}")" 'BEGIN { print k / 1024 }')"
