#!/usr/bin/env bash
# Times `sluice dump --format sql --to s3://bench/...` against a local
# versitygw (posix backend, loopback) and `sluice dump -o /dev/null` on
# the same database, interleaved, with peak RSS (GNU time).
#
#   go run ./bench/gen -o /tmp/bench.db -scale 1
#   bench/upload.sh /tmp/bench.db [RUNS]
#
# DUMP_ARGS adds flags to both dumps, for example
# DUMP_ARGS="--exclude attachments" to leave out the large-BLOB table.
#
# versitygw must be on PATH or in $(go env GOPATH)/bin (scripts/test
# installs it). Objects are deleted after each run to save disk. Not part
# of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

db=${1:?usage: bench/upload.sh DB [RUNS]}
runs=${2:-3}
dump_args=${DUMP_ARGS:-}
[ -f "$db" ] || { log "$db does not exist (make one with: go run ./bench/gen -o $db)"; exit 1; }
need_time
gobin=$(go env GOBIN); [ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
PATH="$gobin:$PATH"
command -v versitygw >/dev/null || { log "versitygw is needed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)"; exit 1; }

make_work vgw_pid
bin="$work/sluice"
build_sluice "$bin"

port=$(free_port)
mkdir -p "$work/s3/bench"   # with the posix backend a top-level directory is a bucket
versitygw --access benchkey --secret benchsecret --port "127.0.0.1:$port" posix "$work/s3" >"$work/vgw.log" 2>&1 &
vgw_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
use_s3 "http://127.0.0.1:$port" benchkey benchsecret
log "versitygw on $AWS_ENDPOINT_URL_S3"
cat "$db" >/dev/null

l_times=(); u_times=(); s_times=(); l_rss=(); u_rss=(); l_cpu=(); u_cpu=(); g_cpu=()
for i in $(seq 1 "$runs"); do
  # shellcheck disable=SC2086 # DUMP_ARGS is split into flags on purpose
  read -r t r c < <(measure "$work/l.time" "$bin" dump --db "$db" --format sql -o /dev/null --progress never $dump_args)
  l_times+=("$t"); l_rss+=("$r"); l_cpu+=("$c")
  printf 'run %d local (-o /dev/null): %7.2f s  %7d KiB peak RSS  %6.2f s CPU\n' "$i" "$t" "$r" "$c"
  g0=$(awk '{print $14 + $15}' "/proc/$vgw_pid/stat")
  # shellcheck disable=SC2086
  read -r t r c < <(measure "$work/u.time" "$bin" dump --db "$db" --format sql --to "s3://bench/run-$i.sql" --s3-path-style --progress never --log-level debug $dump_args 2>"$work/u.err")
  grep '^sluice:' "$work/u.err" >&2 || { cat "$work/u.err" >&2; exit 1; }
  u_times+=("$t"); u_rss+=("$r"); u_cpu+=("$c")
  g1=$(awk '{print $14 + $15}' "/proc/$vgw_pid/stat")
  g=$(awk -v a="$g0" -v b="$g1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz }')
  g_cpu+=("$g")
  # CompleteMultipartUpload's own time: versitygw's posix backend copies
  # every part into the object then, after the last byte was sent.
  k=$(sed -n 's/.*msg="upload complete".*complete_seconds=\([0-9.]*\).*/\1/p' "$work/u.err")
  k=${k:-0}
  s_times+=("$(awk -v a="$t" -v b="$k" 'BEGIN { printf "%.3f", a - b }')")
  printf 'run %d upload (--to s3://): %7.2f s (%.2f s of it in Complete)  %7d KiB peak RSS  %6.2f s CPU (+ versitygw %.2f s CPU)\n' "$i" "$t" "$k" "$r" "$c" "$g"
  rm -rf "${work:?}/s3/bench/"* "$work/s3/bench/".sgwtmp 2>/dev/null || true
done

ml=$(median "${l_times[@]}"); mu=$(median "${u_times[@]}")
printf '\nmedian local %.2f s, upload %.2f s, ratio upload/local = %.2f\n' "$ml" "$mu" "$(awk -v a="$mu" -v b="$ml" 'BEGIN { print a / b }')"
ms=$(median "${s_times[@]}")
printf 'median upload without Complete %.2f s, ratio = %.2f\n' "$ms" "$(awk -v a="$ms" -v b="$ml" 'BEGIN { print a / b }')"
printf 'median CPU (user+sys) local %.2f s, upload %.2f s, versitygw during upload %.2f s\n' \
  "$(median "${l_cpu[@]}")" "$(median "${u_cpu[@]}")" "$(median "${g_cpu[@]}")"
printf 'peak RSS local %.1f MiB, upload %.1f MiB (max over runs)\n' \
  "$(awk -v k="$(max_of "${l_rss[@]}")" 'BEGIN { print k / 1024 }')" \
  "$(awk -v k="$(max_of "${u_rss[@]}")" 'BEGIN { print k / 1024 }')"
