#!/usr/bin/env bash
# Times an async export job (POST /export/dump through `sluice serve`)
# against the CLI dump to the same store, interleaved, as ratios within
# one run; once per export nice value (limits.exportNice); with the CPU
# seconds (user + system) of each, the server's idle RSS before the job,
# its peak RSS, and issue 14's bound (N+1) × part size + 32 MiB for the
# config in use. The CPU ratios tell a path that does more work from one
# that waits more: on two cores the job is bound by its CPU.
#
#   go run ./bench/gen -o /tmp/bench.db -scale 0.25
#   bench/job.sh /tmp/bench.db [RUNS]                 # file store
#   . /tmp/s3env.sh; STORE=s3 bench/job.sh /tmp/bench.db [RUNS]
#
# STORE=file (default): the job to the default file store against `sluice
# dump -o FILE`, `sluice dump --to file://` and `sluice dump -o FILE
# --manifest` (the job's engine work, digests included, without a store).
# STORE=s3: the job to an S3 server against `sluice dump --to s3://` to
# the same server; the server is the tests' one, from SLUICE_TEST_S3_*
# (endpoint, access key, secret key, region). The script creates a bucket
# of its own there, empties it after every run and removes it at exit.
#
# EXTRA_LIMITS adds members to the config's limits object, e.g.
# EXTRA_LIMITS='"exportProcess": false' to run the jobs inside the server.
# NICES lists the exportNice values to run the job with (default "19 0");
# UPLOAD_CONCURRENCY is limits.uploadConcurrency, the N of the bound
# (default 4, the config's default). The job's time is its own
# (finishedAt − createdAt, stamped by the server), so the status long poll
# adds nothing to it. Linux only; needs curl and jq. Not part of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

db=${1:?usage: [STORE=file|s3] bench/job.sh DB [RUNS]}
runs=${2:-3}
nices=${NICES:-19 0}
store=${STORE:-file}
conc=${UPLOAD_CONCURRENCY:-4}
[ -f "$db" ] || { log "$db does not exist (make one with: go run ./bench/gen -o $db)"; exit 1; }
db=$(cd "$(dirname "$db")" && pwd)/$(basename "$db")
command -v jq >/dev/null || { log "jq is needed"; exit 1; }
need_time
make_work srv_pid
bin="$work/sluice"
build_sluice "$bin"
case "$store" in
  file) ;;
  s3)
    use_test_s3
    bucket="sluice-bench-$(date +%s)-$$"
    s3_bucket_create "$bucket"
    log "S3 server $AWS_ENDPOINT_URL_S3, bucket $bucket" ;;
  *) log "STORE must be file or s3"; exit 1 ;;
esac
cat "$db" >/dev/null

# job NICE: one SQL job through a server with that exportNice on the
# store; prints run_jobs's "seconds peak_rss_kib idle_rss_kib
# estimated_bytes".
job() {
  local target
  rm -rf "$work/data" "$work/exports"
  settle
  if [ "$store" = s3 ]; then target=$(s3_store "$bucket" job/); else target=$(file_store "$work/exports"); fi
  serve_config "$work" "{\"default\": \"$db\"}" "$target" "{\"exportNice\": $1, \"uploadConcurrency\": $conc${EXTRA_LIMITS:+, $EXTRA_LIMITS}}"
  run_jobs "$bin" "$work" '{"format":"sql"}' "" || return 1
  # The object goes as soon as it is measured, as cli's outputs do, so
  # that every path starts with no earlier output held in memory
  # (docs/benchmarks.md, "The page cache in the four-jobs reference").
  rm -rf "$work/exports"
  [ "$store" = s3 ] && s3_bucket_empty "$bucket"
  return 0
}

# cli NAME DEST: one CLI dump of the database to DEST (-o FILE or --to
# URL); prints its wall and CPU seconds and removes what it wrote.
cli() {
  local t c
  mkdir -p "$work/fs"
  settle
  # shellcheck disable=SC2086 # DEST is two words on purpose
  read -r t _ c < <(measure "$work/$1.time" "$bin" dump --db "$db" --format sql $2 --progress never --s3-path-style 2>"$work/cli.err")
  succeeded "$work/$1.time" || { cat "$work/cli.err" >&2; log "sluice dump $2 failed"; exit 1; }
  rm -rf "$work/out.sql" "$work/out.sql.manifest.json" "${work:?}/fs"
  [ "$store" = s3 ] && s3_bucket_empty "$bucket"
  echo "$t $c"
}

if [ "$store" = s3 ]; then
  names=("--to s3://"); dests=("--to s3://$bucket/cli/run.sql")
else
  # -o --manifest does the job's engine work (the per-table digests) without the store.
  names=("dump -o file" "--to file://" "-o --manifest"); dests=("-o $work/out.sql" "--to file://$work/fs/run.sql" "-o $work/out.sql --manifest")
fi
declare -A c_t c_c j_t j_r j_i j_c
est=0
for i in $(seq 1 "$runs"); do
  line="run $i:"
  for k in "${!names[@]}"; do
    read -r t c < <(cli "c$k" "${dests[$k]}") || exit 1
    c_t[$k]="${c_t[$k]:-} $t"; c_c[$k]="${c_c[$k]:-} $c"
    line+=$(printf '   %s %6.2f s, %.2f s CPU' "${names[$k]}" "$t" "$c")
  done
  for n in $nices; do
    out=$(job "$n") || exit 1
    record_jobs "job" "$n" "$out"
  done
  echo "$line"
done

# shellcheck disable=SC2086 # the lists are split on purpose
base_t=$(median ${c_t[0]})
# shellcheck disable=SC2086
base_c=$(median ${c_c[0]})
echo
for k in "${!names[@]}"; do
  # shellcheck disable=SC2086
  m=$(median ${c_t[$k]}); mc=$(median ${c_c[$k]})
  printf 'median %s %.2f s (%s× %s), CPU %.2f s (%s×)\n' "${names[$k]}" "$m" "$(ratio "$m" "$base_t")" "${names[0]}" "$mc" "$(ratio "$mc" "$base_c")"
done
read -r ps bound < <(rss_bound "$conc" "$est")
for n in $nices; do
  jobs_summary "$n"
  printf 'median job, exportNice %s: %.2f s (%s× %s), CPU %.2f s (%s×); server RSS idle %s MiB, peak %s MiB (job share %s MiB)\n' \
    "$n" "$mj" "$(ratio "$mj" "$base_t")" "${names[0]}" "$mjc" "$(ratio "$mjc" "$base_c")" "$(mib "$idle")" "$(mib "$peak")" "$(mib "$(awk -v p="$peak" -v i="$idle" 'BEGIN { print p - i }')")"
done
printf 'bound (N+1) × part size + 32 MiB = (%d+1) × %s MiB + 32 MiB = %s MiB (estimate %s bytes)\n' \
  "$conc" "$(mib $((ps / 1024)))" "$(mib $((bound / 1024)))" "$est"
