#!/usr/bin/env bats
# Numbers from the environment are matched and range-checked (env_uint in
# lib/common.sh), never evaluated: bash arithmetic on a value like
# a[$(cmd)] would run cmd. A bad value is one line naming the variable, its
# value and the range, exit 2, and the command in it never runs.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

ENTRYPOINT="$REPO_ROOT/docker/entrypoint.sh"

setup() {
  PWNED="$BATS_TEST_TMPDIR/pwned"
  # The command substitutions are the attack (single quotes on purpose).
  # SECONDS is set and numeric: `set -u` doesn't stop it, and the
  # arithmetic goes on as if nothing happened.
  # shellcheck disable=SC2016
  EVIL='SECONDS[$(touch '"$PWNED"')]'
  # shellcheck disable=SC2016
  EVILS=("$EVIL" 'a[$(touch '"$PWNED"')]')
  WORKER_PID=""
  AGENT_PID_FILE="$BATS_TEST_TMPDIR/agent.pid"
}

teardown() { kill_worker_and_agent; }

# refused_number NAME: the last `run` exited 2 with one line naming NAME
# and its value, and the command in the value never ran.
refused_number() {
  [ "$status" -eq 2 ] || { echo "exit $status, expected 2: $output"; return 1; }
  [ "${#lines[@]}" -eq 1 ] || { echo "more than one line: $output"; return 1; }
  [[ $output == *"$1='"*"' is not a "*" between "* ]] || { echo "message: $output"; return 1; }
  [ ! -e "$PWNED" ] || { echo "the command in $1 ran"; return 1; }
}

@test "task: PGCONNECT_TIMEOUT is checked before psql gets it" {
  fresh_db
  local bad
  for bad in "${EVILS[@]}"; do
    run env PGCONNECT_TIMEOUT="$bad" "$TASK" list
    refused_number PGCONNECT_TIMEOUT
    [ "$output" = "task: PGCONNECT_TIMEOUT='$bad' is not a whole number between 0 and 3600: set PGCONNECT_TIMEOUT to one, or unset it for the default 5" ]
  done
  for bad in -1 3601 1.5 99999999999999999999999 ' 5'; do
    run env PGCONNECT_TIMEOUT="$bad" "$TASK" list
    refused_number PGCONNECT_TIMEOUT
  done
  # Leading zeros are decimal, not octal.
  run env PGCONNECT_TIMEOUT=08 "$TASK" list
  [ "$status" -eq 0 ]
}

@test "the entrypoint: every number it and the worker read" {
  local name bad
  for name in RALPH_DB_WAIT_SECONDS RALPH_LEASE_SECONDS RALPH_MAX_ATTEMPTS RALPH_RETRY_BASE_SECONDS \
    RALPH_RETRY_MAX_SECONDS RALPH_IDLE_MIN_SECONDS RALPH_IDLE_MAX_SECONDS RALPH_AGENT_TIMEOUT_SECONDS \
    RALPH_AGENT_STOP_SECONDS RALPH_STOP_CONNECT_TIMEOUT PGCONNECT_TIMEOUT; do
    for bad in "${EVILS[@]}"; do
      run env -i PATH="$PATH" RALPH_DB_URL=postgresql://x@127.0.0.1:9/x "$name=$bad" "$ENTRYPOINT" task list
      refused_number "$name"
      [[ $output == "ralph-entrypoint: $name='$bad' is not a "* ]]
    done
  done
  run env -i PATH="$PATH" RALPH_DB_URL=postgresql://x@127.0.0.1:9/x RALPH_LEASE_SECONDS=0 "$ENTRYPOINT" task list
  [ "$status" -eq 2 ]
  [ "$output" = "ralph-entrypoint: RALPH_LEASE_SECONDS='0' is not a number of seconds between 1 and 86400: set RALPH_LEASE_SECONDS to one, or unset it for the default 300" ]
}

@test "RALPH_AGENT_STOP_SECONDS is checked before the agent is stopped" {
  fresh_db
  make_remote
  "$TASK" add stop/1 "stopped"
  export TMPDIR=$BATS_TEST_TMPDIR RALPH_AGENT_STOP_SECONDS=$EVIL
  RALPH_AGENT_CMD=$(printf 'echo $$ > %q; sleep 300' "$AGENT_PID_FILE")
  export RALPH_AGENT_CMD
  set -m
  "$RALPH" build 2>"$BATS_TEST_TMPDIR/worker.log" &
  WORKER_PID=$!
  set +m
  # The worker may refuse the value at its start; else SIGTERM stops the agent.
  wait_for 20 bash -c '[[ -s $1 ]] || ! kill -0 "$2" 2>/dev/null' _ "$AGENT_PID_FILE" "$WORKER_PID"
  [[ ! -s $AGENT_PID_FILE ]] || kill -TERM "$WORKER_PID"
  local rc=0
  wait "$WORKER_PID" || rc=$?
  WORKER_PID=""
  cat "$BATS_TEST_TMPDIR/worker.log"
  [ "$rc" -eq 2 ]
  [ ! -e "$PWNED" ]
  [ "$(grep -c "RALPH_AGENT_STOP_SECONDS=" "$BATS_TEST_TMPDIR/worker.log")" -eq 1 ]
  grep -qxF "ralph: RALPH_AGENT_STOP_SECONDS='$EVIL' is not a number of seconds between 0 and 3600: set RALPH_AGENT_STOP_SECONDS to one, or unset it for the default 3" \
    "$BATS_TEST_TMPDIR/worker.log"
  # Nothing of the worker's is left running.
  if [[ -s $AGENT_PID_FILE ]]; then
    wait_for 5 bash -c '! kill -0 -- "-$1" 2>/dev/null' _ "$(<"$AGENT_PID_FILE")"
  fi
}

@test "the session-end hook takes only a process id from RALPH_WORKER_PID" {
  local bad
  for bad in "${EVILS[@]}" 0 -1 '$$' 4194305; do
    run env RALPH_TASK_ID=t/1 RALPH_AGENT_ID=agent-1 RALPH_WORKER_PID="$bad" "$REPO_ROOT/hooks/session-end.sh" <<<'{"reason": "exit"}'
    refused_number RALPH_WORKER_PID
    [[ $output == "ralph: RALPH_WORKER_PID='$bad' is not a whole number between 1 and 4194304: set RALPH_WORKER_PID to one" ]]
  done
  # A live worker: nothing to release, nothing said.
  run env RALPH_TASK_ID=t/1 RALPH_AGENT_ID=agent-1 RALPH_WORKER_PID=$$ "$REPO_ROOT/hooks/session-end.sh" <<<'{"reason": "exit"}'
  [ "$status" -eq 0 ]
  [ -z "$output" ]
}
