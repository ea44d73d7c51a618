#!/usr/bin/env bats
# The task store's SQL hardening (issue 17) against the real PostgreSQL:
# each thing the agent role could do to the store or to other tasks is
# refused with the error that says so, and what an agent legitimately does
# still works. The agent connects as its own login role, made by `task
# init`, with its password (scram-sha-256, not a trusted connection), and
# with the token its worker's claim left in the worker's state directory.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

setup() {
  fresh_db
  export RALPH_AGENT_ID=w1
  AGENT_ROLE="agent_${BATS_SUITE_TEST_NUMBER:-0}_$$_$RANDOM"
  AGENT_PASSWORD="pw-$RANDOM-$RANDOM-$RANDOM"
  AGENT_URL="postgresql://$AGENT_ROLE@127.0.0.1:$PG_TEST_PORT/${RALPH_DB_URL##*/}"
  # The worker's state directory, which it shares with its agent.
  STATE="$BATS_TEST_TMPDIR/state"
  mkdir -p "$STATE"
  HOLDERS=()
  # As on PostgreSQL 14 and older, where everybody may create in public.
  sql "GRANT CREATE ON SCHEMA public TO PUBLIC" >/dev/null
  RALPH_AGENT_DB_URL=$AGENT_URL RALPH_AGENT_DB_PASSWORD=$AGENT_PASSWORD "$TASK" init >/dev/null
  pg_require_password "$AGENT_ROLE"
}

