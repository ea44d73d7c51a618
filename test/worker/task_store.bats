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

# An upgrade of a store in use: `task init` applies the schema while
# another session holds public.tasks (as workers' traffic does) and then
# asks for the advisory lock the application holds. PostgreSQL breaks that
# deadlock by aborting the application's transaction (it waited first; the
# other session's own check comes after 30 s). The application is rolled
# back whole and applied again (CI: a worker's entry point died on
# "deadlock detected" beside its health checks).
@test "a schema application that loses a deadlock is applied again" {
  "$TASK" init >/dev/null
  sql "CREATE OR REPLACE FUNCTION public.ralph_schema_version() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 2'"
  psql "$RALPH_DB_URL" -X -q -v ON_ERROR_STOP=1 >"$BATS_TEST_TMPDIR/other.log" 2>&1 <<'SQL' &
SET deadlock_timeout = '30s';
BEGIN;
LOCK TABLE public.tasks IN ACCESS EXCLUSIVE MODE;
DO $$ BEGIN
  FOR i IN 1..600 LOOP
    EXIT WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE relation = 'public.tasks'::regclass AND NOT granted);
    PERFORM pg_catalog.pg_sleep(0.05);
  END LOOP;
END $$;
SELECT pg_catalog.pg_advisory_xact_lock(7426001);
COMMIT;
SQL
  local other=$!
  tasks_held() { [ "$(sql "SELECT count(*) FROM pg_locks WHERE relation = 'public.tasks'::regclass AND mode = 'AccessExclusiveLock' AND granted")" -eq 1 ]; }
  wait_for 20 tasks_held
  run "$TASK" init
  echo "$output"
  wait "$other" || { cat "$BATS_TEST_TMPDIR/other.log"; false; }
  [ "$status" -eq 0 ]
  [[ $output == *"applying the schema: deadlock detected (attempt 1 of 3); applying it again"* ]]
  [ "${lines[-1]}" = "schema applied" ]
  [ "$(sql "SELECT public.ralph_schema_version()")" -eq 3 ]
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

@test "an expired lease is a failed attempt: claimable again after the back-off" {
  export RALPH_LEASE_SECONDS=1 RALPH_RETRY_BASE_SECONDS=1
  "$TASK" add l/1 "leased"
  "$TASK" claim --agent crashed >/dev/null
  run "$TASK" claim --agent other
  [ "$status" -eq 3 ]
  sleep 1.2
  # Expired: the sweep makes it open, backing off one second from the lease's end.
  run "$TASK" --json claim --agent other
  [ "$status" -eq 3 ]
  run "$TASK" --json show l/1
  [ "$(jq -r '.status + " " + (.attempts | tostring)' <<<"$output")" = "open 1" ]
  [[ $(jq -r .last_error <<<"$output") == "the lease of crashed expired (attempt 1)"* ]]
  [ "$(jq -r '.not_before != null' <<<"$output")" = true ]
  sleep 1
  run "$TASK" --json claim --agent other
  [ "$status" -eq 0 ]
  [ "$(jq -r '.assignee + " " + (.attempts | tostring)' <<<"$output")" = "other 2" ]
  # The crashed agent's late result is refused (not held: exit 5), and changes nothing.
  local before
  before=$(store_snapshot)
  run "$TASK" "done" l/1 --agent crashed --result '{"commit": "x"}'
  [ "$status" -eq 5 ]
  [[ $output == *"cannot finish task l/1: it is active and held by other, not held by agent crashed"* ]]
  [ "$(store_snapshot)" = "$before" ]
}

