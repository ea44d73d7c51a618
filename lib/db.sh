#!/usr/bin/env bash
# The task store through psql: one psql session per command, the schema
# applied on first use, errors turned into one line that says what to do.
# Every psql call is bounded (db_bounds): a database that stops answering
# (down, overloaded, or behind a half-open connection) costs a call a few
# seconds, never the lease it renews.
# Needs lib/common.sh and RALPH_HOME (the directory holding db/).

# db_require_url: RALPH_DB_URL is set; the first time, it is split into
# DB_URL_NOPW and DB_PASSWORD (db_url_parts: psql gets the URL without the
# password, the password through its environment), PGCONNECT_TIMEOUT is
# checked (DB_CONNECT_TIMEOUT), and the bounds of a call are set from
# RALPH_LEASE_SECONDS (db_bounds, DB_CONNINFO).
db_require_url() {
  [[ -n ${RALPH_DB_URL:-} ]] \
    || usage_error "RALPH_DB_URL is not set: export RALPH_DB_URL=postgresql://USER:PASSWORD@HOST:5432/DATABASE"
  [[ $DB_URL_SPLIT != "$RALPH_DB_URL" ]] || return 0
  db_url_parts "$RALPH_DB_URL" || usage_error "RALPH_DB_URL: $DB_URL_ERROR"
  env_uint PGCONNECT_TIMEOUT 5 0 3600
  DB_CONNECT_TIMEOUT=$ENV_UINT
  env_uint RALPH_LEASE_SECONDS 300 1 86400
  db_bounds "$ENV_UINT"
  db_conninfo "$DB_URL_NOPW"
  DB_URL_SPLIT=$RALPH_DB_URL
}
DB_URL_SPLIT=""
DB_CONNECT_TIMEOUT=5

# db_bounds LEASE_SECONDS: how long one psql call may take, from the lease
# (a call that renews a lease must end well before the lease could run
# out): DB_CALL_MS, a quarter of the lease, at least 2 s and at most 30 s
# (the default lease of 300 s: 30 s). psql is stopped past it (TERM, KILL
# 2 s later: timeout(1)), and the session asks the server to end its part
# sooner (db_exec_psql): statement_timeout and
# idle_in_transaction_session_timeout half of it, lock_timeout a quarter.
# The TCP connection (db_conninfo) gives up on a peer that acknowledges
# nothing after half of it (tcp_user_timeout), and probes an idle one with
# keepalives. Applying the schema (DDL, once) gets DB_SCHEMA_MS: 120 s.
db_bounds() {
  local ms=$(($1 * 250))
  ((ms >= 2000)) || ms=2000
  ((ms <= 30000)) || ms=30000
  DB_CALL_MS=$ms
}
DB_CALL_MS=30000
readonly DB_SCHEMA_MS=120000

