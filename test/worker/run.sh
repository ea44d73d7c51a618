#!/usr/bin/env bash
# The worker's tests, one entry point: shellcheck on every shell script of
# the worker, then the bats suites against a throwaway PostgreSQL (started
# here, in a temp dir on a loopback port, and stopped even on failure).
# Prints "worker: N passed, M failed, S skipped" last (a skipped test is
# neither passed nor failed); exits non-zero on any failure.
# Needs (Debian 12): postgresql, postgresql-client, shellcheck, bats, jq, git.
#
#   bash test/worker/run.sh [BATS_FILE…]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

passed=0
failed=0
skipped=0

# Everything the run creates lives under one directory, removed at the end.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/ralph-worker-tests.XXXXXX")
chmod 0755 "$run_tmp"
export TMPDIR=$run_tmp
# shellcheck source=test/worker/lib/pg.sh
source "$here/lib/pg.sh"
# This run's server is its own: one inherited from a caller (this script's
# own tests run inside the worker suite) is never stopped by it.
PG_TEST_DIR=""

tap=""
bats_status=""
finish() {
  local rc=$?
  if [[ -n $tap && -f $tap ]]; then
    # bats: "ok N name # skip [reason]" for a skipped test.
    skipped=$((skipped + $(grep -cE '^ok .* # skip( |$)' "$tap" || true)))
    passed=$((passed + $(grep -vE '^ok .* # skip( |$)' "$tap" | grep -c '^ok ' || true)))
    failed=$((failed + $(grep -c '^not ok ' "$tap" || true)))
    # The plan ("1..N") against what reported: a run cut short fails every
    # test that never ran; a failed run that reported no failure, once.
    local planned reported
    planned=$(sed -nE 's/^1\.\.([0-9]+)$/\1/p' "$tap" | head -1)
    reported=$(grep -cE '^(not )?ok ' "$tap" || true)
    if [[ -z $planned ]]; then
      echo "not ok bats printed no plan (1..N): the run did not start"
      failed=$((failed + 1))
    elif ((reported < planned)); then
      echo "not ok bats ran $reported of the $planned tests it planned: the run was cut short"
      failed=$((failed + planned - reported))
    elif [[ $bats_status != 0 ]] && ! grep -q '^not ok ' "$tap"; then
      echo "not ok bats failed (exit $bats_status) without reporting a failed test"
      failed=$((failed + 1))
    fi
  fi
  pg_stop
  stray_processes
  rm -rf "$run_tmp"
  echo "worker: $passed passed, $failed failed, $skipped skipped"
  ((failed == 0 && rc == 0)) || exit 1
}
trap finish EXIT
trap 'exit 130' INT TERM

# Processes still running from this run (their working directory or command
# line is under run_tmp) are a failure: the tests must clean up after
# themselves. They are stopped, so nothing outlives the run.
stray_processes() {
  local proc pid cwd cmdline strays=()
  for proc in /proc/[0-9]*; do
    pid=${proc#/proc/}
    ((pid != $$ && pid != BASHPID)) || continue
    cwd=$(readlink "$proc/cwd" 2>/dev/null) || continue
    cmdline=$(tr '\0' ' ' <"$proc/cmdline" 2>/dev/null) || continue
    if [[ $cwd == "$run_tmp"* || $cmdline == *"$run_tmp"* ]]; then
      strays+=("$pid")
      echo "not ok stray process $pid: $cmdline (cwd $cwd)"
    fi
  done
  if ((${#strays[@]})); then
    failed=$((failed + 1))
    kill -KILL "${strays[@]}" 2>/dev/null || true
  fi
}

missing=()
for tool in shellcheck bats jq git psql pg_isready runuser; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
  echo "not ok prerequisites: missing ${missing[*]} (Debian: apt-get install postgresql postgresql-client shellcheck bats jq git)"
  failed=$((failed + 1))
  exit 1
fi

echo "--- shellcheck"
# Every shell script of the repository, the tests included (ShellCheck reads
# the .bats files as bats).
scripts=(ralph.sh task install.sh lib/*.sh hooks/*.sh docker/*.sh .ci/run scripts/*.sh scripts/lib/*.sh
  test/images/*/*.sh
  test/worker/run.sh test/worker/bench-claim.sh test/worker/lib/pg.sh test/worker/lib/helpers.bash
  test/worker/*.bats)
for script in "${scripts[@]}"; do
  if shellcheck -x "$script"; then
    passed=$((passed + 1))
    echo "ok shellcheck $script"
  else
    failed=$((failed + 1))
    echo "not ok shellcheck $script"
  fi
done

echo "--- postgresql"
if ! pg_start; then
  echo "not ok start PostgreSQL"
  failed=$((failed + 1))
  exit 1
fi
echo "PostgreSQL on $PG_TEST_URL"

echo "--- bats"
suites=("$@")
((${#suites[@]})) || suites=(test/worker/*.bats)
tap="$run_tmp/bats.tap"
bats_status=0
# A hung test must not hang CI: the whole bats run is bounded.
timeout --kill-after=10 "${RALPH_TEST_TIMEOUT:-900}" bats --tap "${suites[@]}" | tee "$tap" || bats_status=$?
