#!/usr/bin/env bats
# The task store (db/schema.sql) and the task CLI against a real PostgreSQL.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

setup() {
  fresh_db
  export RALPH_AGENT_ID=agent-1
}

@test "the schema applies on first use, and again without change or loss" {
  [ "$(sql "SELECT count(*) FROM pg_tables WHERE tablename IN ('tasks', 'task_dependencies', 'agents')")" -eq 0 ]
  run "$TASK" list
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT count(*) FROM pg_tables WHERE tablename IN ('tasks', 'task_dependencies', 'agents')")" -eq 3 ]
  "$TASK" add s/1 "survives re-apply" --priority 1
  "$TASK" add s/2 "waits" --blocked-by s/1
  local before
  before=$(store_snapshot)
  run psql "$RALPH_DB_URL" -X -q -v ON_ERROR_STOP=1 -f "$REPO_ROOT/db/schema.sql"
  [ "$status" -eq 0 ]
  run "$TASK" init
  [ "$status" -eq 0 ]
  [ "$output" = "schema applied" ]
  run "$TASK" init
  [ "$status" -eq 0 ]
  [ "$(store_snapshot)" = "$before" ]
  # One trigger of each kind, not one per application.
  [ "$(sql "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = 'tasks'::regclass")" -eq 2 ]
}

@test "concurrent first uses of an empty store all succeed" {
  local n pids=()
  for n in 1 2 3 4 5 6; do
    "$TASK" add "first/$n" "task $n" >/dev/null &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n"; done
  [ "$(sql "SELECT count(*) FROM tasks")" -eq 6 ]
}

@test "claim takes the most urgent, then the oldest task" {
  "$TASK" add c/low "low" --priority 3
  "$TASK" add c/old "old p1" --priority 1
  "$TASK" add c/mid "default priority"
  "$TASK" add c/new "new p1" --priority 1
  "$TASK" add c/top "urgent" --priority 0
  local order=() id
  for _ in 1 2 3 4 5; do
    id=$("$TASK" --json claim | jq -r .id)
    order+=("$id")
  done
  [ "${order[*]}" = "c/top c/old c/new c/mid c/low" ]
  run "$TASK" claim
  [ "$status" -eq 3 ]
  [[ $output == *"nothing to claim"* ]]
}

@test "claim sets the assignee and a lease of RALPH_LEASE_SECONDS" {
  export RALPH_LEASE_SECONDS=120
  "$TASK" add l/1 "leased"
  run "$TASK" --json claim --agent holder
  [ "$status" -eq 0 ]
  [ "$(jq -r '.status + " " + .assignee' <<<"$output")" = "active holder" ]
  local seconds
  seconds=$(sql "SELECT round(extract(epoch FROM lease_expires_at - now())) FROM tasks WHERE id = 'l/1'")
  [ "$seconds" -ge 115 ] && [ "$seconds" -le 120 ]
  # Readable by default: one line naming the task and its holder.
  "$TASK" add l/2 "second"
  run "$TASK" claim --agent holder
  [[ $output == "claimed l/2: second [p2 feat, active, holder, lease until "* ]]
}

@test "claim ID takes that task only when it is claimable" {
  "$TASK" add i/1 "urgent" --priority 0
  "$TASK" add i/2 "chosen" --priority 3
  [ "$("$TASK" --json claim i/2 | jq -r .id)" = i/2 ]
  run "$TASK" claim i/2
  [ "$status" -eq 3 ]
  [[ $output == *"task i/2 is not claimable now"* ]]
  [ "$(task_status i/1)" = open ]
}

@test "a blocked task waits until its blockers are done or deleted" {
  "$TASK" add b/first "first" --priority 3
  "$TASK" add b/second "second" --priority 3
  "$TASK" add b/then "then" --priority 0 --blocked-by b/first --blocked-by b/second
  [ "$("$TASK" --json peek -n 5 | jq -r 'map(.id) | join(",")')" = "b/first,b/second" ]
  [ "$("$TASK" --json claim | jq -r .id)" = b/first ]
  [ "$("$TASK" --json claim | jq -r .id)" = b/second ]
  run "$TASK" claim
  [ "$status" -eq 3 ]
  "$TASK" "done" b/first --result '{"commit": "a"}'
  run "$TASK" claim b/then
  [ "$status" -eq 3 ]
  "$TASK" delete b/second
  [ "$("$TASK" --json claim | jq -r .id)" = b/then ]
}

@test "block and unblock change what is claimable" {
  "$TASK" add u/a "a" --priority 0
  "$TASK" add u/b "b" --priority 1
  run "$TASK" block u/a --by u/b
  [ "$status" -eq 0 ]
  [ "$output" = "blocked u/a by u/b" ]
  [ "$("$TASK" --json show u/a | jq -c .blocked_by)" = '["u/b"]' ]
  [ "$("$TASK" --json peek | jq -r 'map(.id) | join(",")')" = u/b ]
  run "$TASK" unblock u/a --by u/b
  [ "$status" -eq 0 ]
  [ "$("$TASK" --json claim | jq -r .id)" = u/a ]
  run "$TASK" unblock u/a --by u/b
  [ "$status" -eq 4 ]
  [[ $output == *"task u/a is not blocked by u/b"* ]]
}

