#!/usr/bin/env bash
# The `task` commands. Each write is one explicit transaction; each command
# prints readable text, or JSON with --json (TASK_JSON=1).
# Needs lib/common.sh and lib/db.sh.

readonly TASK_CATEGORIES="bug feat test refactor doc"
TASK_JSON=${TASK_JSON:-0}

# The columns every command shows, as one JSON object per row.
readonly TASK_ROW_SQL="json_build_object('id', t.id, 'description', t.description, 'category', t.category,
  'priority', t.priority, 'status', t.status, 'spec_ref', t.spec_ref, 'ref', t.ref, 'steps', t.steps,
  'result', t.result, 'assignee', t.assignee, 'lease_expires_at', t.lease_expires_at,
  'retry_count', t.retry_count, 'created_at', t.created_at, 'updated_at', t.updated_at,
  'deleted_at', t.deleted_at,
  'blocked_by', coalesce((SELECT json_agg(d.blocked_by ORDER BY d.blocked_by) FROM task_dependencies d
                          WHERE d.task_id = t.id), '[]'::json))"

lease_seconds() {
  local s=${RALPH_LEASE_SECONDS:-300}
  if ! is_uint "$s" || ((s == 0)); then
    usage_error "RALPH_LEASE_SECONDS='$s' is not a positive number of seconds"
  fi
  printf '%s\n' "$s"
}

agent_from() { # agent_from VALUE: --agent, else RALPH_AGENT_ID
  local agent=${1:-${RALPH_AGENT_ID:-}}
  [[ -n $agent ]] || usage_error "no agent: pass --agent ID or set RALPH_AGENT_ID (\`task agent register\` makes one)"
  printf '%s\n' "$agent"
}

validate_category() {
  [[ " $TASK_CATEGORIES " == *" $1 "* ]] || usage_error "invalid category '$1': use one of ${TASK_CATEGORIES// /, }"
}

validate_priority() {
  [[ $1 =~ ^[0-3]$ ]] || usage_error "invalid priority '$1': use 0 (most urgent) to 3"
}

validate_task_id() {
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._/-]*$ ]] \
    || usage_error "invalid task id '$1': use letters, digits and . _ / - (for example task-cli/03)"
}

