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
  trap bench_cleanup EXIT
}

bench_cleanup() {
  local v p
  for v in $bench_pid_vars; do
    p=${!v:-}
    [ -n "$p" ] || continue
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}

# build_sluice builds the sluice binary into $1.
build_sluice() {
  log "building sluice"
  (cd "$BENCH_ROOT" && go build -o "$1" ./cmd/sluice)
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

# start_serve BIN DB WORK starts `BIN serve` on DB (file store under
# WORK) on a free loopback port, waits for /healthz and sets port, base
# and srv_pid; the caller's EXIT trap (make_work srv_pid) stops srv_pid.
start_serve() {
  local bin=$1 db=$2 work=$3
  port=$(free_port)
  base="http://127.0.0.1:$port"
  cat >"$work/sluice.json" <<JSON
{"dataDir": "$work/data", "databases": {"default": "$db"}, "store": {"type": "file", "dir": "$work/exports"}}
JSON
  "$bin" serve --config "$work/sluice.json" --listen "127.0.0.1:$port" --log-level warn 2>"$work/serve.log" &
  srv_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$srv_pid" 2>/dev/null || { cat "$work/serve.log" >&2; log "sluice serve exited"; exit 1; }
    sleep 0.1
  done
  curl -fsS "$base/healthz" >/dev/null || { cat "$work/serve.log" >&2; log "sluice serve did not start"; exit 1; }
}

# submit_job BASE JSON starts an export job (POST /export/dump) and prints
# its id.
submit_job() {
  curl -fsS -H 'Content-Type: application/json' -d "$2" "$1/export/dump" | jq -r .result.jobId
}

# wait_job BASE ID [INTERVAL] polls the job every INTERVAL seconds
# (default 0.05, so a timing ends within that of the job's own end),
# prints its status view once it has completed, and fails if it failed,
# was cancelled or answered something unexpected.
wait_job() {
  local st s
  while :; do
    st=$(curl -fsS "$1/export/dump/status/$2") || return 1
    s=$(jq -r .result.status <<<"$st")
    case "$s" in
      completed) printf '%s\n' "$st"; return 0 ;;
      queued|processing) ;;
      failed|cancelled) log "job $2 $s: $(jq -r .result.error <<<"$st")"; return 1 ;;
      *) log "job $2: unexpected status answer: $st"; return 1 ;;
    esac
    sleep "${3:-0.05}"
  done
}