@test "an expired lease is reclaimed and counted as a retry" {
  export RALPH_LEASE_SECONDS=1
  "$TASK" add l/1 "leased"
  "$TASK" claim --agent crashed >/dev/null
  run "$TASK" claim --agent other
  [ "$status" -eq 3 ]
  sleep 1.2
  [ "$("$TASK" --json peek | jq -r '.[0].id')" = l/1 ]
  run "$TASK" --json claim --agent other
  [ "$status" -eq 0 ]
  [ "$(jq -r .assignee <<<"$output")" = other ]
  [ "$(jq -r .retry_count <<<"$output")" -eq 1 ]
  # The crashed agent's late result is refused, and changes nothing.
  local before
  before=$(store_snapshot)
  run "$TASK" "done" l/1 --agent crashed --result '{"commit": "x"}'
  [ "$status" -eq 1 ]
  [[ $output == *"cannot finish task l/1: it is active and held by other, not held by agent crashed"* ]]
  [ "$(store_snapshot)" = "$before" ]
}

@test "renew extends the lease only for the holder" {
  export RALPH_LEASE_SECONDS=60
  "$TASK" add r/1 "renewed"
  "$TASK" claim >/dev/null
  sql "UPDATE tasks SET lease_expires_at = now() + interval '5 seconds' WHERE id = 'r/1'" >/dev/null
  run "$TASK" renew r/1
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT lease_expires_at > now() + interval '50 seconds' FROM tasks WHERE id = 'r/1'")" = t ]
  run "$TASK" renew r/1 --agent intruder
  [ "$status" -eq 1 ]
  [[ $output == *"not held by agent intruder"* ]]
  run "$TASK" renew nope/1
  [ "$status" -eq 4 ]
}

@test "a done task never changes status, through the CLI or plain SQL" {
  "$TASK" add d/1 "finish me"
  "$TASK" claim >/dev/null
  run "$TASK" --json "done" d/1 --result '{"commit": "abc", "branch": "ralph/d/1"}'
  [ "$status" -eq 0 ]
  [ "$(jq -r '.status + " " + .result.commit' <<<"$output")" = "done abc" ]
  [ "$(task_result d/1 branch)" = ralph/d/1 ]
  run "$TASK" release d/1
  [ "$status" -eq 1 ]
  run "$TASK" claim d/1
  [ "$status" -eq 3 ]
  run psql "$RALPH_DB_URL" -X -q -v ON_ERROR_STOP=1 -c "UPDATE tasks SET status = 'open' WHERE id = 'd/1'"
  [ "$status" -ne 0 ]
  [[ $output == *"task d/1 is done: a done task cannot change status"* ]]
  run psql "$RALPH_DB_URL" -X -q -v ON_ERROR_STOP=1 -c "UPDATE tasks SET status = 'deleted' WHERE id = 'd/1'"
  [ "$status" -ne 0 ]
  # Deleting a done task hides it but keeps it done.
  "$TASK" delete d/1 >/dev/null
  [ "$(task_status d/1)" = "done" ]
  [ "$(sql "SELECT deleted_at IS NOT NULL FROM tasks WHERE id = 'd/1'")" = t ]
}

@test "updated_at moves on every write, whoever writes" {
  "$TASK" add u/1 "touch"
  local t0 t1 t2 t3
  t0=$(sql "SELECT updated_at FROM tasks WHERE id = 'u/1'")
  "$TASK" claim >/dev/null
  t1=$(sql "SELECT updated_at FROM tasks WHERE id = 'u/1'")
  [ "$(sql "SELECT '$t1'::timestamptz > '$t0'::timestamptz")" = t ]
  # A plain SQL write that doesn't mention updated_at, and one that tries
  # to set it back: the trigger moves it forward either way.
  sql "UPDATE tasks SET priority = 1 WHERE id = 'u/1'" >/dev/null
  t2=$(sql "SELECT updated_at FROM tasks WHERE id = 'u/1'")
  [ "$(sql "SELECT '$t2'::timestamptz > '$t1'::timestamptz")" = t ]
  sql "UPDATE tasks SET priority = 0, updated_at = '2000-01-01' WHERE id = 'u/1'" >/dev/null
  t3=$(sql "SELECT updated_at FROM tasks WHERE id = 'u/1'")
  [ "$(sql "SELECT '$t3'::timestamptz > '$t2'::timestamptz")" = t ]
  # Agents too.
  "$TASK" agent register --id ag >/dev/null
  sql "UPDATE agents SET updated_at = '2000-01-01', status = 'stopped'" >/dev/null
  [ "$(sql "SELECT updated_at > now() - interval '1 minute' FROM agents")" = t ]
}