@test "task fail backs off exponentially and fails the task after its last attempt; retry reopens it" {
  export RALPH_RETRY_BASE_SECONDS=1 RALPH_RETRY_MAX_SECONDS=2 RALPH_MAX_ATTEMPTS=3
  "$TASK" add f/1 "flaky"
  "$TASK" claim --agent a >/dev/null
  run "$TASK" --json fail f/1 --agent a --reason "boom 1"
  [ "$status" -eq 0 ]
  [ "$(jq -r '.status + " " + (.attempts | tostring) + " " + .last_error' <<<"$output")" = "open 1 boom 1" ]
  # Back-off: 1 s after the first failure, 2 s after the second (the max).
  [ "$(sql "SELECT not_before - updated_at BETWEEN interval '0.9 s' AND interval '1.1 s' FROM tasks WHERE id = 'f/1'")" = t ]
  run "$TASK" claim --agent a
  [ "$status" -eq 3 ]
  [[ $output == *"nothing to claim"* ]]
  sleep 1.1
  "$TASK" claim --agent a >/dev/null
  "$TASK" fail f/1 --agent a --reason "boom 2" >/dev/null
  [ "$(sql "SELECT not_before - updated_at BETWEEN interval '1.9 s' AND interval '2.1 s' FROM tasks WHERE id = 'f/1'")" = t ]
  run "$TASK" list
  [[ ${lines[1]} == "f/1  2    feat      open    -         2/3       20"*"Z  boom 2      flaky" ]]
  sleep 2.1
  "$TASK" claim --agent a >/dev/null
  run "$TASK" fail f/1 --agent a --reason "boom 3"
  [ "$status" -eq 0 ]
  [[ $output == "failed f/1: flaky [p2 feat, failed, attempt 3, last error: boom 3]" ]]
  # Failed: no claim takes it, whatever the wait.
  sql "UPDATE tasks SET not_before = NULL WHERE id = 'f/1'" >/dev/null
  run "$TASK" claim f/1 --agent a
  [ "$status" -eq 3 ]
  [ "$("$TASK" --json list --status failed | jq -r '.[0].id')" = f/1 ]
  run "$TASK" --json retry f/1
  [ "$status" -eq 0 ]
  [ "$(jq -r '.status + " " + (.attempts | tostring) + " " + .last_error' <<<"$output")" = "open 0 boom 3" ]
  [ "$("$TASK" --json claim --agent a | jq -r .attempts)" -eq 1 ]
  run "$TASK" retry f/1
  [ "$status" -eq 1 ]
  [[ $output == *"task f/1 is active, not failed: only a failed task is retried"* ]]
}

@test "attempts: per task, an expired last attempt fails the task, a release doesn't count" {
  export RALPH_LEASE_SECONDS=1 RALPH_RETRY_BASE_SECONDS=0
  "$TASK" add once/1 "one try" --max-attempts 1
  "$TASK" claim once/1 --agent a >/dev/null
  run "$TASK" fail once/1 --agent a --reason "no"
  [ "$(task_status once/1)" = failed ]
  "$TASK" add exp/1 "dies twice" --max-attempts 2
  "$TASK" claim exp/1 --agent a >/dev/null
  sleep 1.2
  "$TASK" claim exp/1 --agent b >/dev/null
  sleep 1.2
  run "$TASK" claim exp/1 --agent c
  [ "$status" -eq 3 ]
  [ "$(sql "SELECT status || ' ' || attempts || ' ' || (last_error LIKE 'the lease of b expired (attempt 2)%') FROM tasks WHERE id = 'exp/1'")" = "failed 2 true" ]
  "$TASK" add rel/1 "handed back"
  "$TASK" claim rel/1 --agent a >/dev/null
  "$TASK" release rel/1 --agent a >/dev/null
  [ "$(sql "SELECT attempts FROM tasks WHERE id = 'rel/1'")" -eq 0 ]
  # Only the holder fails an attempt; the reason is required.
  "$TASK" claim rel/1 --agent a >/dev/null
  run "$TASK" fail rel/1 --agent intruder --reason "x"
  [ "$status" -eq 5 ]
  run "$TASK" fail rel/1 --agent a
  [ "$status" -eq 2 ]
  [[ $output == *"--reason TEXT is required"* ]]
  run "$TASK" add bad/1 "x" --max-attempts 0
  [ "$status" -eq 2 ]
  RALPH_MAX_ATTEMPTS='a[$(touch '"$BATS_TEST_TMPDIR"'/pwned)]' run "$TASK" claim --agent a
  [ "$status" -eq 2 ]
  [[ $output == *"RALPH_MAX_ATTEMPTS='a["*"is not a whole number between 1 and 1000"* ]]
  [ ! -e "$BATS_TEST_TMPDIR/pwned" ]
}

