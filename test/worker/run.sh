#!/usr/bin/env bash
# The worker's tests, one entry point: shellcheck on every shell script of
# the worker, then the bats suites, each job against a throwaway PostgreSQL
# of its own (in a temp dir on a loopback port, stopped even on failure).
# Prints "worker: N passed, M failed, S skipped" last (a skipped test is
# neither passed nor failed); exits non-zero on any failure.
# Needs (Debian 12): postgresql, postgresql-client, shellcheck, bats, jq, git.
#
#   bash test/worker/run.sh [BATS_FILE…]
#
# The bats files run RALPH_TEST_JOBS at a time (default 2), each in a bats
# of its own, its lines prefixed with its name ("[chaos] ok 1 …"). Each
# job has a PostgreSQL of its own: two files stop and restart theirs (the
# database going away under running workers), which must not touch another
# file's tests. Two at a time: the suite took 6m15s here, against about
# 10 minutes one file after the other (chaos alone keeps both cores busy
# for 3 minutes; the other files mostly wait on leases and time limits).
# The whole run is bounded by RALPH_TEST_TIMEOUT seconds (default 900).
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
# The servers here are the jobs' own: one inherited from a caller (this script's
# own tests run inside the worker suite) is never stopped by it.
PG_TEST_DIR=""

taps=$run_tmp/taps
mkdir "$taps"
suites=()
slot_pids=()
# count_tap FILE NAME: a bats file's TAP (its exit status beside it, in
# FILE.rc) into the counts.
count_tap() {
  local tap=$1 name=$2 planned reported status
  status=$(cat "$tap.rc" 2>/dev/null || echo "none")
  # bats: "ok N name # skip [reason]" for a skipped test.
  skipped=$((skipped + $(grep -cE '^ok .* # skip( |$)' "$tap" || true)))
  passed=$((passed + $(grep -vE '^ok .* # skip( |$)' "$tap" | grep -c '^ok ' || true)))
  failed=$((failed + $(grep -c '^not ok ' "$tap" || true)))
  # The plan ("1..N") against what reported: a run cut short fails every
  # test that never ran; a failed run that reported no failure, once.
  planned=$(sed -nE 's/^1\.\.([0-9]+)$/\1/p' "$tap" | head -1)
  reported=$(grep -cE '^(not )?ok ' "$tap" || true)
  if [[ -z $planned ]]; then
    echo "not ok $name: bats printed no plan (1..N): the run did not start"
    failed=$((failed + 1))
  elif ((reported < planned)); then
    echo "not ok $name: bats ran $reported of the $planned tests it planned: the run was cut short"
    failed=$((failed + planned - reported))
  elif [[ $status != 0 ]] && ! grep -q '^not ok ' "$tap"; then
    echo "not ok $name: bats failed (exit $status) without reporting a failed test"
    failed=$((failed + 1))
  fi
}

# kill_tree PID: PID and everything it started (an interrupted run's jobs).
kill_tree() {
  local child
  for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
    kill_tree "$child"
  done
  kill -KILL "$1" 2>/dev/null || true
}

finish() {
  local rc=$? pid file name
  for pid in "${slot_pids[@]}"; do
    kill_tree "$pid"
  done
  for file in "${suites[@]}"; do
    name=$(basename "$file")
    if [[ -f $taps/$name ]]; then
      count_tap "$taps/$name" "$name"
    else
      echo "not ok $name: it did not run (the run's time ran out, or no job could start its PostgreSQL)"
      failed=$((failed + 1))
    fi
  done
  if [[ -s $run_tmp/problems ]]; then
    cat "$run_tmp/problems"
    failed=$((failed + $(grep -c . "$run_tmp/problems")))
  fi
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

jobs=${RALPH_TEST_JOBS:-2}
if [[ ! $jobs =~ ^[1-9][0-9]?$ ]]; then
  echo "not ok RALPH_TEST_JOBS=$jobs: give how many bats files run at a time, 1 to 99"
  failed=$((failed + 1))
  exit 1
fi

suites=("$@")
((${#suites[@]})) || suites=(test/worker/*.bats)
((jobs <= ${#suites[@]})) || jobs=${#suites[@]}
echo "--- bats ($jobs at a time)"
for file in "${suites[@]}"; do
  if [[ ! -f $file ]]; then
    echo "not ok $file: no such bats file"
    failed=$((failed + 1))
    suites=()
    exit 1
  fi
done
# The queue: the slowest files first (chaos alone takes a third of the
# suite), then the others in order; each job takes the next one.
queue=$run_tmp/queue
for slow in chaos time_limits test_command faults worker; do
  for file in "${suites[@]}"; do
    [[ $(basename "$file" .bats) != "$slow" ]] || printf '%s\n' "$file"
  done
done >"$queue"
for file in "${suites[@]}"; do
  grep -qxF -- "$file" "$queue" || printf '%s\n' "$file" >>"$queue"
done
deadline=$(($(date +%s) + ${RALPH_TEST_TIMEOUT:-900}))

# next_file: the queue's next file (none: status 1).
next_file() {
  local file
  {
    flock 9
    file=$(head -n 1 "$queue")
    [[ -n $file ]] && sed -i 1d "$queue"
  } 9>"$queue.lock"
  [[ -n $file ]] && printf '%s\n' "$file"
}

# job N: a PostgreSQL of its own, then the queue's files one at a time, each
# bounded by what is left of the run's time (a hung test must not hang CI).
# shellcheck disable=SC2317 # it runs in the background
job() {
  local file name left began
  set +e
  trap pg_stop EXIT
  if ! pg_start >"$run_tmp/pg-$1.log" 2>&1; then
    echo "not ok start PostgreSQL (job $1): $(tail -n 3 "$run_tmp/pg-$1.log" | tr '\n' ' ')" >>"$run_tmp/problems"
    return 1
  fi
  while file=$(next_file); do
    name=$(basename "$file")
    left=$((deadline - $(date +%s)))
    ((left > 0)) || break
    began=$(date +%s)
    timeout --kill-after=10 "$left" bats --tap "$file" | tee "$taps/$name" | sed -u "s/^/[${name%.bats}] /"
    echo "${PIPESTATUS[0]}" >"$taps/$name.rc"
    # Where the suite's time goes (a comment: not counted).
    echo "[${name%.bats}] # took $(($(date +%s) - began)) s (job $1)"
  done
}
for ((n = 1; n <= jobs; n++)); do
  job "$n" &
  slot_pids+=("$!")
done
for pid in "${slot_pids[@]}"; do
  wait "$pid" || true
done
slot_pids=()