# print_rows: JSON rows on stdin, as JSON (an array) or a readable table.
print_rows() {
  if ((TASK_JSON)); then
    jq -s '.'
  else
    jq -rs '(["ID", "PRI", "CATEGORY", "STATUS", "ASSIGNEE", "RETRIES", "DESCRIPTION"] | @tsv),
            (.[] | [.id, .priority, .category, .status, (.assignee // "-"), .retry_count,
                    (.description | gsub("\\s+"; " ") | .[0:60])] | @tsv)' | column -t -s $'\t'
  fi
}

# print_result TEXT JQ_FILTER [JQ_ARGS…]: TEXT, or the filter's JSON with --json.
print_result() {
  local text=$1 filter=$2
  shift 2
  if ((TASK_JSON)); then
    jq -n "$@" "$filter"
  else
    printf '%s\n' "$text"
  fi
}

# print_row VERB: one JSON row on stdin, as JSON or "VERB ID (details)".
print_row() {
  local verb=$1
  if ((TASK_JSON)); then
    jq '.'
  else
    jq -r --arg verb "$verb" '"\($verb) \(.id): \(.description | gsub("\\s+"; " ") | .[0:70]) [p\(.priority) \(.category), \(.status)\(if .assignee then ", " + .assignee else "" end)\(if .lease_expires_at and .status == "active" then ", lease until " + .lease_expires_at else "" end)]"'
  fi
}

cmd_add() {
  local id="" description="" category=feat priority=2 spec_ref="" ref="" steps=() blockers=()
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
      -*) usage_error "add: unknown option $1 (see task --help)" ;;
      *)
        if [[ -z $id ]]; then id=$1; elif [[ -z $description ]]; then description=$1; else usage_error "add: unexpected argument '$1'"; fi
        shift
        ;;
    esac
  done
  [[ -n $id ]] || usage_error "add: a task id is required: task add ID DESCRIPTION"
  validate_task_id "$id"
  [[ -n ${description//[[:space:]]/} ]] || usage_error "add: a description is required: task add $id \"what to do\""
  validate_category "$category"
  validate_priority "$priority"
  local b
  for b in "${blockers[@]}"; do validate_task_id "$b"; done
  local steps_json blockers_json
  steps_json=$(printf '%s\0' "${steps[@]}" | jq -Rsc 'split("\u0000") | map(select(. != ""))')
  blockers_json=$(printf '%s\0' "${blockers[@]}" | jq -Rsc 'split("\u0000") | map(select(. != ""))')

  db_run -v id="$id" -v description="$description" -v category="$category" -v priority="$priority" \
    -v spec_ref="$spec_ref" -v ref="$ref" -v steps="$steps_json" -v blockers="$blockers_json" <<SQL | print_row added
BEGIN;
INSERT INTO tasks (id, description, category, priority, spec_ref, ref, steps)
VALUES (:'id', :'description', :'category', :'priority'::smallint, nullif(:'spec_ref', ''), nullif(:'ref', ''),
        ARRAY(SELECT json_array_elements_text(:'steps'::json)));
INSERT INTO task_dependencies (task_id, blocked_by)
SELECT :'id', b FROM json_array_elements_text(:'blockers'::json) b;
SELECT $TASK_ROW_SQL FROM tasks t WHERE t.id = :'id';
COMMIT;
SQL
}

# psql doesn't interpolate :'var' inside a dollar-quoted DO block, so values
# a DO block needs go through a temporary table (ralph_vars) first.
sql_var() { printf "(SELECT v FROM ralph_vars WHERE k = '%s')" "$1"; }

cmd_list() {
  local status="" all=false
  while (($#)); do
    case $1 in
      --status) require_value "$1" "${2:-}"; status=$2; shift 2 ;;
      --all) all=true; shift ;;
      *) usage_error "list: unknown argument $1 (see task --help)" ;;
    esac
  done
  if [[ -n $status && ! " open active done deleted " == *" $status "* ]]; then
    usage_error "list: invalid status '$status': use open, active, done or deleted"
  fi
  db_run -v status="$status" -v all="$all" <<SQL | print_rows
SELECT $TASK_ROW_SQL FROM tasks t
WHERE (:'all'::boolean OR t.deleted_at IS NULL)
  AND (:'status' = '' OR t.status = :'status')
ORDER BY t.priority, t.created_at, t.id;
SQL
}

cmd_show() {
  (($# == 1)) || usage_error "show: task show ID"
  db_require_task "$1" >/dev/null
  local row
  row=$(db_run -v id="$1" <<SQL
SELECT $TASK_ROW_SQL FROM tasks t WHERE t.id = :'id';
SQL
  ) || exit "$EXIT_ERROR"
  if ((TASK_JSON)); then
    jq '.' <<<"$row"
  else
    jq -r 'to_entries[] | "\(.key): \(if (.value | type) == "array" or (.value | type) == "object" then (.value | tojson) else (.value // "-" | tostring) end)"' <<<"$row"
  fi
}

cmd_peek() {
  local n=5
  while (($#)); do
    case $1 in
      -n) require_value "$1" "${2:-}"; n=$2; shift 2 ;;
      *) usage_error "peek: unknown argument $1 (task peek -n N)" ;;
    esac
  done
  if ! is_uint "$n" || ((n == 0)); then
    usage_error "peek: -n needs a positive number"
  fi
  db_run -v n="$n" <<SQL | print_rows
SELECT $TASK_ROW_SQL FROM tasks t
WHERE t.deleted_at IS NULL AND t.status IN ('open', 'active')
  AND NOT EXISTS (SELECT 1 FROM task_dependencies d JOIN tasks b ON b.id = d.blocked_by
                  WHERE d.task_id = t.id AND b.status NOT IN ('done', 'deleted') AND b.deleted_at IS NULL)
ORDER BY (t.status = 'active'), t.priority, t.created_at, t.id
LIMIT :'n'::int;
SQL
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
  agent=$(agent_from "$agent")
  local lease
  lease=$(lease_seconds)
  [[ -z $id ]] || db_require_task "$id" >/dev/null
  local row
  row=$(db_run -v agent="$agent" -v lease="$lease" -v id="$id" <<SQL
BEGIN;
SELECT $TASK_ROW_SQL FROM ralph_claim(:'agent', :'lease'::int, nullif(:'id', '')) t;
COMMIT;
SQL
  ) || exit "$EXIT_ERROR"
  if [[ -z $row ]]; then
    if [[ -n $id ]]; then
      die "$EXIT_NOTHING" "task $id is not claimable now (it is held, done, deleted or blocked): \`task show $id\`"
    fi
    die "$EXIT_NOTHING" "nothing to claim: no open task whose blockers are done"
  fi
  print_row claimed <<<"$row"
}

# Writes that need the caller to hold the task: one UPDATE, and when it
# changes nothing, one line saying why.
explain_not_held() { # explain_not_held ID AGENT ACTION
  local state status assignee
  state=$(db_require_task "$1") || exit "$EXIT_NOT_FOUND"
  IFS='|' read -r status assignee _ <<<"$state"
  die "$EXIT_ERROR" "cannot $3 task $1: it is $status${assignee:+ and held by $assignee}, not held by agent $2"
}

cmd_renew() {
  local id="" agent=""
  while (($#)); do
    case $1 in
      --agent) require_value "$1" "${2:-}"; agent=$2; shift 2 ;;
      *) id=$1; shift ;;
    esac
  done
  [[ -n $id ]] || usage_error "renew: task renew ID --agent AGENT"
  agent=$(agent_from "$agent")
  local lease row
  lease=$(lease_seconds)
  row=$(db_run -v id="$id" -v agent="$agent" -v lease="$lease" <<SQL
BEGIN;
UPDATE tasks t SET lease_expires_at = clock_timestamp() + make_interval(secs => :'lease'::int)
WHERE t.id = :'id' AND t.status = 'active' AND t.assignee = :'agent' AND t.deleted_at IS NULL
RETURNING $TASK_ROW_SQL;
COMMIT;
SQL
  ) || exit "$EXIT_ERROR"
  [[ -n $row ]] || explain_not_held "$id" "$agent" renew
  print_row renewed <<<"$row"
}

cmd_done() {
  local id="" agent="" result=""
  while (($#)); do
    case $1 in
      --agent) require_value "$1" "${2:-}"; agent=$2; shift 2 ;;
      --result) require_value "$1" "${2:-}"; result=$2; shift 2 ;;
      -*) usage_error "done: unknown option $1 (task done ID --result JSON)" ;;
      *) id=$1; shift ;;
    esac
  done
  [[ -n $id ]] || usage_error "done: task done ID --result JSON"
  [[ -n $result ]] || usage_error "done: --result JSON is required (for example '{\"commit\": \"abc123\"}')"
  jq -e 'type == "object"' >/dev/null 2>&1 <<<"$result" \
    || usage_error "done: --result is not a JSON object: $(head -c 80 <<<"$result")"
  agent=$(agent_from "$agent")
  local row
  row=$(db_run -v id="$id" -v agent="$agent" -v result="$result" <<SQL
BEGIN;
UPDATE tasks t SET status = 'done', result = :'result'::jsonb, lease_expires_at = NULL
WHERE t.id = :'id' AND t.status = 'active' AND t.assignee = :'agent' AND t.deleted_at IS NULL
RETURNING $TASK_ROW_SQL;
COMMIT;
SQL
  ) || exit "$EXIT_ERROR"
  [[ -n $row ]] || explain_not_held "$id" "$agent" finish
  print_row "done" <<<"$row"
}

cmd_release() {
  local id="" agent=""
  while (($#)); do
    case $1 in
      --agent) require_value "$1" "${2:-}"; agent=$2; shift 2 ;;
      *) id=$1; shift ;;
    esac
  done
  [[ -n $id ]] || usage_error "release: task release ID [--agent AGENT]"
  agent=${agent:-${RALPH_AGENT_ID:-}}
  local row
  row=$(db_run -v id="$id" -v agent="$agent" <<SQL
BEGIN;
UPDATE tasks t SET status = 'open', assignee = NULL, lease_expires_at = NULL
WHERE t.id = :'id' AND t.status = 'active' AND (:'agent' = '' OR t.assignee = :'agent')
RETURNING $TASK_ROW_SQL;
COMMIT;
SQL
  ) || exit "$EXIT_ERROR"
  [[ -n $row ]] || explain_not_held "$id" "${agent:-any agent}" release
  print_row released <<<"$row"
}

cmd_delete() {
  (($# == 1)) || usage_error "delete: task delete ID"
  local row
  db_require_task "$1" >/dev/null
  # A done task keeps its status (done is final); it is only hidden.
  row=$(db_run -v id="$1" <<SQL
BEGIN;
UPDATE tasks t SET deleted_at = coalesce(t.deleted_at, clock_timestamp()),
  status = CASE WHEN t.status = 'done' THEN 'done' ELSE 'deleted' END,
  assignee = CASE WHEN t.status = 'done' THEN t.assignee END, lease_expires_at = NULL
WHERE t.id = :'id'
RETURNING $TASK_ROW_SQL;
COMMIT;
SQL
  ) || exit "$EXIT_ERROR"
  print_row deleted <<<"$row"
}

cmd_block() {
  local id="" by=""
  while (($#)); do
    case $1 in
      --by) require_value "$1" "${2:-}"; by=$2; shift 2 ;;
      *) id=$1; shift ;;
    esac
  done
  [[ -n $id && -n $by ]] || usage_error "block: task block ID --by OTHER"
  [[ $id != "$by" ]] || usage_error "block: a task cannot block itself"
  db_require_task "$id" >/dev/null
  db_require_task "$by" >/dev/null
  # Serialized with an advisory lock, so two concurrent blocks can't make a
  # cycle that neither saw.
  db_run -v id="$id" -v by="$by" <<SQL >/dev/null || exit "$EXIT_ERROR"
BEGIN;
SELECT pg_advisory_xact_lock(7426002);
CREATE TEMP TABLE ralph_vars (k text PRIMARY KEY, v text) ON COMMIT DROP;
INSERT INTO ralph_vars VALUES ('id', :'id'), ('by', :'by');
DO \$\$ BEGIN
  IF EXISTS (
    WITH RECURSIVE upstream(id) AS (
      SELECT $(sql_var by)
      UNION
      SELECT d.blocked_by FROM task_dependencies d JOIN upstream u ON d.task_id = u.id)
    SELECT 1 FROM upstream WHERE id = $(sql_var id)) THEN
    RAISE EXCEPTION 'blocking % by % would make a cycle (% already waits on %): remove a dependency with \`task unblock\`',
      $(sql_var id), $(sql_var by), $(sql_var by), $(sql_var id);
  END IF;
END \$\$;
INSERT INTO task_dependencies (task_id, blocked_by) VALUES (:'id', :'by') ON CONFLICT DO NOTHING;
COMMIT;
SQL
  print_result "blocked $id by $by" '{task: $id, blocked_by: $by}' --arg id "$id" --arg by "$by"
}

cmd_unblock() {
  local id="" by=""
  while (($#)); do
    case $1 in
      --by) require_value "$1" "${2:-}"; by=$2; shift 2 ;;
      *) id=$1; shift ;;
    esac
  done
  [[ -n $id && -n $by ]] || usage_error "unblock: task unblock ID --by OTHER"
  local gone
  gone=$(db_run -v id="$id" -v by="$by" <<'SQL'
BEGIN;
DELETE FROM task_dependencies WHERE task_id = :'id' AND blocked_by = :'by' RETURNING task_id;
COMMIT;
SQL
  ) || exit "$EXIT_ERROR"
  [[ -n $gone ]] || die "$EXIT_NOT_FOUND" "task $id is not blocked by $by: \`task show $id\` lists its blockers"
  print_result "unblocked $id from $by" '{task: $id, unblocked_from: $by}' --arg id "$id" --arg by "$by"
}

cmd_agent() {
  local action=${1:-}
  shift || true
  case $action in
    register)
      local id=""
      [[ ${1:-} == --id ]] && { require_value --id "${2:-}"; id=$2; }
      id=${id:-"$(hostname)-$$-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"}
      db_run -v id="$id" -v pid="${RALPH_AGENT_PID:-$PPID}" -v host="$(hostname)" <<'SQL' >/dev/null || exit "$EXIT_ERROR"
BEGIN;
INSERT INTO agents (id, pid, hostname) VALUES (:'id', :'pid'::int, :'host')
ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, hostname = excluded.hostname, status = 'active',
  started_at = clock_timestamp(), last_heartbeat_at = clock_timestamp();
COMMIT;
SQL
      print_result "$id" '{agent: $id}' --arg id "$id"
      ;;
    heartbeat | stop)
      local id=${1:-${RALPH_AGENT_ID:-}}
      [[ -n $id ]] || usage_error "agent $action: task agent $action ID"
      local found
      found=$(db_run -v id="$id" -v action="$action" <<'SQL'
BEGIN;
-- Stopping an agent hands its active tasks back.
UPDATE tasks SET status = 'open', assignee = NULL, lease_expires_at = NULL
WHERE :'action' = 'stop' AND assignee = :'id' AND status = 'active';
UPDATE agents SET last_heartbeat_at = clock_timestamp(),
  status = CASE WHEN :'action' = 'stop' THEN 'stopped' ELSE status END
WHERE id = :'id' RETURNING id;
COMMIT;
SQL
      ) || exit "$EXIT_ERROR"
      [[ -n $found ]] || die "$EXIT_NOT_FOUND" "unknown agent '$id': \`task agent register\` makes one"
      print_result "agent $id: $action" '{agent: $id, action: $a}' --arg id "$id" --arg a "$action"
      ;;
    *) usage_error "agent: use task agent register [--id ID] | heartbeat ID | stop ID" ;;
  esac
}