teardown() {
  local pid
  ((${#HOLDERS[@]})) || return 0
  sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '$AGENT_ROLE'" >/dev/null || true
  for pid in "${HOLDERS[@]}"; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# as_agent CMD…: CMD as the worker's agent runs it: the agent role's URL
# and password (in PGPASSWORD, as the worker gives them), the worker's
# state directory.
as_agent() { RALPH_DB_URL=$AGENT_URL PGPASSWORD=$AGENT_PASSWORD RALPH_STATE_DIR=$STATE "$@"; }

# agent_sql SQL: SQL in one session of the agent role, with its password.
agent_sql() { as_agent psql "$AGENT_URL" -X -q -A -t -w -v ON_ERROR_STOP=1 -c "$1"; }

# work ID: the worker claims task ID for its agent (the claim leaves the
# attempt's token in STATE); TOKEN is that token.
work() {
  RALPH_STATE_DIR=$STATE "$TASK" claim "$1" >/dev/null
  TOKEN=$(<"$STATE/task-token")
  [[ $TOKEN =~ ^[0-9a-f-]{36}$ ]]
}

# refused PATTERN CMD…: CMD fails, and says PATTERN.
refused() {
  local pattern=$1
  shift
  run "$@"
  if ((status == 0)) || [[ $output != *"$pattern"* ]]; then
    printf 'expected a refusal saying: %s\nfrom: %s\ngot (exit %s): %s\n' "$pattern" "$*" "$status" "$output"
    return 1
  fi
}

# The functions of the store without `search_path = pg_catalog, pg_temp`.
unpinned_functions() {
  sql "SELECT coalesce(string_agg(p.oid::regprocedure::text, ' '), '') FROM pg_proc p
       WHERE p.pronamespace = 'public'::regnamespace
         AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false)"
}

@test "the agent role logs in with its password only" {
  PGPASSWORD="" run psql "$AGENT_URL" -X -w -c "SELECT 1"
  [ "$status" -ne 0 ]
  [[ $output == *"password"* ]]
  [ "$(agent_sql "SELECT current_user")" = "$AGENT_ROLE" ]
  [ "$(sql "SELECT pg_has_role('$AGENT_ROLE', 'ralph_agent', 'member') AND NOT rolsuper FROM pg_roles WHERE rolname = '$AGENT_ROLE'")" = t ]
}

@test "every function of the store runs with search_path pg_catalog, pg_temp" {
  [ "$(sql "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND proname LIKE 'ralph\_%'")" -ge 15 ]
  [ "$(sql "SELECT count(*) FROM pg_proc WHERE proname LIKE 'ralph\_%' AND pronamespace <> 'public'::regnamespace")" -eq 0 ]
  local unpinned
  unpinned=$(unpinned_functions)
  [ -z "$unpinned" ] || { echo "without search_path: $unpinned"; return 1; }
}

@test "the agent can't create in public, and a function planted there runs in none of the store's" {
  # CREATE on public is revoked from PUBLIC (granted back in setup, as on
  # PostgreSQL 14): the agent can't shadow make_interval or power, or a table.
  refused "permission denied for schema public" agent_sql \
    "CREATE FUNCTION public.power(double precision, integer) RETURNS double precision LANGUAGE sql AS 'SELECT 0::float8'"
  refused "permission denied for schema public" agent_sql \
    "CREATE FUNCTION public.make_interval(secs double precision) RETURNS interval LANGUAGE sql AS 'SELECT interval ''0'''"
  refused "permission denied for schema public" agent_sql "CREATE TABLE public.task_board (id text)"
  refused "permission denied for schema public" agent_sql "CREATE VIEW tasks_shadow AS SELECT 1 AS x"
  # One planted by a role that still could (here the superuser) is a better
  # match than pg_catalog.power(float8, float8), and would run in a function
  # that resolves names through the caller's search_path.
  sql "CREATE FUNCTION public.power(double precision, integer) RETURNS double precision LANGUAGE plpgsql
       AS \$\$BEGIN RAISE EXCEPTION 'the planted power ran as %', current_user; END\$\$" >/dev/null
  [ "$(sql "SELECT power(2::float8, 3)" 2>&1 || true)" != 8 ]
  [ "$(sql "SELECT ralph_backoff(3, 30, 900)")" = "00:02:00" ]
  export RALPH_RETRY_BASE_SECONDS=30
  "$TASK" add b/1 "backs off"
  "$TASK" claim b/1 >/dev/null
  run "$TASK" fail b/1 --reason "first try"
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT round(extract(epoch FROM not_before - now())) BETWEEN 25 AND 30 FROM tasks WHERE id = 'b/1'")" = t ]
}

@test "an agent adds tasks only for the task it works, none more urgent than it" {
  "$TASK" add w/1 "the agent's task" --priority 1
  "$TASK" add other/1 "someone else's, more urgent" --priority 0
  # The other task is held by another worker (its own state directory).
  RALPH_STATE_DIR="$BATS_TEST_TMPDIR" "$TASK" claim other/1 --agent w2 >/dev/null
  work w/1
  # Through the CLI, as the agent does.
  run as_agent "$TASK" add n/1 "a follow-up" --priority 1
  [ "$status" -eq 0 ]
  run as_agent "$TASK" add n/2 "a less urgent one"
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT string_agg(id || ':' || priority || ':' || added_by, ' ' ORDER BY id) FROM tasks WHERE id LIKE 'n/%'")" = "n/1:1:w/1 n/2:2:w/1" ]
  refused "priority 0 is more urgent than that of task w/1 (priority 1), the task this agent works: use --priority 1 or higher" \
    as_agent "$TASK" add n/3 "jump the queue" --priority 0
  [ "$status" -eq 1 ]
  # Plain SQL: with its token, without one, with a guessed one.
  refused "priority 0 is more urgent than that of task w/1" \
    agent_sql "SET ralph.task_token = '$TOKEN'; INSERT INTO tasks (id, description, priority) VALUES ('n/4', 'x', 0)"
  refused "the agent role adds tasks only for the task it works" \
    agent_sql "INSERT INTO tasks (id, description, priority) VALUES ('n/5', 'x', 3)"
  refused "the agent role adds tasks only for the task it works" \
    agent_sql "SET ralph.task_token = '$(cat /proc/sys/kernel/random/uuid)'; INSERT INTO tasks (id, description, priority) VALUES ('n/6', 'x', 3)"
  refused "the agent role adds tasks only for the task it works" \
    agent_sql "SET ralph.task_token = 'w/1'; INSERT INTO tasks (id, description, priority) VALUES ('n/7', 'x', 3)"
  # The other task's token (and priority) is the other worker's only.
  refused "permission denied for table tasks" agent_sql "SELECT lease_token FROM tasks"
  # When the attempt ends, its token names nothing.
  "$TASK" "done" w/1 --result '{"commit": "c"}' >/dev/null
  refused "the agent role adds tasks only for the task it works" as_agent "$TASK" add n/8 "too late" --priority 3
  [ "$(sql "SELECT count(*) FROM tasks WHERE id LIKE 'n/%'")" -eq 2 ]
}

@test "an agent gives a new task at most 10 attempts, and no not_before in the past" {
  "$TASK" add w/1 "the agent's task"
  work w/1
  run as_agent "$TASK" add n/1 "worth ten tries" --max-attempts 10
  [ "$status" -eq 0 ]
  refused "max_attempts 11 is more than an agent may give a task: use at most 10" \
    as_agent "$TASK" add n/2 "worth more" --max-attempts 11
  refused "max_attempts 1000 is more than an agent may give a task" \
    agent_sql "SET ralph.task_token = '$TOKEN'; INSERT INTO tasks (id, description, max_attempts) VALUES ('n/3', 'x', 1000)"
  refused "is in the past: an agent may delay a task it adds, not backdate it" \
    agent_sql "SET ralph.task_token = '$TOKEN'; INSERT INTO tasks (id, description, not_before) VALUES ('n/4', 'x', now() - interval '1 hour')"
  run agent_sql "SET ralph.task_token = '$TOKEN'; INSERT INTO tasks (id, description, not_before) VALUES ('n/5', 'later', now() + interval '1 hour')"
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT string_agg(id, ' ' ORDER BY id) FROM tasks WHERE id LIKE 'n/%'")" = "n/1 n/5" ]
}

