#!/usr/bin/env bash
# The test command (README.md and .ci/run): the xtask's formatting and lints,
# its unit and integration tests against the real Docker engine and registry,
# the status service's tests against a throwaway PostgreSQL, then the
# worker's tests against a real PostgreSQL. Needs a host prepared by
# scripts/setup-host.sh.
#
# Counts every suite's tests as passed, failed or skipped (a skipped test
# does not fail the run, and does not count as passed); prints
# "all: P passed, F failed, S skipped" last.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
log=$(mktemp)
# shellcheck source=test/worker/lib/pg.sh
source test/worker/lib/pg.sh
trap 'pg_stop; rm -f "$log"' EXIT

passed=0
failed=0
skipped=0
status=0

# Free disk (in MB) at the start, at its lowest (sampled every 10 s) and at
# the end: a full disk fails tests far from its cause.
free_mb() { df -Pm / | awk 'NR == 2 {print $4}'; }
disk_log=$(mktemp)
free_mb >"$disk_log"
(while sleep 10; do free_mb >>"$disk_log"; done) &
disk_sampler=$!
trap 'kill "$disk_sampler" 2>/dev/null; pg_stop; rm -f "$log" "$disk_log"' EXIT

# count_results PATTERN: adds up "N passed, M failed, S skipped" from the
# lines of $log that the sed PATTERN turns into "N M S".
count_results() {
  local p f s
  while read -r p f s; do
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
  done < <(sed -nE "$1" "$log")
}

# count_unittest: Python unittest's "Ran N tests" and its verdict, "OK",
# "OK (skipped=S)" or "FAILED (failures=F, errors=E, skipped=S)"; an
# unexpected success is a failure, an expected failure a pass.
count_unittest() {
  local ran verdict item bad=0 skips=0
  local -a items=()
  ran=$(sed -nE 's/^Ran ([0-9]+) tests? in .*/\1/p' "$log" | tail -1)
  verdict=$(grep -E '^(OK|FAILED)( \(.*\))?$' "$log" | tail -1 || true)
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

echo "==> xtask: cargo fmt --check, cargo clippy"
if cargo fmt --all --check && cargo clippy --workspace --all-targets --color never -- -D warnings; then
  passed=$((passed + 1))
else
  status=1
  failed=$((failed + 1))
fi

echo "==> xtask: cargo test"
# Every test binary runs, also after one failed: the totals count them all.
cargo test --workspace --no-fail-fast --color never 2>&1 | tee "$log" || status=1
# An ignored test is a skipped one.
count_results 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p'

echo "==> ralph-status: python unittest (PostgreSQL: test/worker/lib/pg.sh)"
# A throwaway PostgreSQL for the tests that need one (RALPH_TEST_DB_URL);
# stopped on exit.
if pg_start && RALPH_TEST_DB_URL=$(pg_new_db ralph_status); then
  export RALPH_TEST_DB_URL
else
  echo "not ok start PostgreSQL for the status tests"
  status=1
  failed=$((failed + 1))
fi
(cd status && PYTHONPATH=src PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -v) 2>&1 | tee "$log" || status=1
count_unittest
pg_stop
unset RALPH_TEST_DB_URL

if [[ -f test/worker/run.sh ]]; then
  echo "==> worker: test/worker/run.sh"
  bash test/worker/run.sh 2>&1 | tee "$log" || status=1
  count_results 's/^worker: ([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$/\1 \2 \3/p'
fi

if ((status != 0 && failed == 0)); then
  failed=1 # a suite failed without reporting a count (a build error, say)
fi
free_mb >>"$disk_log"
echo
echo "disk: $(head -1 "$disk_log") MB free at the start, $(sort -n "$disk_log" | head -1) MB at the lowest, $(tail -1 "$disk_log") MB at the end"
echo "all: $passed passed, $failed failed, $skipped skipped"
exit "$status"
