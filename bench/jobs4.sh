#!/usr/bin/env bash
# Four jobs at once (issue 14, item 5): four async SQL jobs submitted
# together, one on each of four databases, through `sluice serve` to the
# default file store, against the four `sluice dump -o FILE` of the same
# databases run one after the other; interleaved, as a ratio within one
# run (goal ≤ 1.3×), once per export nice value (limits.exportNice), with
# the server's idle and peak RSS and the bound for four jobs,
# 4 × (N+1) × part size + 32 MiB.
#
#   go run ./bench/gen -o /tmp/b02.db -scale 0.2     # ~0.2 GB, 0.37 GB of SQL
#   bench/jobs4.sh /tmp/b02.db [RUNS]
#
# The four databases are separate copies of DB in the scratch directory.
# EXTRA_LIMITS adds members to the config's limits object, e.g.
# EXTRA_LIMITS='"exportProcess": false' to run the jobs inside the server.
# NICES lists the exportNice values (default "19 0"); UPLOAD_CONCURRENCY is
# limits.uploadConcurrency (default 4); limits.maxConcurrentJobs is 4, so
# all four run at once. The jobs' time runs from the first one's creation
# to the last one's end, stamped by the server. That small jobs still
# overtake large ones is TestFairness (jobs/badinput_test.go), not timed
# here. Linux only; needs curl and jq. Not part of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

src=${1:?usage: bench/jobs4.sh DB [RUNS]}
runs=${2:-3}
nices=${NICES:-19 0}
conc=${UPLOAD_CONCURRENCY:-4}
jobs=4
[ -f "$src" ] || { log "$src does not exist (make one with: go run ./bench/gen -o $src -scale 0.2)"; exit 1; }
command -v jq >/dev/null || { log "jq is needed"; exit 1; }
need_time
make_work srv_pid
bin="$work/sluice"
build_sluice "$bin"

dbs=(); dbjson=""; routes=()
for k in $(seq 1 "$jobs"); do
  d="$work/db$k.sqlite"
  cp "$src" "$d"
  [ -f "$src-wal" ] && cp "$src-wal" "$d-wal"
  cat "$d" >/dev/null
  name=db$k; [ "$k" = 1 ] && name=default # the config needs its default database
  dbs+=("$d"); dbjson+="${dbjson:+, }\"$name\": \"$d\""
  routes+=("$([ "$k" = 1 ] || echo "$name")") # "" is the default database's route
done
log "$jobs copies of $src ($(du -sh "$src" | cut -f1) each) in $work"

# cli_all: the four CLI dumps one after the other, each to a file of its
# own; prints the sums of their wall and CPU seconds. The four files are
# kept until the last dump ends, as the jobs' four objects are: one file
# rewritten four times would reuse the page cache its predecessor just
# freed, which in a VM is several times cheaper than fresh memory
# (docs/benchmarks.md, "The page cache in the four-jobs reference").
cli_all() {
  local total=0 cpu=0 k t c
  mkdir -p "$work/cli"
  settle
  for k in "${!dbs[@]}"; do
    read -r t _ c < <(measure "$work/cli.time" "$bin" dump --db "${dbs[$k]}" --format sql -o "$work/cli/out$k.sql" --progress never 2>"$work/cli.err")
    succeeded "$work/cli.time" || { cat "$work/cli.err" >&2; log "sluice dump of ${dbs[$k]} failed"; exit 1; }
    total=$(awk -v a="$total" -v b="$t" 'BEGIN { print a + b }')
    cpu=$(awk -v a="$cpu" -v b="$c" 'BEGIN { print a + b }')
  done
  rm -rf "$work/cli"
  echo "$total $cpu"
}

# jobs_all NICE: the four jobs at once; prints run_jobs's line.
jobs_all() {
  rm -rf "$work/data" "$work/exports"
  settle
  serve_config "$work" "{$dbjson}" "$(file_store "$work/exports")" \
    "{\"exportNice\": $1, \"uploadConcurrency\": $conc, \"maxConcurrentJobs\": $jobs${EXTRA_LIMITS:+, $EXTRA_LIMITS}}"
  run_jobs "$bin" "$work" '{"format":"sql"}' "${routes[@]}" || return 1
  rm -rf "$work/exports"
}

c_t=(); c_c=(); declare -A j_t j_r j_i j_c
est=0
for i in $(seq 1 "$runs"); do
  read -r t c < <(cli_all) || exit 1
  c_t+=("$t"); c_c+=("$c")
  line=$(printf 'run %d: 4 × dump -o file, one after another %6.2f s, %.2f s CPU' "$i" "$t" "$c")
  for n in $nices; do
    out=$(jobs_all "$n") || exit 1
    record_jobs "4 jobs at once" "$n" "$out"
  done
  echo "$line"
done

mc=$(median "${c_t[@]}"); mcc=$(median "${c_c[@]}")
printf '\nmedian 4 × dump -o file, one after another: %.2f s, CPU %.2f s\n' "$mc" "$mcc"
read -r ps bound < <(rss_bound "$conc" "$est")
for n in $nices; do
  jobs_summary "$n"
  printf 'median 4 jobs at once, exportNice %s: %.2f s (%s× the CLI dumps; goal ≤ 1.3×), CPU %.2f s (%s×); server RSS idle %s MiB, peak %s MiB (jobs share %s MiB)\n' \
    "$n" "$mj" "$(ratio "$mj" "$mc")" "$mjc" "$(ratio "$mjc" "$mcc")" "$(mib "$idle")" "$(mib "$peak")" "$(mib "$(awk -v p="$peak" -v i="$idle" 'BEGIN { print p - i }')")"
done
one=$((bound - 32 * 1024 * 1024))
printf 'bound %d × (N+1) × part size + 32 MiB = %d × (%d+1) × %s MiB + 32 MiB = %s MiB (one job: %s MiB)\n' \
  "$jobs" "$jobs" "$conc" "$(mib $((ps / 1024)))" "$(mib $(((jobs * one) / 1024 + 32 * 1024)))" "$(mib $((bound / 1024)))"
