#!/usr/bin/env bash
# The task store through psql: one psql session per command, the schema
# applied on first use, errors turned into one line that says what to do.
# Needs lib/common.sh and RALPH_HOME (the directory holding db/).

# db_require_url: RALPH_DB_URL is set; the first time, it is split into
# DB_URL_NOPW and DB_PASSWORD (db_url_parts: psql gets the URL without the
# password, the password through its environment) and PGCONNECT_TIMEOUT is
# checked (DB_CONNECT_TIMEOUT).
db_require_url() {
  [[ -n ${RALPH_DB_URL:-} ]] \
    || usage_error "RALPH_DB_URL is not set: export RALPH_DB_URL=postgresql://USER:PASSWORD@HOST:5432/DATABASE"
  [[ $DB_URL_SPLIT != "$RALPH_DB_URL" ]] || return 0
  db_url_parts "$RALPH_DB_URL" || usage_error "RALPH_DB_URL: $DB_URL_ERROR"
  env_uint PGCONNECT_TIMEOUT 5 0 3600
  DB_CONNECT_TIMEOUT=$ENV_UINT
  DB_URL_SPLIT=$RALPH_DB_URL
}
DB_URL_SPLIT=""
DB_CONNECT_TIMEOUT=5

# db_exec_psql ARGS…: execs psql on the store, the password (if the URL has
# one) in PGPASSWORD of this process only, never on the command line. Run it
# in a subshell. -w: never a password prompt (without a terminal psql would
# read the SQL on stdin as the password).
db_exec_psql() {
  [[ -z $DB_PASSWORD ]] || export PGPASSWORD=$DB_PASSWORD
  PGCONNECT_TIMEOUT=$DB_CONNECT_TIMEOUT PGAPPNAME=${PGAPPNAME:-ralph} \
    exec "$DB_PSQL" "$DB_URL_NOPW" -w "$@"
}

# The psql binary. Debian's /usr/bin/psql is a Perl wrapper that costs a few
# tens of milliseconds per call; the binary behind it is used directly.
db_psql_path() {
  if [[ -n ${RALPH_PSQL:-} ]]; then
    DB_PSQL=$RALPH_PSQL
    return
  fi
  DB_PSQL=psql
  local wrapper=/usr/share/postgresql-common/pg_wrapper found="" candidate
  if [[ -e $wrapper ]] && [[ $(type -P psql) -ef $wrapper ]]; then
    for candidate in /usr/lib/postgresql/*/bin/psql; do
      [[ -x $candidate ]] && found=$candidate
    done
    # The glob sorts lexically: prefer the highest major version.
    for candidate in /usr/lib/postgresql/[1-9][0-9]/bin/psql; do
      [[ -x $candidate ]] && found=$candidate
    done
    [[ -z $found ]] || DB_PSQL=$found
  fi
}
DB_PSQL=""

# db_run [PSQL_ARGS…] <<<SQL: runs SQL in one psql session (unaligned,
# tuples only) and sets DB_OUT to what it selects. Values come as
# `-v name=value` and are used as :'name' in SQL (psql quotes them: no
# injection). On failure: one line on stderr, return 1.
# The schema is applied on first use: when the store has none yet, the SQL
# fails on its first statement (before any write), the schema is applied,
# and the SQL runs again. One fork and one exec per call otherwise: `task
# claim` is on every worker's hot path.
db_run() {
  db_require_url
  [[ -n $DB_PSQL ]] || db_psql_path
  local rc=0 body=""
  IFS= read -r -d '' body || true
  db_psql "$body" "$@" || rc=$?
  if ((rc != 0)) && db_schema_missing "$DB_OUT"; then
    db_apply_schema || return "$EXIT_ERROR"
    rc=0
    db_psql "$body" "$@" || rc=$?
  fi
  if ((rc != 0)); then
    db_explain_error "$rc" "$DB_OUT"
    DB_OUT=""
    return "$EXIT_ERROR"
  fi
}
DB_OUT=""

# db_psql SQL [PSQL_ARGS…]: psql's output (stdout and stderr: with
# client_min_messages=warning and -q it writes to stderr only when something
# failed) in DB_OUT; psql's status.
db_psql() {
  local sql=$1
  shift
  DB_OUT=$(
    PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c client_min_messages=warning" \
      db_exec_psql -X -q -A -t -v ON_ERROR_STOP=1 "$@" -f - 2>&1 <<<"$sql"
  )
}

# db_schema_missing PSQL_OUTPUT: the failure was a store without ralph's
# schema (or part of it).
db_schema_missing() {
  [[ $1 =~ (relation\ \"(tasks|task_dependencies|agents)\"|function\ ralph_[a-z_]+\(.*\))\ does\ not\ exist ]]
}

db_apply_schema() {
  db_require_url
  [[ -n $DB_PSQL ]] || db_psql_path
  local out
  if ! out=$(db_exec_psql -X -q -v ON_ERROR_STOP=1 -f "$RALPH_HOME/db/schema.sql" 2>&1); then
    db_explain_error 1 "$out"
    return "$EXIT_ERROR"
  fi
}

# One line for what psql said.
db_explain_error() {
  local rc=$1 text=$2 line
  line=$(grep -m1 -E 'ERROR:|FATAL:|error:' <<<"$text" || true)
  [[ -n $line ]] || line=$(head -n1 <<<"$text")
  # The password cases first: psql reports them as a failed connection too.
  if [[ $text == *"password authentication failed"* ]]; then
    log "the database refused the credentials (the user in RALPH_DB_URL, the password in it or in PGPASSWORD): fix the user or password"
  elif [[ $text == *"no password supplied"* ]]; then
    log "the database wants a password: put it in RALPH_DB_URL (percent-encoded: postgresql://USER:PASSWORD@HOST:5432/DATABASE) or in PGPASSWORD"
  elif [[ $text == *"connection to server"* || $text == *"could not translate host name"* || $text == *"timeout expired"* || $text == *"could not connect"* ]]; then
    line=${line#*error: }
    log "cannot reach the database (RALPH_DB_URL): ${line}: check that PostgreSQL is running and RALPH_DB_URL points at it"
  elif [[ $text == *"database \""*"\" does not exist"* ]]; then
    log "${line#*FATAL:  }: create it (createdb) or fix the database name in RALPH_DB_URL"
  elif [[ $text == *'"tasks_pkey"'* ]]; then
    log "a task with that id already exists: choose another id (\`task show ID\` shows it)"
  elif [[ $text == *'task_dependencies_blocked_by_fkey'* ]]; then
    log "unknown blocker: add the blocking task first (\`task list\` shows the ids)"
  elif [[ $text == *'invalid input syntax for type json'* ]]; then
    log "the result is not valid JSON: pass a JSON object, for example '{\"commit\": \"abc123\"}'"
  elif [[ $line == *"ERROR:"* ]]; then
    log "${line#*ERROR:  }"
  else
    log "psql failed (exit $rc): $line"
  fi
}

# db_require_task ID: sets TASK_STATE to "status|assignee|deleted", or
# exits 4 naming the unknown task.
db_require_task() {
  db_run -v id="$1" <<'SQL' || exit "$EXIT_ERROR"
SELECT status || '|' || coalesce(assignee, '') || '|' || (deleted_at IS NOT NULL) FROM tasks WHERE id = :'id';
SQL
  TASK_STATE=$DB_OUT
  [[ -n $TASK_STATE ]] || die "$EXIT_NOT_FOUND" "unknown task '$1': \`task list --all\` shows the task ids"
}
TASK_STATE=""