@test "least privilege: the agent role reads and adds tasks, and nothing else" {
  "$TASK" init >/dev/null
  "$TASK" add p/0 "the agent's task" --priority 1
  "$TASK" add p/1 "someone's task"
  # A worker claimed p/0 for its agent (the claim leaves the attempt's token
  # in the state directory the worker shares with its agent: see
  # hardening.bats for what the agent role may and may not do with it).
  export RALPH_STATE_DIR="$BATS_TEST_TMPDIR/state"
  mkdir -p "$RALPH_STATE_DIR"
  "$TASK" claim p/0 --agent w0 >/dev/null
  local db=${RALPH_DB_URL##*/} suffix="${BATS_SUITE_TEST_NUMBER:-0}_$$"
  sql "CREATE ROLE agent_$suffix LOGIN IN ROLE ralph_agent; CREATE ROLE worker_$suffix LOGIN IN ROLE ralph_worker;
       GRANT CONNECT ON DATABASE \"$db\" TO agent_$suffix, worker_$suffix" >/dev/null
  local owner=$RALPH_DB_URL
  local agent_url="postgresql://agent_$suffix@127.0.0.1:$PG_TEST_PORT/$db"
  local worker_url="postgresql://worker_$suffix@127.0.0.1:$PG_TEST_PORT/$db"
  # The agent reads and adds.
  RALPH_DB_URL=$agent_url run "$TASK" --json list
  [ "$status" -eq 0 ]
  [ "$(jq -r 'map(.id) | join(" ")' <<<"$output")" = "p/0 p/1" ]
  RALPH_DB_URL=$agent_url run "$TASK" add p/2 "a follow-up the agent found" --blocked-by p/1
  [ "$status" -eq 0 ]
  # ... and the database refuses everything else, whatever the client.
  local refused
  for refused in "DROP TABLE tasks" "UPDATE tasks SET description = 'x'" "UPDATE tasks SET status = 'done'" \
    "DELETE FROM tasks" "DELETE FROM task_dependencies" "SELECT * FROM agents" "CREATE TABLE t (x int)" \
    "INSERT INTO tasks (id, description, status, assignee, lease_expires_at) VALUES ('p/3', 'x', 'active', 'me', now())"; do
    run psql "$agent_url" -X -q -v ON_ERROR_STOP=1 -c "$refused"
    [ "$status" -ne 0 ] || { echo "the agent role could: $refused"; return 1; }
    [[ $output == *"permission denied"* || $output == *"row-level security"* || $output == *"must be owner"* ]]
  done
  RALPH_DB_URL=$agent_url run "$TASK" claim --agent sneaky
  [ "$status" -eq 1 ]
  [[ $output == *"permission denied"* ]]
  # The worker role moves tasks through their lives, and nothing else.
  RALPH_DB_URL=$worker_url run "$TASK" --json claim p/1 --agent w
  [ "$status" -eq 0 ]
  RALPH_DB_URL=$worker_url run "$TASK" renew p/1 --agent w
  [ "$status" -eq 0 ]
  RALPH_DB_URL=$worker_url run "$TASK" "done" p/1 --agent w --result '{"commit": "c"}'
  [ "$status" -eq 0 ]
  for refused in "DROP TABLE tasks" "DELETE FROM tasks" "UPDATE tasks SET description = 'x'" "TRUNCATE agents"; do
    run psql "$worker_url" -X -q -v ON_ERROR_STOP=1 -c "$refused"
    [ "$status" -ne 0 ] || { echo "the worker role could: $refused"; return 1; }
  done
  [ "$(RALPH_DB_URL=$owner task_status p/1)" = "done" ]
}

@test "init: the owner applies the schema and makes the agent's login role; a least-privileged role is told why not" {
  local db=${RALPH_DB_URL##*/} suffix="${BATS_SUITE_TEST_NUMBER:-0}_$$"
  RALPH_AGENT_DB_URL="postgresql://agentlogin_$suffix@127.0.0.1:$PG_TEST_PORT/$db" RALPH_AGENT_DB_PASSWORD=s3cret \
    run "$TASK" init
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT pg_has_role('agentlogin_$suffix', 'ralph_agent', 'member')")" = t ]
  [ "$(sql "SELECT ralph_schema_version()")" -eq 3 ]
  # On an empty store, a role that can't create tables gets the fix.
  local empty
  empty=$(pg_new_db "e_${suffix}_$RANDOM")
  sql "CREATE ROLE weak_$suffix LOGIN; REVOKE CREATE ON SCHEMA public FROM PUBLIC" >/dev/null
  RALPH_DB_URL="postgresql://weak_$suffix@127.0.0.1:$PG_TEST_PORT/${empty##*/}" run "$TASK" init
  [ "$status" -eq 1 ]
  [[ $output == *"apply it once as the database's owner"* ]]
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
  [ "$status" -eq 5 ]
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
  [ "$status" -eq 5 ]
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
  [ "${lines[0]}" = "ID   PRI  CATEGORY  STATUS  ASSIGNEE  ATTEMPTS  NOT_BEFORE  LAST_ERROR  DESCRIPTION" ]
  [ "${lines[1]}" = "t/1  1    feat      open    -         0/3       -           -           a task with a long description" ]
  [ "${lines[2]}" = "t/2  2    bug       open    -         0/3       -           -           another" ]
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
  [[ $output == *"5  the task is not held by this agent"* ]]
  [[ $output == *"fail ID --reason TEXT"* && $output == *"retry ID"* ]]
  [[ $output == *"peek [-n N]"* ]]
  run "$TASK"
  [ "$status" -eq 2 ]
  run "$TASK" frobnicate
  [ "$status" -eq 2 ]
  [[ $output == *"unknown command 'frobnicate'"* ]]
}
