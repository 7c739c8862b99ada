#!/usr/bin/env bash
# Peak RSS of `sluice serve` while /import/dump receives one very large
# statement: one over limits.maxImportStatementBytes (refused with 413)
# and one just under it (loaded). Each case runs on a fresh server, and
# the peak is the kernel's high-water mark (VmHWM) read after the
# request, minus nothing: the idle RSS is printed beside it.
#
#   bench/import_rss.sh [LIMIT_MIB]      # default 64
#
# Needs curl and python3. Linux only. Not part of `go test`.
set -euo pipefail
BENCH_ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$BENCH_ROOT/bench/lib.sh"

limit_mib=${1:-64}
command -v curl >/dev/null || { log "curl is needed"; exit 1; }
make_work srv_pid
bin="$work/sluice"
build_sluice "$bin"

# statement FILE MIB KIND writes "INSERT INTO t VALUES(<literal>);" of
# about MIB MiB: a text literal, or a hex BLOB literal.
statement() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
path, mib, kind = sys.argv[1], float(sys.argv[2]), sys.argv[3]
n = int(mib * 1024 * 1024) - 40
with open(path, "w") as f:
    f.write("CREATE TABLE IF NOT EXISTS t(a);\n")
    if kind == "text":
        f.write("INSERT INTO t VALUES('" + "x" * n + "');\n")
    else:
        f.write("INSERT INTO t VALUES(X'" + "ab" * (n // 2) + "');\n")
PY
}

printf '%-6s %-22s %9s %6s %9s %9s\n' kind statement size_mib http idle_mib peak_mib
for kind in text blob; do
  for case in over under; do
    if [ "$case" = over ]; then size=$((limit_mib * 3)); else size=$(awk -v l="$limit_mib" 'BEGIN { print l - 0.01 }'); fi
    statement "$work/in.sql" "$size" "$kind"
    rm -f "$work/db.sqlite"*
    SLUICE_MAX_IMPORT_STATEMENT_BYTES=$((limit_mib * 1024 * 1024)) start_serve "$bin" "$work/db.sqlite" "$work"
    idle=$(awk '/^VmRSS:/ {print $2}' "/proc/$srv_pid/status")
    code=$(curl -sS -o "$work/out.json" -w '%{http_code}' -X POST --data-binary @"$work/in.sql" "$base/import/dump")
    hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$srv_pid/status")
    printf '%-6s %-22s %9.1f %6s %9.1f %9.1f\n' "$kind" "$case limit ($limit_mib MiB)" "$size" "$code" \
      "$(awk -v k="$idle" 'BEGIN { print k / 1024 }')" "$(awk -v k="$hwm" 'BEGIN { print k / 1024 }')"
    kill "$srv_pid"; wait "$srv_pid" 2>/dev/null || true; srv_pid=
  done
done
