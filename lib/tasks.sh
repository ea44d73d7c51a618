#!/usr/bin/env bash
# The `task` commands. Each write is one explicit transaction (BEGIN …
# COMMIT in one psql session: a failure anywhere rolls all of it back). Each
# command prints readable text, or JSON with --json (TASK_JSON=1); the text
# and the JSON are made by PostgreSQL, so a command is one psql call.
# Commands read tasks through the view task_board (the results and errors
# of other tasks are hidden from the agent role there); writes return rows
# of tasks.
# Needs lib/common.sh and lib/db.sh.

readonly TASK_CATEGORIES="bug feat test refactor doc"
readonly TASK_STATUSES="open active done failed deleted"
# Set by --json only (never read from the environment: it goes into arithmetic).
TASK_JSON=0

# What single-task commands print: the task as JSON, or one readable line
# starting with the psql variable :verb. Used as `SELECT $TASK_OUT FROM … t`.
readonly TASK_OUT="CASE WHEN :'json'::boolean THEN ralph_task_json(t)::text ELSE ralph_task_line(:'verb', t) END"

# task_sql VERB [PSQL_ARGS…] <<<SQL: db_run with the output mode and verb
# set, and the session's ralph.task_token (in psql's environment) when the
# worker left one.
task_sql() {
  local verb=$1
  shift
  task_token_load
  if [[ -n $TOKEN ]]; then
    PGOPTIONS="${PGOPTIONS:+$PGOPTIONS }-c ralph.task_token=$TOKEN" db_run -v json="$TASK_JSON" -v verb="$verb" "$@"
  else
    db_run -v json="$TASK_JSON" -v verb="$verb" "$@"
  fi
}

# Sets LEASE from RALPH_LEASE_SECONDS (default 300).
lease_seconds() {
  env_uint RALPH_LEASE_SECONDS 300 1 86400
  LEASE=$ENV_UINT
}

# Sets MAX_ATTEMPTS, RETRY_BASE and RETRY_MAX from RALPH_MAX_ATTEMPTS
# (default 3), RALPH_RETRY_BASE_SECONDS (30) and RALPH_RETRY_MAX_SECONDS
# (900): how often a task is tried, and the back-off between tries.
retry_policy() {
  env_uint RALPH_MAX_ATTEMPTS 3 1 1000
  MAX_ATTEMPTS=$ENV_UINT
  env_uint RALPH_RETRY_BASE_SECONDS 30 0 86400
  RETRY_BASE=$ENV_UINT
  env_uint RALPH_RETRY_MAX_SECONDS 900 "$RETRY_BASE" 86400
  RETRY_MAX=$ENV_UINT
}

# Sets AGENT from --agent's value, else RALPH_AGENT_ID.
agent_from() {
  AGENT=${1:-${RALPH_AGENT_ID:-}}
  [[ -n $AGENT ]] || usage_error "no agent: pass --agent ID or set RALPH_AGENT_ID (\`task agent register\` makes one)"
}

# The token of the attempt a worker claimed last: `task claim` leaves it in
# the worker's state directory (RALPH_STATE_DIR, which the worker shares
# with its agent only), and the agent's `task` commands send it (the
# setting ralph.task_token): it is how the store knows which task the agent
# works (db/schema.sql, "The agent acts for one task").
task_token_file() { TOKEN_FILE=${RALPH_STATE_DIR:+$RALPH_STATE_DIR/task-token}; }

# task_token_save TOKEN: for the agent about to work the claimed task.
task_token_save() {
  task_token_file
  [[ -n $TOKEN_FILE && -d ${RALPH_STATE_DIR:-} ]] || return 0
  (umask 077 && printf '%s\n' "$1" >"$TOKEN_FILE.tmp" && mv -f "$TOKEN_FILE.tmp" "$TOKEN_FILE") \
    || log "could not leave the task token in $TOKEN_FILE: the agent can't add tasks"
}

