# Shared helpers for the benchmark scripts (sourced, not run).
# shellcheck shell=bash

log() { printf 'bench: %s\n' "$*" >&2; }

# need_time makes sure GNU time (/usr/bin/time -v) is installed.
need_time() {
  if ! /usr/bin/time -v true >/dev/null 2>&1; then
    log "installing GNU time from Debian"
    local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq time >/dev/null
  fi
}

# make_work creates the scratch directory $work and an EXIT trap that
# stops the processes whose pids are in the variables named as arguments
# (empty or unset ones are skipped; they may change as the script runs),
# then removes $work.
make_work() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/sluice-bench.XXXXXX")
  bench_pid_vars="$*"
  bench_exit_cmds=()
  trap bench_cleanup EXIT
}

# on_exit CMD runs the command CMD (one string, eval'd) when the script
# exits, after the processes are stopped and before $work is removed.
on_exit() { bench_exit_cmds+=("$1"); }

bench_cleanup() {
  local v p c
  for v in $bench_pid_vars; do
    p=${!v:-}
    [ -n "$p" ] || continue
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  for c in "${bench_exit_cmds[@]}"; do
    eval "$c" || true
  done
  rm -rf "$work"
}

# build_sluice builds the sluice binary into $1.
build_sluice() {
  log "building sluice"
  (cd "$BENCH_ROOT" && go build -o "$1" ./cmd/sluice)
}

# settle lets memory freed by the previous measurement (its deleted
# outputs) go back to the host before the next one starts, so that every
# path starts from the same state. In a VM with free page reporting
# (virtio-balloon), the page cache is several times cheaper to fill from
# memory freed a moment ago than from memory the host must supply again;
# without the pause, the order of the paths decides which one pays
# (docs/benchmarks.md, "The page cache in the four-jobs reference").
# SETTLE_SECONDS sets the pause (default 3; 0 skips it).
settle() {
  sleep "${SETTLE_SECONDS:-3}"
}

# measure TIME_FILE CMD... runs CMD under /usr/bin/time -v with stdout
# to /dev/null and prints "wall_seconds max_rss_kib cpu_seconds" (cpu is
# user + system time, which is less disturbed than wall time by other
# work on a shared machine).
measure() {
  local tfile=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$tfile" "$@" >/dev/null
  t1=$(date +%s.%N)
  local rss cpu
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tfile")
  cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {print s}' "$tfile")
  awk -v a="$t0" -v b="$t1" -v r="$rss" -v c="$cpu" 'BEGIN { printf "%.3f %d %.2f\n", b - a, r, c }'
}

# succeeded TIME_FILE reports whether the command that measure timed
# into TIME_FILE exited 0: measure's callers read it through a process
# substitution, where the command's failure would pass unnoticed.
succeeded() { grep -q 'Exit status: 0$' "$1"; }

# median prints the median of its numeric arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# max_of prints the largest of its numeric arguments.
max_of() {
  printf '%s\n' "$@" | sort -g | tail -n 1
}

# free_port prints a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])' 2>/dev/null \
    || (cd "$BENCH_ROOT" && go run ./scripts/freeport)
}

# serve_config WORK DATABASES STORE [LIMITS] writes WORK/sluice.json:
# data under WORK/data, the databases (a JSON object of name to path),
# the store (a JSON object) and the limits (a JSON object, default {}).
serve_config() {
  local limits=${4:-}
  [ -n "$limits" ] || limits='{}'
  cat >"$1/sluice.json" <<JSON
{"dataDir": "$1/data", "databases": $2, "store": $3, "limits": $limits}
JSON
}

# file_store DIR prints the store JSON of a file store in DIR.
file_store() { printf '{"type": "file", "dir": "%s"}' "$1"; }

# start_serve BIN DB WORK [LIMITS] starts `BIN serve` on DB (file store
# under WORK, the config's limits object LIMITS) on a free loopback port,
# waits for /healthz and sets port, base and srv_pid; the caller's EXIT
# trap (make_work srv_pid) stops srv_pid.
start_serve() {
  serve_config "$3" "{\"default\": \"$2\"}" "$(file_store "$3/exports")" "${4:-}"
  serve_start "$1" "$3"
}

# serve_start BIN WORK starts `BIN serve --config WORK/sluice.json` on a
# free loopback port, waits for /healthz and sets port, base and srv_pid.
serve_start() {
  local bin=$1 work=$2
  port=$(free_port)
  base="http://127.0.0.1:$port"
  # stdout too goes to the log: a server holding a caller's pipe (a
  # command substitution) open would keep it waiting for the end.
  "$bin" serve --config "$work/sluice.json" --listen "127.0.0.1:$port" --log-level warn >"$work/serve.log" 2>&1 &
  srv_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$srv_pid" 2>/dev/null || { cat "$work/serve.log" >&2; log "sluice serve exited"; exit 1; }
    sleep 0.1
  done
  curl -fsS "$base/healthz" >/dev/null || { cat "$work/serve.log" >&2; log "sluice serve did not start"; stop_serve; exit 1; }
}