# db_conninfo CONNINFO: sets DB_CONNINFO to CONNINFO (a postgresql:// URL,
# with or without a query string, or key=value pairs) with libpq's TCP
# bounds added, which it reads from the connection string only (no
# environment variable): keepalives (first probe after a sixth of
# DB_CALL_MS idle, then every twelfth, 3 unanswered: dead) and
# tcp_user_timeout (half of DB_CALL_MS). One the string sets already is left
# as it is. (They apply to TCP only; a Unix socket ignores them.)
db_conninfo() {
  local conninfo=$1 param name added="" idle=$((DB_CALL_MS / 6000)) interval=$((DB_CALL_MS / 12000))
  ((idle >= 1)) || idle=1
  ((interval >= 1)) || interval=1
  local -a params=(keepalives=1 "keepalives_idle=$idle" "keepalives_interval=$interval" keepalives_count=3
    "tcp_user_timeout=$((DB_CALL_MS / 2))")
  if [[ $conninfo =~ ^postgres(ql)?:// ]]; then
    for param in "${params[@]}"; do
      name=${param%%=*}
      [[ $conninfo =~ [?\&]${name}= ]] || added+=${added:+&}$param
    done
    if [[ $conninfo != *\?* ]]; then
      conninfo+='?'
    elif [[ $conninfo != *[?\&] ]]; then
      conninfo+='&'
    fi
    DB_CONNINFO=$conninfo$added
    return
  fi
  # A bare database name becomes dbname='NAME' (quoted as libpq wants).
  if [[ $conninfo != *=* ]]; then
    conninfo=${conninfo//\\/\\\\}
    conninfo="dbname='${conninfo//\'/\\\'}'"
  fi
  for param in "${params[@]}"; do
    name=${param%%=*}
    [[ $conninfo =~ (^|[[:space:]])${name}[[:space:]]*= ]] || added+=" $param"
  done
  DB_CONNINFO=$conninfo$added
}
DB_CONNINFO=""

# db_exec_psql BOUND_MS ARGS…: execs psql on the store, bounded by BOUND_MS
# (then TERM, and KILL 2 s later; the server is asked to end its part
# sooner: see db_bounds; the caller's PGOPTIONS may override those), the
# password (if the URL has one) in PGPASSWORD of this process only, never on
# the command line. Run it in a subshell. -w: never a password prompt
# (without a terminal psql would read the SQL on stdin as the password).
# --foreground: psql stays in the caller's process group, so stopping the
# caller's group stops it.
db_exec_psql() {
  local ms=$1
  shift
  [[ -z $DB_PASSWORD ]] || export PGPASSWORD=$DB_PASSWORD
  ms_seconds "$ms"
  PGOPTIONS="-c statement_timeout=$((ms / 2)) -c lock_timeout=$((ms / 4)) -c idle_in_transaction_session_timeout=$((ms / 2))${PGOPTIONS:+ $PGOPTIONS}" \
    PGCONNECT_TIMEOUT=$DB_CONNECT_TIMEOUT PGAPPNAME=${PGAPPNAME:-ralph} \
    exec timeout --foreground --kill-after=2 "$SECS" "$DB_PSQL" "$DB_CONNINFO" -w "$@"
}

# The psql binary. Debian's /usr/bin/psql is a Perl wrapper that costs a few
# tens of milliseconds per call; the binary behind it is used directly.
# timeout(1) (coreutils), which bounds every call, must be there too.
db_psql_path() {
  command -v timeout >/dev/null \
    || die "$EXIT_ERROR" "timeout (GNU coreutils) is not on PATH: install coreutils (it bounds every psql call)"
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
    db_explain_error "$rc" "$DB_OUT" "$DB_CALL_MS"
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
      db_exec_psql "$DB_CALL_MS" -X -q -A -t -v ON_ERROR_STOP=1 "$@" -f - 2>&1 <<<"$sql"
  )
}

# db_schema_missing PSQL_OUTPUT: the failure was a store without ralph's
# schema (or part of it: an older version's store has no task_board and no
# lease_token).
db_schema_missing() {
  [[ $1 =~ (relation\ \"(tasks|task_dependencies|agents|task_board)\"|function\ ralph_[a-z_]+\(.*\)|column\ t\.lease_token)\ does\ not\ exist ]]
}

# db_apply_schema: applies db/schema.sql (bounded by DB_SCHEMA_MS). What it
# warns about (a hardening step the applier has no right to take) is said on
# stderr.
db_apply_schema() {
  db_require_url
  [[ -n $DB_PSQL ]] || db_psql_path
  local out line rc attempt
  for attempt in 1 2 3; do
    rc=0
    out=$(db_exec_psql "$DB_SCHEMA_MS" -X -q -v ON_ERROR_STOP=1 -f "$RALPH_HOME/db/schema.sql" 2>&1) || rc=$?
    # PostgreSQL broke a deadlock with another session (another worker's
    # traffic on the tables the schema changes) by aborting this one
    # transaction: all of it was rolled back, and it is applied again.
    if ((rc == 0 || attempt == 3)) || [[ $out != *"deadlock detected"* ]]; then
      break
    fi
    log "applying the schema: deadlock detected (attempt $attempt of 3); applying it again"
  done
  if ((rc != 0)); then
    db_explain_error "$rc" "$out" "$DB_SCHEMA_MS"
    return "$EXIT_ERROR"
  fi
  while IFS= read -r line; do
    [[ $line != *"WARNING:  "* ]] || log "applying the schema: ${line#*WARNING:  }"
  done <<<"$out"
}

# db_explain_error STATUS OUTPUT [BOUND_MS]: one line for what psql said
# (124 or 137: timeout(1) stopped it at its bound).
db_explain_error() {
  local rc=$1 text=$2 line
  line=$(grep -m1 -E 'ERROR:|FATAL:|error:' <<<"$text" || true)
  [[ -n $line ]] || line=$(head -n1 <<<"$text")
  if ((rc == 124 || rc == 137)); then
    ms_seconds "${3:-$DB_CALL_MS}"
    log "cannot reach the database (RALPH_DB_URL): no answer within ${SECS%.000}s, psql was stopped (a half-open connection, or a server that hangs): check that PostgreSQL is running and RALPH_DB_URL points at it"
  # The password cases first: psql reports them as a failed connection too.
  elif [[ $text == *"password authentication failed"* ]]; then
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

# db_require_task ID: sets TASK_STATE to "status|assignee|deleted|lease ran out" (true or false), or
# exits 4 naming the unknown task.
db_require_task() {
  db_run -v id="$1" <<'SQL' || exit "$EXIT_ERROR"
SELECT status || '|' || coalesce(assignee, '') || '|' || (deleted_at IS NOT NULL) || '|'
  || coalesce(lease_expires_at <= clock_timestamp(), false) FROM tasks WHERE id = :'id';
SQL
  TASK_STATE=$DB_OUT
  [[ -n $TASK_STATE ]] || die "$EXIT_NOT_FOUND" "unknown task '$1': \`task list --all\` shows the task ids"
}
TASK_STATE=""