# Sets TOKEN to the saved token (a UUID only: a file's content is matched,
# never evaluated), or empty. The agent, which can't read the worker's state
# directory, gets it as RALPH_TASK_TOKEN.
task_token_load() {
  TOKEN=""
  task_token_file
  local token=${RALPH_TASK_TOKEN:-}
  if [[ -n $TOKEN_FILE && -r $TOKEN_FILE ]]; then
    IFS= read -r token <"$TOKEN_FILE" || true
  fi
  [[ ! $token =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] || TOKEN=$token
}
TOKEN="" TOKEN_FILE=""

validate_category() {
  [[ " $TASK_CATEGORIES " == *" $1 "* ]] || usage_error "invalid category '$1': use one of ${TASK_CATEGORIES// /, }"
}

validate_priority() {
  [[ $1 =~ ^[0-3]$ ]] || usage_error "invalid priority '$1': use 0 (most urgent) to 3 (default 2)"
}

validate_task_id() {
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._/-]*$ ]] \
    || usage_error "invalid task id '$1': use letters, digits and . _ / - (for example task-cli/03)"
}

# json_array VALUE…: the values as a JSON array of strings (for psql -v).
json_array() {
  if (($#)); then
    jq -nc '$ARGS.positional' --args "$@"
  else
    printf '[]\n'
  fi
}

# print_table: rows of tab-separated fields on stdin, aligned in columns
# under a header (bash only: no column(1) in minimal images).
print_table() {
  local -a header=(ID PRI CATEGORY STATUS ASSIGNEE ATTEMPTS NOT_BEFORE LAST_ERROR DESCRIPTION) widths=() rows=() fields
  local line i
  for i in "${!header[@]}"; do widths[i]=${#header[i]}; done
  while IFS= read -r line; do
    [[ -n $line ]] || continue
    rows+=("$line")
    IFS=$'\t' read -r -a fields <<<"$line"
    for i in "${!fields[@]}"; do
      ((${#fields[i]} <= ${widths[i]:-0})) || widths[i]=${#fields[i]}
    done
  done
  print_table_row "${header[*]}" " "
  for line in "${rows[@]}"; do print_table_row "$line" $'\t'; done
}

print_table_row() { # print_table_row LINE SEPARATOR (uses widths)
  local -a fields
  local i out=""
  IFS=$2 read -r -a fields <<<"$1"
  for i in "${!fields[@]}"; do
    if ((i == ${#fields[@]} - 1)); then
      out+=${fields[i]}
    else
      printf -v out '%s%-*s  ' "$out" "${widths[i]}" "${fields[i]}"
    fi
  done
  printf '%s\n' "$out"
}

# The rows list and peek print: a JSON array, or tab-separated fields.
readonly TASK_ROWS_JSON="coalesce(json_agg(ralph_task_json(t) ORDER BY t.priority, t.created_at, t.id), '[]')"
readonly TASK_ROW_TSV="concat_ws(E'\t', t.id, t.priority, t.category, t.status, coalesce(t.assignee, '-'),
  t.attempts || '/' || coalesce(t.max_attempts::text, :'max_attempts'),
  CASE WHEN t.status = 'open' AND t.not_before > clock_timestamp() THEN ralph_time(t.not_before) ELSE '-' END,
  coalesce(left(regexp_replace(t.last_error, '\s+', ' ', 'g'), 40), '-'),
  left(regexp_replace(t.description, '\s+', ' ', 'g'), 60))"

# print_rows: list/peek output on stdin, as it is (JSON) or as a table.
print_rows() {
  if ((TASK_JSON)); then
    cat
  else
    print_table
  fi
}

cmd_add() {
  local id="" description="" category=feat priority=2 spec_ref="" ref="" steps=() blockers=() max_attempts=""
  while (($#)); do
    case $1 in
      --id) require_value "$1" "${2:-}"; id=$2; shift 2 ;;
      --description | -d) require_value "$1" "${2:-}"; description=$2; shift 2 ;;
      --category | -c) require_value "$1" "${2:-}"; category=$2; shift 2 ;;
      --priority | -p) require_value "$1" "${2:-}"; priority=$2; shift 2 ;;
      --spec-ref) require_value "$1" "${2:-}"; spec_ref=$2; shift 2 ;;
      --ref) require_value "$1" "${2:-}"; ref=$2; shift 2 ;;
      --step) require_value "$1" "${2:-}"; steps+=("$2"); shift 2 ;;
      --blocked-by) require_value "$1" "${2:-}"; blockers+=("$2"); shift 2 ;;
      --max-attempts) require_value "$1" "${2:-}"; max_attempts=$2; shift 2 ;;
      -*) usage_error "add: unknown option $1 (see task --help)" ;;
      *)
        if [[ -z $id ]]; then
          id=$1
        elif [[ -z $description ]]; then
          description=$1
        else
          usage_error "add: unexpected argument '$1': quote the description"
        fi
        shift
        ;;
    esac
  done
  [[ -n $id ]] || usage_error "add: a task id is required: task add ID DESCRIPTION"
  validate_task_id "$id"
  [[ -n ${description//[[:space:]]/} ]] || usage_error "add: a description is required: task add $id \"what to do\""
  validate_category "$category"
  validate_priority "$priority"
  if [[ -n $max_attempts ]]; then
    uint_between "$max_attempts" 1 1000 \
      || usage_error "add: --max-attempts '$max_attempts' is not a number of attempts between 1 and 1000"
    max_attempts=$UINT
  fi
  local b
  for b in "${blockers[@]}"; do validate_task_id "$b"; done
  local steps_json blockers_json
  steps_json=$(json_array "${steps[@]}")
  blockers_json=$(json_array "${blockers[@]}")

  local out
  task_sql added -v id="$id" -v description="$description" -v category="$category" -v priority="$priority" \
    -v spec_ref="$spec_ref" -v ref="$ref" -v steps="$steps_json" -v blockers="$blockers_json" \
    -v max_attempts="$max_attempts" <<SQL || exit "$EXIT_ERROR"
BEGIN;
SELECT string_agg(b, ' ') AS missing FROM json_array_elements_text(:'blockers'::json) b
WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = b) \gset
\if :{?missing}
ROLLBACK;
SELECT 'missing: ' || :'missing';
\else
INSERT INTO tasks (id, description, category, priority, spec_ref, ref, steps, max_attempts)
VALUES (:'id', :'description', :'category', :'priority'::smallint, nullif(:'spec_ref', ''), nullif(:'ref', ''),
        ARRAY(SELECT json_array_elements_text(:'steps'::json)), nullif(:'max_attempts', '')::int);
INSERT INTO task_dependencies (task_id, blocked_by)
SELECT DISTINCT :'id', b FROM json_array_elements_text(:'blockers'::json) b;
SELECT $TASK_OUT FROM task_board t WHERE t.id = :'id';
COMMIT;
\endif
SQL
  out=$DB_OUT
  if [[ $out == "missing: "* ]]; then
    out=${out#missing: }
    die "$EXIT_NOT_FOUND" "add: unknown blocker '${out%% *}': add the blocking task first (\`task list\` shows the ids)"
  fi
  printf '%s\n' "$out"
}

cmd_list() {
  local status="" all=false
  while (($#)); do
    case $1 in
      --status) require_value "$1" "${2:-}"; status=$2; shift 2 ;;
      --all) all=true; shift ;;
      *) usage_error "list: unknown argument '$1' (task list [--status S] [--all])" ;;
    esac
  done
  if [[ -n $status && " $TASK_STATUSES " != *" $status "* ]]; then
    usage_error "list: invalid status '$status': use one of ${TASK_STATUSES// /, }"
  fi
  # Deleted tasks show only with --all or --status deleted.
  [[ $status != deleted ]] || all=true
  local out
  retry_policy
  task_sql list -v status="$status" -v all="$all" -v max_attempts="$MAX_ATTEMPTS" <<SQL || exit "$EXIT_ERROR"
\if :json
SELECT $TASK_ROWS_JSON FROM task_board t
WHERE (:'all'::boolean OR t.deleted_at IS NULL) AND (:'status' = '' OR t.status = :'status');
\else
SELECT $TASK_ROW_TSV FROM task_board t
WHERE (:'all'::boolean OR t.deleted_at IS NULL) AND (:'status' = '' OR t.status = :'status')
ORDER BY t.priority, t.created_at, t.id;
\endif
SQL
  out=$DB_OUT
  print_rows <<<"$out"
}

cmd_show() {
  (($# == 1)) || usage_error "show: task show ID"
  local out
  task_sql show -v id="$1" <<'SQL' || exit "$EXIT_ERROR"
\if :json
SELECT ralph_task_json(t) FROM task_board t WHERE t.id = :'id';
\else
SELECT j.key || ': ' || coalesce(j.value, '-') FROM task_board t, json_each_text(ralph_task_json(t)) j WHERE t.id = :'id';
\endif
SQL
  out=$DB_OUT
  [[ -n $out ]] || die "$EXIT_NOT_FOUND" "unknown task '$1': \`task list --all\` shows the task ids"
  printf '%s\n' "$out"
}

# The tasks an agent may take next: claimable ones first (most urgent, then
# oldest), then the active ones (to see what others hold).
cmd_peek() {
  local n=5
  while (($#)); do
    case $1 in
      -n) require_value "$1" "${2:-}"; n=$2; shift 2 ;;
      *) usage_error "peek: unknown argument '$1' (task peek -n N)" ;;
    esac
  done
  if ! is_uint "$n" || ((n == 0)); then
    usage_error "peek: -n needs a positive number, not '$n'"
  fi
  local out
  retry_policy
  task_sql peek -v n="$n" -v max_attempts="$MAX_ATTEMPTS" <<SQL || exit "$EXIT_ERROR"
WITH peek AS (
  SELECT t.* FROM task_board t
  WHERE t.deleted_at IS NULL AND t.status IN ('open', 'active') AND ralph_unblocked(t.id)
  ORDER BY (t.status = 'active' AND t.lease_expires_at >= clock_timestamp()),
    (t.not_before > clock_timestamp()), t.priority, t.created_at, t.id
  LIMIT :'n'::int)
\if :json
SELECT coalesce(json_agg(ralph_task_json(t::task_board)), '[]') FROM peek t;
\else
SELECT $TASK_ROW_TSV FROM peek t;
\endif
SQL
  out=$DB_OUT
  print_rows <<<"$out"
}

cmd_claim() {
  local id="" agent=""
  while (($#)); do
    case $1 in
      --agent) require_value "$1" "${2:-}"; agent=$2; shift 2 ;;
      -*) usage_error "claim: unknown option $1 (task claim [ID] --agent AGENT)" ;;
      *) [[ -z $id ]] || usage_error "claim: one task id at most"; id=$1; shift ;;
    esac
  done
  agent_from "$agent"
  lease_seconds
  retry_policy
  local out
  task_sql claimed -v agent="$AGENT" -v lease="$LEASE" -v id="$id" \
    -v max="$MAX_ATTEMPTS" -v base="$RETRY_BASE" -v maxb="$RETRY_MAX" <<SQL || exit "$EXIT_ERROR"
BEGIN;
SELECT t.lease_token || E'\n' || $TASK_OUT FROM ralph_claim(:'agent', :'lease'::int, nullif(:'id', ''), :'max'::int, :'base'::int, :'maxb'::int) t;
COMMIT;
SQL
  out=$DB_OUT
  if [[ -n $out ]]; then
    # The first line is the attempt's token: for the agent, never printed.
    task_token_save "${out%%$'\n'*}"
    out=${out#*$'\n'}
  else
    if [[ -n $id ]]; then
      db_require_task "$id"
      die "$EXIT_NOTHING" "task $id is not claimable now (it is held, done, failed, deleted, blocked or backing off): see \`task show $id\`"
    fi
    die "$EXIT_NOTHING" "nothing to claim: no open task past its back-off whose blockers are all done"
  fi
  printf '%s\n' "$out"
}

# The task AGENT holds (active, its lease running), printed as claim prints
# it, with its token saved the same way: how a worker takes up a claim whose
# reply it never got (the claim committed, the connection broke). Exit 3
# when it holds none.
cmd_held() {
  local agent=""
  while (($#)); do
    case $1 in
      --agent) require_value "$1" "${2:-}"; agent=$2; shift 2 ;;
      *) usage_error "held: unexpected argument '$1' (task held [--agent AGENT])" ;;
    esac
  done
  agent_from "$agent"
  local out
  task_sql claimed -v agent="$AGENT" <<SQL || exit "$EXIT_ERROR"
SELECT t.lease_token || E'\n' || $TASK_OUT FROM tasks t
WHERE t.status = 'active' AND t.assignee = :'agent' AND t.deleted_at IS NULL AND t.lease_expires_at > clock_timestamp()
ORDER BY t.updated_at DESC LIMIT 1;
SQL
  out=$DB_OUT
  [[ -n $out ]] || die "$EXIT_NOTHING" "agent $AGENT holds no task"
  task_token_save "${out%%$'\n'*}"
  printf '%s\n' "${out#*$'\n'}"
}

# When a write that needs the caller to hold the task changed nothing: one
# line saying why (exit 4 for an unknown task, 5: not held by this agent).
explain_not_held() { # explain_not_held ID AGENT ACTION
  local status assignee expired
  db_require_task "$1"
  IFS='|' read -r status assignee _ expired <<<"$TASK_STATE"
  # A lease that ran out is gone, even before another worker takes the task:
  # nothing is renewed or finished on it.
  [[ $status != active || $assignee != "$2" || $expired != true ]] \
    || die "$EXIT_NOT_HELD" "cannot $3 task $1: the lease of agent $2 on it ran out (RALPH_LEASE_SECONDS)"
  die "$EXIT_NOT_HELD" "cannot $3 task $1: it is $status${assignee:+ and held by $assignee}, not held by agent $2"
}

# parse_held_args USAGE ARGS…: sets ID, AGENT_ARG, RESULT and REASON for
# renew/release/done/fail.
parse_held_args() {
  local usage=$1
  shift
  ID="" AGENT_ARG="" RESULT="" REASON=""
  while (($#)); do
    case $1 in
      --agent) require_value "$1" "${2:-}"; AGENT_ARG=$2; shift 2 ;;
      --result) require_value "$1" "${2:-}"; RESULT=$2; shift 2 ;;
      --reason) require_value "$1" "${2:-}"; REASON=$2; shift 2 ;;
      -*) usage_error "unknown option $1: $usage" ;;
      *) [[ -z $ID ]] || usage_error "unexpected argument '$1': $usage"; ID=$1; shift ;;
    esac
  done
  [[ -n $ID ]] || usage_error "a task id is required: $usage"
}