# stop_serve stops the server serve_start started.
stop_serve() {
  kill "$srv_pid" 2>/dev/null || true
  wait "$srv_pid" 2>/dev/null || true
  srv_pid=
}

# proc_kib PID FIELD prints a field of /proc/PID/status in KiB: VmRSS
# (resident now) or VmHWM (peak resident since the process started).
proc_kib() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"; }

# tree_kib PID FIELD is proc_kib summed over PID and its children: a
# server and its export worker (limits.exportProcess). For VmHWM the sum
# of the peaks is an upper bound of the peak of the sum.
tree_kib() {
  local p sum=0 v
  for p in "$1" $(pgrep -P "$1" || true); do
    v=$(proc_kib "$p" "$2" 2>/dev/null) && sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

# tree_cpu PID prints the CPU seconds (user + system) that PID and its
# children have used so far: a server and its export worker. Read before
# and after a job, the difference is the job's CPU, the server's share of
# it (status polls, the worker's messages) included.
tree_cpu() {
  local p tck
  tck=$(getconf CLK_TCK)
  for p in "$1" $(pgrep -P "$1" || true); do
    # utime and stime, fields 14 and 15 of /proc/PID/stat: 12 and 13
    # once the pid and the command name (which may hold spaces) are cut.
    sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }'
  done | awk -v t="$tck" '{ s += $1 } END { printf "%.2f\n", s / t }'
}

# rss_bound CONCURRENCY ESTIMATED_BYTES prints "part_size_bytes
# bound_bytes": the part size a job's upload picks for its estimate and
# issue 14's memory bound (N+1) × part size + 32 MiB (bench/partsize).
rss_bound() { (cd "$BENCH_ROOT" && go run ./bench/partsize -concurrency "$1" -estimate "$2"); }

# mib KIB prints KIB in MiB with one decimal.
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

# ratio A B prints A / B with two decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# use_s3 ENDPOINT ACCESS_KEY SECRET_KEY [REGION] points the sluice CLI
# (`--to s3://`, through the AWS_* variables) and the s3_* helpers at an
# S3 server.
use_s3() {
  export AWS_ENDPOINT_URL_S3=$1 AWS_ACCESS_KEY_ID=$2 AWS_SECRET_ACCESS_KEY=$3 AWS_REGION=${4:-us-east-1}
}

# use_test_s3 is use_s3 on the S3 test server the tests use, from the
# SLUICE_TEST_S3_* variables (source /tmp/s3env.sh or scripts/test's).
use_test_s3() {
  [ -n "${SLUICE_TEST_S3_ENDPOINT:-}" ] || { log "SLUICE_TEST_S3_ENDPOINT is unset: no S3 server (set SLUICE_TEST_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY, _REGION)"; exit 1; }
  use_s3 "$SLUICE_TEST_S3_ENDPOINT" "${SLUICE_TEST_S3_ACCESS_KEY:?}" "${SLUICE_TEST_S3_SECRET_KEY:?}" "${SLUICE_TEST_S3_REGION:-us-east-1}"
}

# s3_store BUCKET [PREFIX] prints the store JSON of the S3 server use_s3
# chose.
s3_store() {
  printf '{"type": "s3", "s3": {"endpoint": "%s", "region": "%s", "bucket": "%s", "prefix": "%s", "pathStyle": true, "accessKeyId": "%s", "secretAccessKey": "%s"}}' \
    "$AWS_ENDPOINT_URL_S3" "$AWS_REGION" "$1" "${2:-}" "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
}

# s3_curl ARGS... is curl with SigV4 signing for the S3 server use_s3 chose.
s3_curl() {
  curl -fsS --aws-sigv4 "aws:amz:$AWS_REGION:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

# s3_bucket_create NAME creates the bucket and removes it (with its
# objects) when the script exits.
s3_bucket_create() {
  s3_curl -X PUT -H 'Content-Length: 0' "$AWS_ENDPOINT_URL_S3/$1" >/dev/null || { log "cannot create bucket $1 on $AWS_ENDPOINT_URL_S3"; exit 1; }
  on_exit "s3_bucket_remove $1"
}

# s3_bucket_empty NAME deletes the bucket's objects and aborts its
# incomplete uploads (the first 1,000 of each: bench buckets hold a few).
s3_bucket_empty() {
  local u="$AWS_ENDPOINT_URL_S3/$1" k id
  for k in $(s3_curl "$u?list-type=2" | grep -o '<Key>[^<]*</Key>' | sed 's/<[^>]*>//g'); do
    s3_curl -X DELETE "$u/$k" >/dev/null
  done
  s3_curl "$u?uploads=" | { grep -o '<Key>[^<]*</Key><UploadId>[^<]*</UploadId>' || true; } |
    sed 's/<Key>//; s/<\/Key><UploadId>/ /; s/<\/UploadId>//' |
    while read -r k id; do s3_curl -X DELETE "$u/$k?uploadId=$id" >/dev/null; done
}

# s3_bucket_remove NAME empties and deletes the bucket.
s3_bucket_remove() {
  s3_bucket_empty "$1"
  s3_curl -X DELETE "$AWS_ENDPOINT_URL_S3/$1" >/dev/null
}

# submit_job BASE JSON starts an export job (POST /export/dump) and prints
# its id.
submit_job() {
  curl -fsS -H 'Content-Type: application/json' -d "$2" "$1/export/dump" | jq -r .result.jobId
}

# wait_job BASE ID waits for the job with the status long poll
# (?wait=55s: one request that the server answers when the job ends, so
# the script spends no CPU polling), asks again only if the poll ran out
# first, prints its status view once it has completed, and fails if it
# failed, was cancelled or answered something unexpected. Time a job by
# its createdAt and finishedAt (run_jobs does): when wait_job returns
# also counts the answer's trip and the script's own start-up.
wait_job() {
  local st s
  while :; do
    st=$(curl -fsS --max-time 70 "$1/export/dump/status/$2?wait=55s") || return 1
    s=$(jq -r .result.status <<<"$st")
    case "$s" in
      completed) printf '%s\n' "$st"; return 0 ;;
      queued|processing) ;;
      failed|cancelled) log "job $2 $s: $(jq -r .result.error <<<"$st")"; return 1 ;;
      *) log "job $2: unexpected status answer: $st"; return 1 ;;
    esac
  done
}