@test "an agent inserts only the columns a new task needs" {
  "$TASK" add w/1 "the agent's task"
  work w/1
  local column
  for column in "status|'active'" "assignee|'me'" "lease_expires_at|now()" "result|'{}'" "attempts|5" \
    "last_error|'x'" "lease_token|gen_random_uuid()" "added_by|'other/1'" "created_at|now() - interval '1 year'" \
    "updated_at|now()" "deleted_at|now()"; do
    refused "permission denied for table tasks" \
      agent_sql "SET ralph.task_token = '$TOKEN'; INSERT INTO tasks (id, description, ${column%%|*}) VALUES ('n/1', 'x', ${column#*|})"
  done
  # What it may set, it sets; the rest is a new task's.
  run agent_sql "SET ralph.task_token = '$TOKEN';
    INSERT INTO tasks (id, description, category, priority, spec_ref, ref, steps, max_attempts, not_before)
    VALUES ('n/2', 'all it may', 'bug', 3, 'spec.md', 'main', '{a,b}', 2, now() + interval '1 minute')"
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT concat_ws(' ', status, attempts, assignee IS NULL, result IS NULL, added_by, category, steps) FROM tasks WHERE id = 'n/2'")" = "open 0 t t w/1 bug {a,b}" ]
  # No UPDATE or DELETE, not even of what it added.
  refused "permission denied for table tasks" agent_sql "UPDATE tasks SET priority = 0 WHERE id = 'n/2'"
  refused "permission denied for table tasks" agent_sql "DELETE FROM tasks WHERE id = 'n/2'"
}