@test "a deleted task is invisible to list, peek and claim" {
  "$TASK" add x/1 "gone" --priority 0
  "$TASK" add x/2 "kept"
  run "$TASK" delete x/1
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT status || ' ' || (deleted_at IS NOT NULL) FROM tasks WHERE id = 'x/1'")" = "deleted true" ]
  [ "$("$TASK" --json list | jq -r 'map(.id) | join(",")')" = x/2 ]
  [ "$("$TASK" --json peek -n 5 | jq -r 'map(.id) | join(",")')" = x/2 ]
  run "$TASK" list
  [[ $output != *"x/1"* ]]
  [ "$("$TASK" --json list --all | jq length)" -eq 2 ]
  [ "$("$TASK" --json list --status deleted | jq -r '.[0].id')" = x/1 ]
  [ "$("$TASK" --json claim | jq -r .id)" = x/2 ]
  run "$TASK" claim x/1
  [ "$status" -eq 3 ]
}

@test "release hands a task back; agent stop releases what the agent held" {
  "$TASK" add a/1 "one"
  "$TASK" add a/2 "two"
  run "$TASK" agent register --id worker-x
  [ "$output" = worker-x ]
  [ "$(sql "SELECT status FROM agents WHERE id = 'worker-x'")" = active ]
  "$TASK" claim --agent worker-x >/dev/null
  run "$TASK" release a/1 --agent worker-x
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT status || ' ' || coalesce(assignee, '-') FROM tasks WHERE id = 'a/1'")" = "open -" ]
  "$TASK" claim --agent worker-x >/dev/null
  sql "UPDATE agents SET last_heartbeat_at = now() - interval '1 hour'" >/dev/null
  "$TASK" agent heartbeat worker-x >/dev/null
  [ "$(sql "SELECT last_heartbeat_at > now() - interval '1 minute' FROM agents")" = t ]
  "$TASK" agent stop worker-x >/dev/null
  [ "$(sql "SELECT count(*) FROM tasks WHERE status = 'active'")" -eq 0 ]
  [ "$(sql "SELECT status FROM agents WHERE id = 'worker-x'")" = stopped ]
  run "$TASK" agent stop nobody
  [ "$status" -eq 4 ]
  [[ $output == *"unknown agent 'nobody'"* ]]
}

@test "add records category, priority, refs, steps and blockers" {
  "$TASK" add base/1 "base"
  run "$TASK" --json add feat/2 "the description" --category doc --priority 0 --spec-ref docs/spec.md#x \
    --ref main --step "first step" --step "second; with 'quotes'" --blocked-by base/1
  [ "$status" -eq 0 ]
  [ "$(jq -c '[.category, .priority, .spec_ref, .ref, .steps, .blocked_by, .status]' <<<"$output")" \
    = '["doc",0,"docs/spec.md#x","main",["first step","second; with '"'"'quotes'"'"'"],["base/1"],"open"]' ]
  run "$TASK" show feat/2
  [[ $output == *"description: the description"* ]]
  [[ $output == *"blocked_by: [\"base/1\"]"* ]]
}

@test "text values reach the store verbatim (no SQL or psql injection)" {
  local nasty="x'); DROP TABLE tasks; -- :'id' \\\\ \$\$ :foo"
  run "$TASK" add q/1 "$nasty"
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT description FROM tasks WHERE id = 'q/1'")" = "$nasty" ]
  "$TASK" claim >/dev/null
  "$TASK" "done" q/1 --result "$(jq -nc --arg v "$nasty" '{commit: "c", note: $v}')"
  [ "$(task_result q/1 note)" = "$nasty" ]
}

@test "list and peek print a readable table" {
  "$TASK" add t/1 "a task with a  long
description" --priority 1
  "$TASK" add t/2 "another" --category bug
  run "$TASK" list
  [ "$status" -eq 0 ]
  [ "${lines[0]}" = "ID   PRI  CATEGORY  STATUS  ASSIGNEE  RETRIES  DESCRIPTION" ]
  [ "${lines[1]}" = "t/1  1    feat      open    -         0        a task with a long description" ]
  [ "${lines[2]}" = "t/2  2    bug       open    -         0        another" ]
  run "$TASK" list --status "done"
  [ "$status" -eq 0 ]
  [ "${#lines[@]}" -eq 1 ]
  [ "$("$TASK" --json list --status "done")" = "[]" ]
}

@test "help documents the commands and the exit codes" {
  run "$TASK" --help
  [ "$status" -eq 0 ]
  [[ $output == *"3  nothing to claim"* ]]
  [[ $output == *"4  unknown task or agent"* ]]
  [[ $output == *"peek [-n N]"* ]]
  run "$TASK"
  [ "$status" -eq 2 ]
  run "$TASK" frobnicate
  [ "$status" -eq 2 ]
  [[ $output == *"unknown command 'frobnicate'"* ]]
}
