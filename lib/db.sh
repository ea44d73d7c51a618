#!/usr/bin/env bash
# The task store through psql: one psql session per command, the schema
# applied on first use, errors turned into one line that says what to do.
# Needs lib/common.sh and RALPH_HOME (the directory holding db/).

db_require_url() {
  [[ -n ${RALPH_DB_URL:-} ]] \
    || usage_error "RALPH_DB_URL is not set: export RALPH_DB_URL=postgresql://USER:PASSWORD@HOST:5432/DATABASE"
}

# db_run [PSQL_ARGS…] <<<SQL: runs SQL in one session (unaligned, tuples
# only). Variables come as `-v name=value` and are used as :'name' in SQL.
db_run() {
  db_require_url
  local err rc=0 out
  err=$(mktemp)
  out=$(
    {
      db_schema_prelude
      cat
    } | PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5} psql "$RALPH_DB_URL" -X -q -A -t -v ON_ERROR_STOP=1 "$@" -f - 2>"$err"
  ) || rc=$?
  if ((rc != 0)); then
    db_explain_error "$rc" "$(cat "$err")"
    rm -f "$err"
    return "$EXIT_ERROR"
  fi
  rm -f "$err"
  [[ -z $out ]] || printf '%s\n' "$out"
}

# Applies db/schema.sql when the store has no schema yet (psql's \if).
db_schema_prelude() {
  cat <<SQL
SELECT to_regproc('ralph_claim') IS NULL AS ralph_need_schema \gset
\if :ralph_need_schema
\i $RALPH_HOME/db/schema.sql
\endif
SQL
}

db_apply_schema() {
  db_require_url
  local err
  if ! err=$(PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-5} psql "$RALPH_DB_URL" -X -q -v ON_ERROR_STOP=1 -f "$RALPH_HOME/db/schema.sql" 2>&1 >/dev/null); then
    db_explain_error 1 "$err"
    return "$EXIT_ERROR"
  fi
}

# One line for what psql said.
db_explain_error() {
  local rc=$1 text=$2 line
  line=$(grep -m1 -E 'ERROR:|FATAL:|error:' <<<"$text" || true)
  [[ -n $line ]] || line=$(head -n1 <<<"$text")
  if [[ $text == *"connection to server"* || $text == *"could not translate host name"* || $text == *"timeout expired"* ]]; then
    line=${line#*error: }
    log "cannot reach the database (RALPH_DB_URL): ${line}: check that PostgreSQL is running and RALPH_DB_URL points at it"
  elif [[ $text == *"password authentication failed"* ]]; then
    log "the database refused the credentials in RALPH_DB_URL: fix the user or password"
  elif [[ $text == *'"tasks_pkey"'* ]]; then
    log "a task with that id already exists: choose another id (\`task show ID\` shows it)"
  elif [[ $text == *'task_dependencies_blocked_by_fkey'* ]]; then
    log "unknown blocker: add the blocking task first (\`task list\` shows the ids)"
  elif [[ $line == *"ERROR:"* ]]; then
    log "${line#*ERROR:  }"
  else
    log "psql failed (exit $rc): $line"
  fi
}

# db_task_state ID: "status|assignee|deleted" of a task, empty when unknown.
db_task_state() {
  db_run -v id="$1" <<'SQL'
SELECT status || '|' || coalesce(assignee, '') || '|' || (deleted_at IS NOT NULL) FROM tasks WHERE id = :'id';
SQL
}

# db_require_task ID: the state, or exit 4 naming the task.
db_require_task() {
  local state
  state=$(db_task_state "$1") || exit "$EXIT_ERROR"
  [[ -n $state ]] || die "$EXIT_NOT_FOUND" "unknown task '$1': \`task list\` shows the task ids"
  printf '%s\n' "$state"
}