@test "an agent makes wait only its own task and the tasks it added" {
  "$TASK" add w/1 "the agent's task"
  "$TASK" add other/1 "someone else's"
  "$TASK" add other/2 "another one"
  work w/1
  run as_agent "$TASK" block w/1 --by other/1
  [ "$status" -eq 0 ]
  run as_agent "$TASK" add n/1 "a follow-up" --blocked-by other/1
  [ "$status" -eq 0 ]
  run as_agent "$TASK" block n/1 --by other/2
  [ "$status" -eq 0 ]
  refused "an agent makes wait only its own task (w/1) and the open tasks it added, not other/2" \
    as_agent "$TASK" block other/2 --by other/1
  refused "an agent makes wait only its own task (w/1) and the open tasks it added, not other/2" \
    agent_sql "SET ralph.task_token = '$TOKEN'; INSERT INTO task_dependencies (task_id, blocked_by) VALUES ('other/2', 'w/1')"
  refused "the agent role adds blockers only for the task it works" \
    agent_sql "INSERT INTO task_dependencies (task_id, blocked_by) VALUES ('n/1', 'w/1')"
  refused "permission denied for table task_dependencies" \
    agent_sql "SET ralph.task_token = '$TOKEN'; DELETE FROM task_dependencies"
  [ "$(sql "SELECT string_agg(task_id || '<' || blocked_by, ' ' ORDER BY task_id, blocked_by) FROM task_dependencies")" = "n/1<other/1 n/1<other/2 w/1<other/1" ]
}

@test "an agent reads every task's title and state, but not other tasks' results or errors" {
  export RALPH_RETRY_BASE_SECONDS=0 RALPH_RETRY_MAX_SECONDS=0
  "$TASK" add d/1 "finished"
  "$TASK" claim d/1 >/dev/null
  "$TASK" "done" d/1 --result '{"commit": "secret-commit"}' >/dev/null
  "$TASK" add f/1 "failed once"
  "$TASK" claim f/1 >/dev/null
  "$TASK" fail f/1 --reason "secret-error" >/dev/null
  "$TASK" add w/1 "the agent's task"
  "$TASK" claim w/1 >/dev/null
  "$TASK" fail w/1 --reason "my-last-error" >/dev/null
  work w/1
  local query
  for query in "SELECT result FROM tasks" "SELECT last_error FROM tasks" "SELECT t FROM tasks t" \
    "SELECT * FROM tasks" "SELECT lease_token FROM tasks" "SELECT ralph_task_json(t) FROM tasks t"; do
    refused "permission denied for table tasks" agent_sql "$query"
  done
  # What the agent reads through the CLI: every task's text and state, its
  # own task's last error, nobody else's result or error.
  run as_agent "$TASK" --json list --all
  [ "$status" -eq 0 ]
  [ "$(jq -r 'map([.id, .description, .status, (.result | tostring), .last_error // "-"] | join(":")) | join(" ")' <<<"$output")" \
    = "d/1:finished:done:null:- f/1:failed once:open:null:- w/1:the agent's task:active:null:my-last-error" ]
  local cmd
  for cmd in "list --all" "--json show d/1" "show f/1" "peek" "--json peek"; do
    # shellcheck disable=SC2086 # the command's words
    run as_agent "$TASK" $cmd
    [ "$status" -eq 0 ]
    [[ $output != *secret* ]] || { echo "task $cmd shows: $output"; return 1; }
  done
  run as_agent "$TASK" show f/1
  [[ $output == *"description: failed once"* && $output == *"status: open"* ]]
  # The view hides them from the agent even in SQL.
  [ "$(agent_sql "SELECT count(*) FROM task_board WHERE result IS NOT NULL OR last_error LIKE 'secret%'")" -eq 0 ]
  # Whoever may read them (the owner; the worker role) still does.
  [ "$("$TASK" --json show d/1 | jq -r .result.commit)" = secret-commit ]
  [[ "$("$TASK" list)" == *"secret-error"* ]]
}

