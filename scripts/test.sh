#!/usr/bin/env bash
# The test command (README.md and .ci/run): the xtask's formatting and lints,
# its unit and integration tests against the real Docker engine and registry,
# then the worker's tests against a real PostgreSQL. Needs a host prepared by
# scripts/setup-host.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT

passed=0
failed=0
status=0

# count_results PATTERN: adds up "N passed; M failed" style lines in $log.
count_results() {
  local p f
  while read -r p f; do
    passed=$((passed + p))
    failed=$((failed + f))
  done < <(sed -nE "$1" "$log")
}

# count_unittest: Python unittest's "Ran N tests" and "FAILED (failures=F, errors=E)".
count_unittest() {
  local ran bad=0 n
  ran=$(sed -nE 's/^Ran ([0-9]+) tests? in .*/\1/p' "$log" | tail -1)
  while read -r n; do
    bad=$((bad + n))
  done < <(grep -oE '(failures|errors)=[0-9]+' "$log" | cut -d= -f2)
  passed=$((passed + ${ran:-0} - bad))
  failed=$((failed + bad))
}

echo "==> xtask: cargo fmt --check, cargo clippy"
if cargo fmt --all --check && cargo clippy --workspace --all-targets --color never -- -D warnings; then
  passed=$((passed + 1))
else
  status=1
  failed=$((failed + 1))
fi

echo "==> xtask: cargo test"
cargo test --workspace --color never 2>&1 | tee "$log" || status=1
count_results 's/^test result: [a-zA-Z]+\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2/p'

echo "==> ralph-status: python unittest"
(cd status && PYTHONPATH=src PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -v) 2>&1 | tee "$log" || status=1
count_unittest

if [[ -f test/worker/run.sh ]]; then
  echo "==> worker: test/worker/run.sh"
  bash test/worker/run.sh 2>&1 | tee "$log" || status=1
  count_results 's/^worker: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p'
fi

if ((status != 0 && failed == 0)); then
  failed=1 # a suite failed without reporting a count (a build error, say)
fi
echo
echo "all: $passed passed, $failed failed"
exit "$status"
