#!/usr/bin/env bash
# The test command (README.md and .ci/run): the xtask's formatting and lints,
# its unit and integration tests against the real Docker engine and registry,
# the status service's tests against a throwaway PostgreSQL and the worker's
# tests against a real PostgreSQL; suites that can share the machine run
# side by side, in lanes (below). Needs a host prepared by
# scripts/setup-host.sh.
#
# Counts every suite's tests as passed, failed or skipped (a skipped test
# does not fail the run, and does not count as passed); prints
# "all: P passed, F failed, S skipped" last.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=test/worker/lib/pg.sh
source test/worker/lib/pg.sh
# The PostgreSQL servers here are the worker lane's own: one inherited from
# a caller (a test of this script runs inside the worker suite) is never
# stopped by it.
PG_TEST_DIR=""

passed=0
failed=0
skipped=0
status=0

# The time since this script (or a lane) started: where a run's time goes.
clock() { printf '%dm%02ds' $((SECONDS / 60)) $((SECONDS % 60)); }

# Free disk (in MB) at the start, at its lowest (sampled every 10 s) and at
# the end: a full disk fails tests far from its cause.
free_mb() { df -Pm / | awk 'NR == 2 {print $4}'; }
disk_log=$(mktemp)
lanes=$(mktemp -d)
free_mb >"$disk_log"
(while sleep 10; do free_mb >>"$disk_log"; done) &
disk_sampler=$!
trap 'kill "$disk_sampler" 2>/dev/null; rm -rf "$disk_log" "$lanes"' EXIT

# count_results FILE PATTERN: adds up "N passed, M failed, S skipped" from
# the lines of FILE that the sed PATTERN turns into "N M S".
count_results() {
  local p f s
  while read -r p f s; do
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
  done < <(sed -nE "$2" "$1")
}