cmd_renew() {
  parse_held_args "task renew ID [--agent AGENT]" "$@"
  [[ -z $RESULT$REASON ]] || usage_error "renew takes no --result or --reason"
  agent_from "$AGENT_ARG"
  lease_seconds
  local out
  task_sql renewed -v id="$ID" -v agent="$AGENT" -v lease="$LEASE" <<SQL || exit "$EXIT_ERROR"
BEGIN;
UPDATE tasks t SET lease_expires_at = clock_timestamp() + make_interval(secs => :'lease'::int), updated_at = clock_timestamp()
WHERE t.id = :'id' AND t.status = 'active' AND t.assignee = :'agent' AND t.deleted_at IS NULL
  AND t.lease_expires_at > clock_timestamp()
RETURNING $TASK_OUT;
-- Renewing is a sign of life too.
UPDATE agents SET last_heartbeat_at = clock_timestamp(), updated_at = clock_timestamp() WHERE id = :'agent';
COMMIT;
SQL
  out=$DB_OUT
  [[ -n $out ]] || explain_not_held "$ID" "$AGENT" renew
  printf '%s\n' "$out"
}

cmd_done() {
  parse_held_args "task done ID --result JSON [--agent AGENT]" "$@"
  [[ -z $REASON ]] || usage_error "done takes no --reason (a failed attempt: task fail ID --reason TEXT)"
  [[ -n $RESULT ]] || usage_error "done: --result JSON is required (for example '{\"commit\": \"abc123\"}')"
  jq -e 'type == "object"' >/dev/null 2>&1 <<<"$RESULT" \
    || usage_error "done: --result is not a JSON object: '${RESULT:0:60}' (for example '{\"commit\": \"abc123\"}')"
  agent_from "$AGENT_ARG"
  local out
  task_sql "done" -v id="$ID" -v agent="$AGENT" -v result="$RESULT" <<SQL || exit "$EXIT_ERROR"
BEGIN;
UPDATE tasks t SET status = 'done', result = :'result'::jsonb, lease_expires_at = NULL, updated_at = clock_timestamp()
WHERE t.id = :'id' AND t.status = 'active' AND t.assignee = :'agent' AND t.deleted_at IS NULL
  AND t.lease_expires_at > clock_timestamp()
RETURNING $TASK_OUT;
COMMIT;
SQL
  out=$DB_OUT
  [[ -n $out ]] || explain_not_held "$ID" "$AGENT" finish
  printf '%s\n' "$out"
}