# epoch RFC3339 prints the time as seconds since the epoch, with the
# fraction.
epoch() { date -d "$1" +%s.%N; }


# run_jobs BIN WORK BODY DB... starts `BIN serve` with WORK/sluice.json
# (serve_config), reads its idle RSS, submits one job per DB (BODY, a
# JSON body, to POST /export/dump of the default database for "", of
# /db/DB/ otherwise) back to back, waits for all of them, reads
# its peak RSS and stops it. It prints "seconds peak_rss_kib idle_rss_kib
# estimated_bytes cpu_seconds": seconds from the first job's creation to
# the last one's end (server stamps), the largest job's size estimate,
# and the CPU the server and its worker used from the first submit to
# the last job's end (tree_cpu). It runs
# in a command substitution, whose subshell has no EXIT trap, so it stops
# the server itself on every path.
run_jobs() {
  local bin=$1 work=$2 body=$3 d r k id st idle hwm first="" last="" est=0 c f e cpu0 cpu1 routes=() ids=()
  shift 3
  serve_start "$bin" "$work"
  idle=$(tree_kib "$srv_pid" VmRSS)
  cpu0=$(tree_cpu "$srv_pid")
  for d in "$@"; do
    r=$base; [ -n "$d" ] && r="$base/db/$d"
    id=$(submit_job "$r" "$body") && [ -n "$id" ] && [ "$id" != null ] ||
      { log "submit to $r failed"; stop_serve; return 1; }
    routes+=("$r"); ids+=("$id")
  done
  for k in "${!ids[@]}"; do
    st=$(wait_job "${routes[$k]}" "${ids[$k]}") || { stop_serve; return 1; }
    c=$(epoch "$(jq -r .result.createdAt <<<"$st")"); f=$(epoch "$(jq -r .result.finishedAt <<<"$st")")
    e=$(jq -r '.result.progress.estimatedBytes // 0' <<<"$st")
    first=$(awk -v a="${first:-$c}" -v b="$c" 'BEGIN { print (b < a ? b : a) }')
    last=$(awk -v a="${last:-$f}" -v b="$f" 'BEGIN { print (b > a ? b : a) }')
    [ "$e" -gt "$est" ] && est=$e
  done
  cpu1=$(tree_cpu "$srv_pid")
  hwm=$(tree_kib "$srv_pid" VmHWM)
  stop_serve
  awk -v a="$first" -v b="$last" -v h="$hwm" -v i="$idle" -v e="$est" -v c="$cpu0" -v d="$cpu1" \
    'BEGIN { printf "%.3f %d %d %d %.2f\n", b - a, h, i, e, d - c }'
}

# record_jobs LABEL NICE OUT adds one run_jobs result OUT (at exportNice
# NICE) to the caller's associative arrays j_t, j_r, j_i and j_c
# (seconds, peak and idle RSS, CPU seconds, keyed by nice value), sets
# est to its estimate and appends the run's figures, labelled LABEL, to
# line.
record_jobs() {
  local jt jr ji jc
  read -r jt jr ji est jc <<<"$3"
  j_t[$2]="${j_t[$2]:-} $jt"; j_r[$2]="${j_r[$2]:-} $jr"; j_i[$2]="${j_i[$2]:-} $ji"; j_c[$2]="${j_c[$2]:-} $jc"
  line+=$(printf '   %s (nice %s) %6.2f s, %.2f s CPU, RSS idle %s → peak %s MiB' "$1" "$2" "$jt" "$jc" "$(mib "$ji")" "$(mib "$jr")")
}

# jobs_summary NICE sets mj, mjc, peak and idle from the runs record_jobs
# kept for NICE: median seconds, median CPU seconds, largest peak RSS,
# median idle RSS (KiB).
jobs_summary() {
  # shellcheck disable=SC2086 # the lists are split on purpose
  mj=$(median ${j_t[$1]}); mjc=$(median ${j_c[$1]}); peak=$(max_of ${j_r[$1]}); idle=$(median ${j_i[$1]})
}