# count_unittest FILE: Python unittest's "Ran N tests" and its verdict,
# "OK", "OK (skipped=S)" or "FAILED (failures=F, errors=E, skipped=S)"; an
# unexpected success is a failure, an expected failure a pass.
count_unittest() {
  local ran verdict item bad=0 skips=0
  local -a items=()
  ran=$(sed -nE 's/^Ran ([0-9]+) tests? in .*/\1/p' "$1" | tail -1)
  verdict=$(grep -E '^(OK|FAILED)( \(.*\))?$' "$1" | tail -1 || true)
  [[ ! $verdict =~ \((.*)\) ]] || IFS=, read -r -a items <<<"${BASH_REMATCH[1]}"
  for item in "${items[@]}"; do
    item=${item# }
    [[ ${item##*=} =~ ^[0-9]+$ ]] || continue
    case $item in
      failures=* | errors=* | "unexpected successes="*) bad=$((bad + ${item##*=})) ;;
      skipped=*) skips=$((skips + ${item##*=})) ;;
    esac
  done
  passed=$((passed + ${ran:-0} - bad - skips))
  failed=$((failed + bad))
  skipped=$((skipped + skips))
}

# Lanes: suites that run side by side, each in the background, its output
# prefixed with its name as it comes and kept in $lanes/NAME.log, its exit
# status in $lanes/NAME.rc (none: it was cut short). lanes_wait waits for
# the lanes started since the last wait.
lane_pids=()
lane() {
  local name=$1
  shift
  (
    set +e
    SECONDS=0
    "$@" 2>&1 | tee "$lanes/$name.log" | sed -u "s/^/[$name] /"
    echo "${PIPESTATUS[0]}" >"$lanes/$name.rc"
    clock >"$lanes/$name.time"
  ) &
  lane_pids+=("$!")
}
lanes_wait() {
  local pid
  for pid in "${lane_pids[@]}"; do
    wait "$pid" || true
  done
  lane_pids=()
}

# lane_done NAME: the lane's exit status into the run's; a lane that left
# no status failed.
lane_done() {
  local rc
  rc=$(cat "$lanes/$1.rc" 2>/dev/null || echo missing)
  echo "==> lane $1: exit $rc after $(cat "$lanes/$1.time" 2>/dev/null || echo "?")"
  [[ $rc == 0 ]] || status=1
}

cargo_test() { cargo test --workspace --no-fail-fast --color never "$@"; }

# The status service's tests against a throwaway PostgreSQL (stopped on
# return), then the worker's suite (test/worker/run.sh starts its own).
# shellcheck disable=SC2317 # it runs through `lane`
worker_suites() {
  local rc=0
  trap pg_stop EXIT
  echo "==> ralph-status: python unittest (PostgreSQL: test/worker/lib/pg.sh) (at $(clock))"
  if pg_start && RALPH_TEST_DB_URL=$(pg_new_db ralph_status); then
    export RALPH_TEST_DB_URL
    (cd status && PYTHONPATH=src PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -v) 2>&1 || rc=1
  else
    echo "not ok start PostgreSQL for the status tests"
    rc=1
  fi
  pg_stop
  unset RALPH_TEST_DB_URL
  echo "==> worker: test/worker/run.sh (at $(clock))"
  if [[ -f test/worker/run.sh ]]; then
    bash test/worker/run.sh || rc=1
  else
    echo "not ok the worker's suite: test/worker/run.sh is missing (restore it, or say here where the suite moved)"
    echo "worker: 0 passed, 1 failed, 0 skipped"
    rc=1
  fi
  return "$rc"
}

# fmt and clippy: one check, counted on its own result line (it runs at the
# end of the engine lane, off the run's longest path).
# shellcheck disable=SC2317 # it runs through `lane`
lints() {
  echo "==> xtask: cargo fmt --check, cargo clippy (at $(clock))"
  if cargo fmt --all --check && cargo clippy --workspace --all-targets --color never -- -D warnings; then
    echo "xtask lints: 1 passed, 0 failed, 0 skipped"
  else
    echo "xtask lints: 0 passed, 1 failed, 0 skipped"
    return 1
  fi
}

# Every test binary runs, also after one failed, in two lanes side by side
# (much of a test's time is spent waiting on containers and emulation):
# - "rehearsal": image_repro, then the rehearsal, then the suites that don't
#   use the engine (Python, the worker's). image_repro goes first so that
#   its catalog build is the run's first build of the worker stand-in, with
#   no step cached: that build is its build 1, and the heavy image is built
#   cold once more, not twice. The worker's suite comes last: it keeps
#   both cores busy where the other lane ends, and its time limits hold on
#   a loaded machine (two that did not, a statement caught by polling and
#   an 8 s lease, were made independent of load).
# - "engine": the unit tests and every other integration binary, image_smoke
#   last (after the stand-ins' tests have built what it checks), then fmt
#   and clippy (a lane that ends sooner than the other).
# Tests that run beside each other name their own tags, registry
# namespaces and containers; image_smoke's checks for leftovers count only
# containers whose xtask has exited and volumes no container uses.
first=()
binaries=()
last=()
for file in xtask/tests/*.rs; do
  [[ -e $file ]] || continue
  name=$(basename "$file" .rs)
  case $name in
    image_repro | rehearsal) first+=(--test "$name") ;;
    image_smoke) last+=(--test "$name") ;;
    *) binaries+=(--test "$name") ;;
  esac
done
# The rehearsal lane's binaries are built first, and that lane starts at
# once; the engine lane builds the others as it starts.
echo "==> xtask: cargo test --no-run ${first[*]} (at $(clock))"
cargo_test --no-run "${first[@]}" || status=1
# shellcheck disable=SC2317 # they run through `lane`
rehearsal_lane() {
  local rc=0
  if ((${#first[@]})); then
    cargo_test "${first[@]}" || rc=1
  fi
  worker_suites || rc=1
  return "$rc"
}
# shellcheck disable=SC2317
engine_lane() {
  local rc=0
  cargo_test --bins "${binaries[@]}" || rc=1
  if ((${#last[@]})); then
    cargo_test "${last[@]}" || rc=1
  fi
  lints || rc=1
  return "$rc"
}
echo "==> lanes (at $(clock))"
lane rehearsal rehearsal_lane
lane engine engine_lane
lanes_wait
lane_done rehearsal
lane_done engine

# An ignored test is a skipped one.
for name in engine rehearsal; do
  count_results "$lanes/$name.log" 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p'
done
count_results "$lanes/engine.log" 's/^xtask lints: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/p'
# Every test binary ran and printed its result: one that crashed or was
# cut short, or never ran, is a failure named here.
expected_binaries=()
[[ ! -e xtask/src/main.rs ]] || expected_binaries+=(src/main.rs)
for file in xtask/tests/*.rs; do
  [[ ! -e $file ]] || expected_binaries+=("tests/$(basename "$file")")
done
ran=$(cat "$lanes"/{engine,rehearsal}.log 2>/dev/null | awk '
  /^ +Running / { if (cur != "") print cur, "no-result"; cur = ($2 == "unittests") ? $3 : $2 }
  /^test result: / { if (cur != "") print cur, "result"; cur = "" }
  END { if (cur != "") print cur, "no-result" }')
while read -r binary how; do
  [[ $how == no-result ]] || continue
  echo "not ok $binary: it printed no result (it crashed or was cut short)"
  failed=$((failed + 1))
done <<<"$ran"
for binary in "${expected_binaries[@]}"; do
  grep -q "^$binary " <<<"$ran" && continue
  echo "not ok $binary: it did not run"
  failed=$((failed + 1))
done
count_unittest "$lanes/rehearsal.log"
count_results "$lanes/rehearsal.log" 's/^worker: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/p'

((failed == 0)) || status=1
if ((status != 0 && failed == 0)); then
  failed=1 # a suite failed without reporting a count (a build error, say)
fi
free_mb >>"$disk_log"
echo
echo "disk: $(head -1 "$disk_log") MB free at the start, $(sort -n "$disk_log" | head -1) MB at the lowest, $(tail -1 "$disk_log") MB at the end"
echo "time: $(clock)"
echo "all: $passed passed, $failed failed, $skipped skipped"
exit "$status"