@test "the agent role can't take or release advisory locks" {
  local call
  for call in "pg_advisory_lock(7426002)" "pg_try_advisory_lock(7426002)" "pg_advisory_xact_lock(7426001)" \
    "pg_try_advisory_xact_lock(7426001)" "pg_advisory_lock_shared(1)" "pg_try_advisory_lock_shared(1)" \
    "pg_advisory_lock(1, 2)" "pg_advisory_unlock(7426002)" "pg_advisory_unlock_all()"; do
    refused "permission denied for function pg_" agent_sql "SELECT $call"
  done
  # The store still takes its own: applying the schema, and the blocker
  # check (which runs as the owner, whoever adds the blocker).
  run "$TASK" init
  [ "$status" -eq 0 ]
  "$TASK" add a/1 "first"
  run "$TASK" add a/2 "second" --blocked-by a/1
  [ "$status" -eq 0 ]
  run "$TASK" block a/1 --by a/2
  [ "$status" -eq 1 ]
  [[ $output == *"would make a cycle"* ]]
}

@test "the agent role has a connection limit" {
  # 10 by default; RALPH_AGENT_DB_CONNECTIONS sets another.
  [ "$(sql "SELECT rolconnlimit FROM pg_roles WHERE rolname = '$AGENT_ROLE'")" -eq 10 ]
  RALPH_AGENT_DB_URL=$AGENT_URL RALPH_AGENT_DB_PASSWORD=$AGENT_PASSWORD RALPH_AGENT_DB_CONNECTIONS=2 "$TASK" init >/dev/null
  [ "$(sql "SELECT rolconnlimit FROM pg_roles WHERE rolname = '$AGENT_ROLE'")" -eq 2 ]
  RALPH_AGENT_DB_URL=$AGENT_URL RALPH_AGENT_DB_PASSWORD=$AGENT_PASSWORD RALPH_AGENT_DB_CONNECTIONS='2;DROP' run "$TASK" init
  [ "$status" -eq 2 ]
  [[ $output == *"RALPH_AGENT_DB_CONNECTIONS='2;DROP' is not a whole number between 1 and 1000"* ]]
  # Two sessions held open, by a hostile or stuck agent...
  for _ in 1 2; do
    as_agent psql "$AGENT_URL" -X -q -w -c "SELECT pg_sleep(60)" </dev/null >/dev/null 2>&1 3>&- &
    HOLDERS+=("$!")
  done
  agent_sessions_are() { [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE usename = '$AGENT_ROLE'")" -eq "$1" ]; }
  wait_for 10 agent_sessions_are 2
  # ... and a third is refused.
  refused "too many connections for role \"$AGENT_ROLE\"" agent_sql "SELECT 1"
  refused "too many connections for role \"$AGENT_ROLE\"" as_agent "$TASK" list
  # The workers' and the owner's connections are not the agent's to take.
  [ "$(sql "SELECT 1")" -eq 1 ]
  sql "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '$AGENT_ROLE'" >/dev/null
  wait_for 10 agent_sessions_are 0
  [ "$(agent_sql "SELECT 1")" -eq 1 ]
}