# Back to open. With an agent (--agent or RALPH_AGENT_ID), only if that
# agent holds it; without one, whoever holds it (an operator's override).
cmd_release() {
  parse_held_args "task release ID [--agent AGENT]" "$@"
  [[ -z $RESULT$REASON ]] || usage_error "release takes no --result or --reason"
  local agent=${AGENT_ARG:-${RALPH_AGENT_ID:-}} out
  task_sql released -v id="$ID" -v agent="$agent" <<SQL || exit "$EXIT_ERROR"
BEGIN;
-- Handed back, not failed: the attempt doesn't count.
UPDATE tasks t SET status = 'open', assignee = NULL, lease_expires_at = NULL, updated_at = clock_timestamp(),
  attempts = greatest(t.attempts - 1, 0)
WHERE t.id = :'id' AND t.status = 'active' AND (:'agent' = '' OR t.assignee = :'agent')
RETURNING $TASK_OUT;
COMMIT;
SQL
  out=$DB_OUT
  [[ -n $out ]] || explain_not_held "$ID" "${agent:-any agent}" release
  printf '%s\n' "$out"
}

# A failed attempt of a task the agent holds: why, a back-off before the
# next claim, and `failed` once it was the last attempt allowed.
cmd_fail() {
  parse_held_args "task fail ID --reason TEXT [--agent AGENT]" "$@"
  [[ -z $RESULT ]] || usage_error "fail takes no --result"
  [[ -n ${REASON//[[:space:]]/} ]] || usage_error "fail: --reason TEXT is required: say why the attempt failed"
  agent_from "$AGENT_ARG"
  retry_policy
  local out
  task_sql failed -v id="$ID" -v agent="$AGENT" -v reason="${REASON:0:2000}" \
    -v max="$MAX_ATTEMPTS" -v base="$RETRY_BASE" -v maxb="$RETRY_MAX" <<SQL || exit "$EXIT_ERROR"
BEGIN;
SELECT $TASK_OUT FROM ralph_fail(:'id', :'agent', :'reason', :'max'::int, :'base'::int, :'maxb'::int) t;
COMMIT;
SQL
  out=$DB_OUT
  [[ -n $out ]] || explain_not_held "$ID" "$AGENT" fail
  printf '%s\n' "$out"
}

# A failed task gets its attempts back and is open again.
cmd_retry() {
  (($# == 1)) || usage_error "retry: task retry ID"
  local out
  task_sql reopened -v id="$1" <<SQL || exit "$EXIT_ERROR"
BEGIN;
UPDATE tasks t SET status = 'open', attempts = 0, not_before = NULL, updated_at = clock_timestamp()
WHERE t.id = :'id' AND t.status = 'failed' AND t.deleted_at IS NULL
RETURNING $TASK_OUT;
COMMIT;
SQL
  out=$DB_OUT
  if [[ -z $out ]]; then
    local status
    db_require_task "$1"
    IFS='|' read -r status _ <<<"$TASK_STATE"
    die "$EXIT_ERROR" "task $1 is $status, not failed: only a failed task is retried"
  fi
  printf '%s\n' "$out"
}

# Soft delete: deleted_at set, hidden from list, peek and claim. A done task
# keeps its status (done is final); it is only hidden.
cmd_delete() {
  (($# == 1)) || usage_error "delete: task delete ID"
  local out
  task_sql deleted -v id="$1" <<SQL || exit "$EXIT_ERROR"
BEGIN;
UPDATE tasks t SET deleted_at = coalesce(t.deleted_at, clock_timestamp()),
  status = CASE WHEN t.status = 'done' THEN 'done' ELSE 'deleted' END,
  assignee = CASE WHEN t.status = 'done' THEN t.assignee END,
  lease_expires_at = NULL, updated_at = clock_timestamp()
WHERE t.id = :'id'
RETURNING $TASK_OUT;
COMMIT;
SQL
  out=$DB_OUT
  [[ -n $out ]] || die "$EXIT_NOT_FOUND" "unknown task '$1': \`task list --all\` shows the task ids"
  printf '%s\n' "$out"
}

# parse_pair_args NAME ARGS…: sets ID and BY for block/unblock.
parse_pair_args() {
  local name=$1
  shift
  ID="" BY=""
  while (($#)); do
    case $1 in
      --by) require_value "$1" "${2:-}"; BY=$2; shift 2 ;;
      -*) usage_error "$name: unknown option $1 (task $name ID --by OTHER)" ;;
      *) [[ -z $ID ]] || usage_error "$name: unexpected argument '$1' (task $name ID --by OTHER)"; ID=$1; shift ;;
    esac
  done
  [[ -n $ID && -n $BY ]] || usage_error "$name: task $name ID --by OTHER"
}

# ID waits for OTHER. The schema's trigger refuses a dependency that would
# close a cycle (serialized, so concurrent blocks can't make one either).
cmd_block() {
  parse_pair_args block "$@"
  [[ $ID != "$BY" ]] || usage_error "block: a task cannot block itself"
  local out
  task_sql blocked -v id="$ID" -v by="$BY" <<'SQL' || exit "$EXIT_ERROR"
BEGIN;
SELECT string_agg(x.id, ' ') AS missing FROM (VALUES (:'id'), (:'by')) x(id)
WHERE NOT EXISTS (SELECT 1 FROM tasks t WHERE t.id = x.id) \gset
\if :{?missing}
ROLLBACK;
SELECT :'missing';
\else
INSERT INTO task_dependencies (task_id, blocked_by) VALUES (:'id', :'by') ON CONFLICT DO NOTHING;
COMMIT;
\endif
SQL
  out=$DB_OUT
  [[ -z $out ]] || die "$EXIT_NOT_FOUND" "unknown task '${out%% *}': \`task list --all\` shows the task ids"
  print_message "blocked $ID by $BY" '{task: $id, blocked_by: $by}' --arg id "$ID" --arg by "$BY"
}

cmd_unblock() {
  parse_pair_args unblock "$@"
  local gone
  task_sql unblocked -v id="$ID" -v by="$BY" <<'SQL' || exit "$EXIT_ERROR"
BEGIN;
DELETE FROM task_dependencies WHERE task_id = :'id' AND blocked_by = :'by' RETURNING task_id;
COMMIT;
SQL
  gone=$DB_OUT
  [[ -n $gone ]] || die "$EXIT_NOT_FOUND" "task $ID is not blocked by $BY: \`task show $ID\` lists its blockers"
  print_message "unblocked $ID from $BY" '{task: $id, unblocked_from: $by}' --arg id "$ID" --arg by "$BY"
}

# print_message TEXT JQ_FILTER [JQ_ARGS…]: TEXT, or the filter's JSON with --json.
print_message() {
  local text=$1 filter=$2
  shift 2
  if ((TASK_JSON)); then
    jq -nc "$@" "$filter"
  else
    printf '%s\n' "$text"
  fi
}

# The schema, applied when the store has none or an older one (the owner's
# right: a least-privileged role can't, and is told so); with
# RALPH_AGENT_DB_URL naming a login role and RALPH_AGENT_DB_PASSWORD set,
# that role is made (or updated) a member of ralph_agent.
cmd_init() {
  (($# == 0)) || usage_error "init takes no arguments"
  local version=0
  [[ -n $DB_PSQL ]] || db_psql_path
  # Not db_run: on a store without the schema it would apply it itself, and
  # what the application warns about would go unsaid.
  if db_psql "SELECT ralph_schema_version();"; then
    version=$DB_OUT
  fi
  if [[ $version != "$TASK_SCHEMA_VERSION" ]]; then
    db_apply_schema || die "$EXIT_ERROR" "the schema could not be applied: apply it once as the database's owner (\`task init\` with the owner's RALPH_DB_URL)"
  fi
  if [[ -n ${RALPH_AGENT_DB_URL:-} && -n ${RALPH_AGENT_DB_PASSWORD:-} ]]; then
    agent_login_role
  fi
  print_message "schema applied" '{schema: "applied"}'
}
readonly TASK_SCHEMA_VERSION=3

# The login role of RALPH_AGENT_DB_URL, in ralph_agent, with
# RALPH_AGENT_DB_PASSWORD and a connection limit of
# RALPH_AGENT_DB_CONNECTIONS (default 10: why, in db/schema.sql).
agent_login_role() {
  env_uint RALPH_AGENT_DB_CONNECTIONS 10 1 1000
  local limit=$ENV_UINT
  local user=${RALPH_AGENT_DB_URL#*://}
  user=${user%%@*}
  user=${user%%:*}
  [[ $user =~ ^[a-z_][a-z0-9_]*$ && $user != "${RALPH_AGENT_DB_URL#*://}" ]] \
    || usage_error "RALPH_AGENT_DB_URL names no user (or one with other than a-z, 0-9, _): write postgresql://USER@HOST:5432/DATABASE"
  # The password reaches psql through its environment (\getenv, psql >= 15),
  # never its command line.
  export RALPH_AGENT_DB_PASSWORD
  db_run -v user="$user" -v limit="$limit" <<'SQL' || die "$EXIT_ERROR" "could not make the agent's role $user: the owner's RALPH_DB_URL needs CREATEROLE"
\getenv password RALPH_AGENT_DB_PASSWORD
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'user') AS missing \gset
\if :missing
CREATE ROLE :"user" LOGIN PASSWORD :'password' CONNECTION LIMIT :limit IN ROLE ralph_agent;
\else
ALTER ROLE :"user" LOGIN PASSWORD :'password' CONNECTION LIMIT :limit;
GRANT ralph_agent TO :"user";
\endif
SQL
}

cmd_agent() {
  local action=${1:-}
  shift || true
  case $action in
    register) agent_register "$@" ;;
    heartbeat | stop) agent_update "$action" "$@" ;;
    *) usage_error "agent: task agent register [--id ID] | heartbeat [ID] | stop [ID]" ;;
  esac
}

# Registers (or re-registers) an agent and prints its id: --id, else
# RALPH_AGENT_ID, else HOSTNAME-PID-RANDOM.
agent_register() {
  local id=${RALPH_AGENT_ID:-}
  while (($#)); do
    case $1 in
      --id) require_value "$1" "${2:-}"; id=$2; shift 2 ;;
      *) usage_error "agent register: unknown argument '$1' (task agent register [--id ID])" ;;
    esac
  done
  local pid=${RALPH_AGENT_PID:-$PPID} host=${HOSTNAME:-unknown}
  if [[ -z $id ]]; then
    printf -v id '%s-%s-%04x%04x' "${host%%.*}" "$pid" "$RANDOM" "$RANDOM"
  fi
  is_uint "$pid" || usage_error "RALPH_AGENT_PID='$pid' is not a process id"
  task_sql registered -v id="$id" -v pid="$pid" -v host="$host" <<'SQL' >/dev/null || exit "$EXIT_ERROR"
BEGIN;
INSERT INTO agents (id, pid, hostname) VALUES (:'id', :'pid'::int, :'host')
ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, hostname = excluded.hostname, status = 'active',
  started_at = clock_timestamp(), last_heartbeat_at = clock_timestamp(), updated_at = clock_timestamp();
COMMIT;
SQL
  print_message "$id" '{agent: $id}' --arg id "$id"
}

# heartbeat: the agent is alive. stop: the agent is stopped, and the tasks
# it held go back to open.
agent_update() {
  local action=$1 id=${2:-${RALPH_AGENT_ID:-}}
  (($# <= 2)) || usage_error "agent $action: task agent $action [ID]"
  [[ -n $id ]] || usage_error "agent $action: task agent $action ID (or set RALPH_AGENT_ID)"
  local found
  task_sql "$action" -v id="$id" -v action="$action" <<'SQL' || exit "$EXIT_ERROR"
BEGIN;
UPDATE tasks SET status = 'open', assignee = NULL, lease_expires_at = NULL, updated_at = clock_timestamp()
WHERE :'action' = 'stop' AND assignee = :'id' AND status = 'active';
UPDATE agents SET last_heartbeat_at = clock_timestamp(), updated_at = clock_timestamp(),
  status = CASE WHEN :'action' = 'stop' THEN 'stopped' ELSE 'active' END
WHERE id = :'id' RETURNING id;
COMMIT;
SQL
  found=$DB_OUT
  [[ -n $found ]] || die "$EXIT_NOT_FOUND" "unknown agent '$id': \`task agent register\` makes one"
  print_message "agent $id: $action" '{agent: $id, action: $a}' --arg id "$id" --arg a "$action"
}
