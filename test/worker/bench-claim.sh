#!/usr/bin/env bash
# Claim benchmark: seeds TASKS tasks, then CLAIMERS concurrent claimers drain
# them, each claim one `task claim` invocation (as the worker does: a bash
# process and one psql session). Prints the throughput (claims/s) and the
# p50/p95/p99 claim latency (ms). Figures, not a pass/fail test (the goal:
# at least 100 claims/s and p95 under 100 ms with 8 claimers on 2 cores).
#
#   bash test/worker/bench-claim.sh [--tasks N] [--claimers N]
#
# Starts a throwaway PostgreSQL like the tests do, or uses BENCH_DB_URL (its
# tasks are truncated first: a database you can throw away).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
tasks=2000
claimers=8
while (($#)); do
  case $1 in
    --tasks) tasks=${2:?--tasks needs a number}; shift 2 ;;
    --claimers) claimers=${2:?--claimers needs a number}; shift 2 ;;
    -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench-claim: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $tasks =~ ^[1-9][0-9]*$ && $claimers =~ ^[1-9][0-9]*$ ]] \
  || { echo "bench-claim: --tasks and --claimers need positive numbers" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ralph-bench.XXXXXX")
chmod 0755 "$work"
export TMPDIR=$work
# shellcheck source=test/worker/lib/pg.sh
source "$here/lib/pg.sh"
cleanup() {
  pg_stop
  rm -rf "$work"
}
trap cleanup EXIT

if [[ -n ${BENCH_DB_URL:-} ]]; then
  RALPH_DB_URL=$BENCH_DB_URL
else
  pg_start
  RALPH_DB_URL=$(pg_new_db bench)
fi
export RALPH_DB_URL RALPH_HOME=$root RALPH_LEASE_SECONDS=300
task="$root/task"

"$task" init >/dev/null
psql "$RALPH_DB_URL" -X -q -v ON_ERROR_STOP=1 <<SQL
TRUNCATE task_dependencies, tasks, agents;
INSERT INTO tasks (id, description, priority, created_at)
SELECT 'bench/' || lpad(i::text, 6, '0'), 'benchmark task ' || i, i % 4,
       clock_timestamp() - make_interval(secs => $tasks - i)
FROM generate_series(1, $tasks) i;
ANALYZE tasks;
SQL

# claimer N: claims until nothing is left; one "latency_us id" line per claim.
claimer() {
  local n=$1 t0 t1 out rc
  while :; do
    t0=${EPOCHREALTIME/./}
    rc=0
    out=$("$task" --json claim --agent "bench-$n" 2>/dev/null) || rc=$?
    t1=${EPOCHREALTIME/./}
    case $rc in
      0) out=${out#*\"id\" : \"}; printf '%s %s\n' "$((t1 - t0))" "${out%%\"*}" ;;
      3) return 0 ;;
      *) echo "claimer $n: task claim failed (exit $rc)" >&2; return 1 ;;
    esac
  done >"$work/claims.$n"
}

# server_cpu_ticks: CPU used by the server's finished backends (the
# postmaster's reaped children), when we started the server.
server_cpu_ticks() {
  local stat fields
  [[ -n $PG_TEST_DIR && -f $PG_TEST_DIR/data/postmaster.pid ]] || { echo 0; return; }
  stat=$(<"/proc/$(head -n1 "$PG_TEST_DIR/data/postmaster.pid")/stat")
  read -r -a fields <<<"${stat##*) }"
  echo $((fields[13] + fields[14]))
}

read -r load _ </proc/loadavg
echo "bench-claim: $tasks tasks, $claimers concurrent claimers, $(nproc) CPUs (load average $load before the run), $("$PG_BIN/postgres" --version 2>/dev/null || psql --version)"
server_before=$(server_cpu_ticks)
start=${EPOCHREALTIME/./}
pids=()
for ((n = 1; n <= claimers; n++)); do
  claimer "$n" &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
end=${EPOCHREALTIME/./}
server_after=$(server_cpu_ticks)
# CPU of the claimers and everything they ran (bash's `times`, 2nd line).
times >"$work/times"

cat "$work"/claims.* >"$work/all"
claims=$(wc -l <"$work/all")
unique=$(cut -d' ' -f2 "$work/all" | sort -u | wc -l)
active=$(psql "$RALPH_DB_URL" -X -A -t -c "SELECT count(*) FROM tasks WHERE status = 'active'")
elapsed_us=$((end - start))
sort -n "$work/all" | cut -d' ' -f1 >"$work/sorted"

# percentile P: the latency (ms, 1 decimal) below which P% of the claims fall.
percentile() {
  local rank=$(((claims * $1 + 99) / 100)) us
  ((rank >= 1)) || rank=1
  us=$(sed -n "${rank}p" "$work/sorted")
  printf '%d.%d' $((us / 1000)) $((us % 1000 / 100))
}

printf 'claims:      %d (%d distinct tasks, %d active in the store)\n' "$claims" "$unique" "$active"
printf 'elapsed:     %d.%03d s\n' $((elapsed_us / 1000000)) $((elapsed_us % 1000000 / 1000))
printf 'throughput:  %d claims/s\n' $((claims * 1000000 / elapsed_us))
printf 'latency:     p50 %s ms, p95 %s ms, p99 %s ms, max %s ms\n' \
  "$(percentile 50)" "$(percentile 95)" "$(percentile 99)" "$(percentile 100)"
# cpu_ms TIME: "1m2.345s" in milliseconds.
cpu_ms() {
  local t=$1 m s
  m=${t%%m*}
  s=${t#*m}
  s=${s%s}
  echo $((m * 60000 + 10#${s%.*} * 1000 + 10#${s#*.}))
}
read -r _ _ < <(head -n1 "$work/times")
read -r cuser csys < <(tail -n1 "$work/times")
client_us=$(( ($(cpu_ms "$cuser") + $(cpu_ms "$csys")) * 1000 / claims ))
server_us=$(( (server_after - server_before) * 1000000 / $(getconf CLK_TCK) / claims ))
printf 'cpu:         %d.%d ms per claim in the client (bash + psql)' $((client_us / 1000)) $((client_us % 1000 / 100))
if ((server_us > 0)); then
  printf ', %d.%d ms in PostgreSQL; CPU-bound capacity on %d CPUs: %d claims/s\n' \
    $((server_us / 1000)) $((server_us % 1000 / 100)) "$(nproc)" $(($(nproc) * 1000000 / (client_us + server_us)))
else
  printf '\n'
fi
if ((claims != tasks || unique != tasks || active != tasks)); then
  echo "bench-claim: expected each of the $tasks tasks claimed exactly once" >&2
  exit 1
fi