@test "a store made by the previous schema is upgraded when the schema is applied again" {
  fresh_db
  local old="old_${BATS_SUITE_TEST_NUMBER:-0}_$$_$RANDOM"
  psql "$RALPH_DB_URL" -X -q -v ON_ERROR_STOP=1 -f "$BATS_TEST_DIRNAME/fixtures/schema-v2.sql" >/dev/null
  sql "GRANT CREATE ON SCHEMA public TO PUBLIC;
       CREATE ROLE $old LOGIN IN ROLE ralph_agent;
       INSERT INTO tasks (id, description, priority, status, result) VALUES ('o/1', 'old and done', 1, 'done', '{\"commit\": \"c1\"}');
       INSERT INTO tasks (id, description, last_error, attempts) VALUES ('o/2', 'old and tried', 'it broke', 1);
       INSERT INTO task_dependencies (task_id, blocked_by) VALUES ('o/2', 'o/1')" >/dev/null
  [ "$(sql "SELECT ralph_schema_version()")" -eq 2 ]
  [ "$(sql "SELECT has_table_privilege('ralph_agent', 'tasks', 'SELECT')")" = t ]
  [ -n "$(unpinned_functions)" ]
  local rows="SELECT string_agg(concat_ws('|', id, description, priority, status, result, last_error, attempts), ' ' ORDER BY id) FROM tasks"
  local before
  before=$(sql "$rows")
  run "$TASK" init
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT ralph_schema_version()")" -eq 3 ]
  [ "$(sql "$rows")" = "$before" ]
  [ "$(sql "SELECT count(*) FROM task_dependencies")" -eq 1 ]
  # Hardened: the old table-wide grants are gone, the column grants in place.
  [ "$(sql "SELECT concat_ws(' ', has_table_privilege('ralph_agent', 'tasks', 'SELECT'),
              has_table_privilege('ralph_agent', 'tasks', 'INSERT'),
              has_column_privilege('ralph_agent', 'tasks', 'result', 'SELECT'),
              has_column_privilege('ralph_agent', 'tasks', 'last_error', 'SELECT'),
              has_column_privilege('ralph_agent', 'tasks', 'status', 'INSERT'),
              has_column_privilege('ralph_agent', 'tasks', 'description', 'SELECT'),
              has_column_privilege('ralph_agent', 'tasks', 'description', 'INSERT'),
              has_schema_privilege('ralph_agent', 'public', 'CREATE'),
              has_function_privilege('ralph_agent', 'pg_advisory_lock(bigint)', 'EXECUTE'))")" = "f f f f f t t f f" ]
  [ -z "$(unpinned_functions)" ]
  # The old agent login role got the connection limit.
  [ "$(sql "SELECT rolconnlimit FROM pg_roles WHERE rolname = '$old'")" -eq 10 ]
  # Applied again: nothing changes.
  local acl
  acl=$(sql "SELECT relacl::text FROM pg_class WHERE relname = 'tasks'")
  run "$TASK" init
  [ "$status" -eq 0 ]
  run psql "$RALPH_DB_URL" -X -q -v ON_ERROR_STOP=1 -f "$REPO_ROOT/db/schema.sql"
  [ "$status" -eq 0 ]
  [ "$(sql "$rows")" = "$before" ]
  [ "$(sql "SELECT relacl::text FROM pg_class WHERE relname = 'tasks'")" = "$acl" ]
  [ "$(sql "SELECT count(*) FROM pg_policy WHERE polrelid = 'tasks'::regclass")" -eq 3 ]
}

@test "the worker's agent adds a follow-up for its task with the claim's token, and nothing more urgent" {
  make_remote
  export RALPH_IDLE_MIN_SECONDS=1 RALPH_IDLE_MAX_SECONDS=1 TMPDIR=$BATS_TEST_TMPDIR
  "$TASK" add e2e/1 "find follow-ups" --priority 1
  export RALPH_AGENT_DB_URL=$AGENT_URL RALPH_AGENT_DB_PASSWORD=$AGENT_PASSWORD
  export RALPH_AGENT_CMD='{ task add e2e/follow "found while working" --priority 1 && echo added;
    task add e2e/urgent "jump the queue" --priority 0 || echo refused;
    task --json list | jq -r "map(.id) | join(\" \")"; } > agent.txt 2>&1'
  run "$RALPH" build --max-iterations 1
  [ "$status" -eq 0 ]
  [ "$(task_status e2e/1)" = "done" ]
  run git -C "$REMOTE" show ralph/e2e/1:agent.txt
  [ "${lines[0]}" = "added e2e/follow: found while working [p1 feat, open]" ]
  [ "${lines[1]}" = "added" ]
  [[ ${lines[2]} == *"priority 0 is more urgent than that of task e2e/1 (priority 1)"* ]]
  [ "${lines[3]}" = "refused" ]
  [ "${lines[4]}" = "e2e/1 e2e/follow" ]
  [ "$(sql "SELECT added_by FROM tasks WHERE id = 'e2e/follow'")" = e2e/1 ]
  [ "$(sql "SELECT count(*) FROM tasks WHERE id = 'e2e/urgent'")" -eq 0 ]
}
