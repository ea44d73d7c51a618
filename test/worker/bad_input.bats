#!/usr/bin/env bats
# Bad input: one clear line naming the problem and the fix, a non-zero exit,
# and no partial write (the whole store is compared before and after).
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

setup() {
  fresh_db
  export RALPH_AGENT_ID=agent-1
  "$TASK" add ok/1 "exists" >/dev/null
  "$TASK" add ok/2 "waits" --blocked-by ok/1 >/dev/null
  "$TASK" add ok/3 "waits on ok/2" --blocked-by ok/2 >/dev/null
  BEFORE=$(store_snapshot)
}

# refused CODE TEXT: the last `run` exited CODE with one line containing
# TEXT, and the store is as it was.
refused() {
  [ "$status" -eq "$1" ] || { echo "exit $status, expected $1: $output"; return 1; }
  [[ $output == *"$2"* ]] || { echo "message: $output"; return 1; }
  [ "${#lines[@]}" -eq 1 ] || { echo "more than one line: $output"; return 1; }
  [ "$(store_snapshot)" = "$BEFORE" ] || { echo "the store changed"; return 1; }
}

@test "missing RALPH_DB_URL" {
  run env -u RALPH_DB_URL "$TASK" list
  refused 2 "RALPH_DB_URL is not set: export RALPH_DB_URL=postgresql://"
  run env -u RALPH_DB_URL "$TASK" add new/1 "x"
  refused 2 "RALPH_DB_URL is not set"
  run env -u RALPH_DB_URL "$RALPH" init
  refused 2 "RALPH_DB_URL is not set"
}

@test "an unreachable database" {
  local port
  port=$((PG_TEST_PORT + 1))
  while pg_port_in_use "$port"; do port=$((port + 1)); done
  run env RALPH_DB_URL="postgresql://ralph@127.0.0.1:$port/nowhere" "$TASK" add new/1 "x"
  refused 1 "cannot reach the database (RALPH_DB_URL)"
  [[ $output == *"check that PostgreSQL is running"* ]]
  run env RALPH_DB_URL="postgresql://ralph@127.0.0.1:$port/nowhere" "$TASK" claim
  refused 1 "cannot reach the database"
  # A server that is up, but not that database.
  run env RALPH_DB_URL="$PG_TEST_URL/no_such_db" "$TASK" list
  refused 1 'database "no_such_db" does not exist'
}

@test "malformed result JSON" {
  "$TASK" claim ok/1 >/dev/null
  BEFORE=$(store_snapshot)
  run "$TASK" "done" ok/1 --result '{not json'
  refused 2 "--result is not a JSON object"
  run "$TASK" "done" ok/1 --result '["a list"]'
  refused 2 "--result is not a JSON object"
  run "$TASK" "done" ok/1
  refused 2 "--result JSON is required"
  [ "$(task_status ok/1)" = active ]
}

@test "an unknown task id" {
  run "$TASK" show nope/9
  refused 4 "unknown task 'nope/9'"
  run "$TASK" claim nope/9
  refused 4 "unknown task 'nope/9'"
  run "$TASK" "done" nope/9 --result '{"commit": "c"}'
  refused 4 "unknown task 'nope/9'"
  run "$TASK" release nope/9
  refused 4 "unknown task 'nope/9'"
  run "$TASK" delete nope/9
  refused 4 "unknown task 'nope/9'"
  run "$TASK" block ok/1 --by nope/9
  refused 4 "unknown task 'nope/9'"
  run "$TASK" add new/1 "x" --blocked-by ok/1 --blocked-by nope/9
  refused 4 "unknown blocker 'nope/9'"
  run "$TASK" add 'bad id!' "x"
  refused 2 "invalid task id 'bad id!'"
}

@test "an invalid category or priority" {
  run "$TASK" add new/1 "x" --category feature
  refused 2 "invalid category 'feature': use one of bug, feat, test, refactor, doc"
  run "$TASK" add new/1 "x" --priority 7
  refused 2 "invalid priority '7': use 0 (most urgent) to 3"
  run "$TASK" add new/1 "x" --priority high
  refused 2 "invalid priority 'high'"
  run "$TASK" add new/1 "   "
  refused 2 "a description is required"
  run "$TASK" list --status finished
  refused 2 "invalid status 'finished'"
}

@test "a duplicate task id" {
  run "$TASK" add ok/1 "again"
  refused 1 "a task with that id already exists"
}

@test "an unknown model alias" {
  run "$RALPH" --model gpt-9 build
  refused 2 "unknown model alias 'gpt-9': use one of haiku, opus, sonnet"
  run env RALPH_MODEL=gpt-9 RALPH_REPO_URL=/nowhere RALPH_AGENT_CMD=true "$RALPH" build --until-empty
  refused 2 "unknown model alias 'gpt-9'"
  run env RALPH_REPO_URL=/nowhere RALPH_AGENT_CMD=true "$RALPH" build --model nope --until-empty
  refused 2 "unknown model alias 'nope'"
}

@test "a blocker cycle" {
  run "$TASK" block ok/1 --by ok/2
  refused 1 "blocking ok/1 by ok/2 would make a cycle (ok/2 already waits on ok/1)"
  # A longer loop: ok/3 -> ok/2 -> ok/1 -> ok/3.
  run "$TASK" block ok/1 --by ok/3
  refused 1 "would make a cycle"
  run "$TASK" block ok/1 --by ok/1
  refused 2 "a task cannot block itself"
  # The trigger guards plain SQL too.
  run psql "$RALPH_DB_URL" -X -q -v ON_ERROR_STOP=1 -c "INSERT INTO task_dependencies VALUES ('ok/1', 'ok/3')"
  [ "$status" -ne 0 ]
  [[ $output == *"would make a cycle"* ]]
  [ "$(store_snapshot)" = "$BEFORE" ]
}

@test "done on a task the agent does not hold" {
  run "$TASK" "done" ok/1 --result '{"commit": "c"}'
  refused 5 "cannot finish task ok/1: it is open, not held by agent agent-1"
  "$TASK" claim ok/1 --agent someone-else >/dev/null
  BEFORE=$(store_snapshot)
  run "$TASK" "done" ok/1 --result '{"commit": "c"}'
  refused 5 "cannot finish task ok/1: it is active and held by someone-else, not held by agent agent-1"
  run env -u RALPH_AGENT_ID "$TASK" "done" ok/1 --result '{"commit": "c"}'
  refused 2 "no agent: pass --agent ID or set RALPH_AGENT_ID"
}

@test "bad numbers in the environment and on the command line" {
  run env RALPH_LEASE_SECONDS=soon "$TASK" claim
  refused 2 "RALPH_LEASE_SECONDS='soon' is not a number of seconds"
  run "$TASK" peek -n 0
  refused 2 "-n needs a positive number"
  run "$RALPH" build --max-iterations many
  refused 2 "--max-iterations needs a number, not 'many'"
}
