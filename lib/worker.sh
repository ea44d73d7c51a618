#!/usr/bin/env bash
# `ralph.sh build`: the worker loop. Register the agent; then claim a task,
# prepare its branch, run the agent while renewing the lease, commit, push,
# and record the commit with `task done`. SIGTERM/SIGINT release the active
# task and exit 0; a second signal exits at once. After a SIGKILL the task
# becomes claimable again when its lease expires.

WORKER_TASK=""
WORKER_STOPPING=0
RENEW_PID=""
AGENT_PID=""

task_cli() { "$RALPH_HOME/task" "$@"; }

worker_usage() {
  cat <<'USAGE'
usage: ralph.sh [--model ALIAS] build [--max-iterations N] [--until-empty]

  --max-iterations N   stop after N tasks (default: run until stopped)
  --until-empty        stop when nothing is claimable instead of waiting
USAGE
}

worker_build() {
  local max_iterations=0 until_empty=false
  while (($#)); do
    case $1 in
      --max-iterations)
        require_value "$1" "${2:-}"
        is_uint "$2" || usage_error "--max-iterations needs a number, not '$2'"
        max_iterations=$2
        shift 2
        ;;
      --until-empty) until_empty=true; shift ;;
      -h | --help) worker_usage; return 0 ;;
      *) usage_error "build: unknown argument '$1' (see ralph.sh build --help)" ;;
    esac
  done
  db_require_url
  [[ -n ${RALPH_REPO_URL:-} ]] || usage_error "RALPH_REPO_URL is not set: the repository the worker changes (a git URL)"
  local model
  model=$(model_id "${RALPH_MODEL:-}")
  worker_git_identity

  RALPH_AGENT_ID=$(task_cli agent register ${RALPH_AGENT_ID:+--id "$RALPH_AGENT_ID"}) || die "$EXIT_ERROR" "could not register the agent"
  export RALPH_AGENT_ID RALPH_WORKER_PID=$$
  trap worker_on_signal TERM INT
  log "agent $RALPH_AGENT_ID: working ${RALPH_REPO_URL} with $model"

  RALPH_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ralph.XXXXXX")
  export RALPH_STATE_DIR
  agent_settings "$RALPH_STATE_DIR/settings.json"
  [[ -n ${RALPH_AGENT_CMD:-} ]] || agent_install_skills

  local done_count=0 idle=0 row rc
  while ((max_iterations == 0 || done_count < max_iterations)); do
    task_cli agent heartbeat "$RALPH_AGENT_ID" >/dev/null || log "heartbeat failed; carrying on"
    rc=0
    row=$(task_cli --json claim --agent "$RALPH_AGENT_ID" 2>"$RALPH_STATE_DIR/claim.err") || rc=$?
    # "Nothing to claim" is the normal idle state, not worth a line.
    ((rc == EXIT_NOTHING)) || cat "$RALPH_STATE_DIR/claim.err" >&2
    case $rc in
      0)
        idle=0
        worker_work "$row" "$model"
        done_count=$((done_count + 1))
        ;;
      "$EXIT_NOTHING")
        [[ $until_empty == false ]] || break
        worker_idle "$idle"
        idle=$((idle + 1))
        ;;
      *)
        log "claim failed (exit $rc); backing off"
        worker_idle "$idle"
        idle=$((idle + 1))
        ;;
    esac
  done
  trap - TERM INT
  task_cli agent stop "$RALPH_AGENT_ID" >/dev/null || true
  rm -rf "$RALPH_STATE_DIR"
  log "agent $RALPH_AGENT_ID: finished after $done_count task(s)"
}

# Commits need an identity; the entrypoint sets one, this covers hosts.
worker_git_identity() {
  export GIT_AUTHOR_NAME=${GIT_AUTHOR_NAME:-${RALPH_GIT_NAME:-ralph}}
  export GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL:-${RALPH_GIT_EMAIL:-ralph@localhost}}
  export GIT_COMMITTER_NAME=${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}
  export GIT_COMMITTER_EMAIL=${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}
}

# worker_idle N: sleep with exponential backoff and jitter, interruptible.
worker_idle() {
  local n=$1 min=${RALPH_IDLE_MIN_SECONDS:-2} max=${RALPH_IDLE_MAX_SECONDS:-60} base
  base=$((min << (n < 6 ? n : 6)))
  ((base <= max)) || base=$max
  # Jitter in [base/2, base]: workers that went idle together spread out.
  local ms=$((base * 500 + RANDOM % (base * 500 + 1)))
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))" &
  wait $! || true
}

# worker_work ROW MODEL: one task, start to `task done`.
worker_work() {
  local row=$1 model=$2 id ref branch commit prompt_file agent_rc=0
  id=$(jq -r '.id' <<<"$row")
  ref=$(jq -r '.ref // empty' <<<"$row")
  WORKER_TASK=$id
  export RALPH_TASK_ID=$id
  log "task $id: claimed (retry $(jq -r '.retry_count' <<<"$row"))"

  if ! branch=$(workspace_prepare "$id" "$ref"); then
    log "task $id: could not prepare the workspace; releasing it"
    worker_release
    return 0
  fi
  prompt_file="$RALPH_STATE_DIR/prompt.txt"
  agent_prompt "$row" >"$prompt_file"

  worker_renew_start "$id"
  agent_start "$prompt_file" "$model" "$RALPH_STATE_DIR/settings.json"
  wait "$AGENT_PID" || agent_rc=$?
  AGENT_PID=""
  worker_renew_stop

  if ((agent_rc != 0)); then
    log "task $id: the agent failed (exit $agent_rc); releasing it for another try"
    worker_release
    return 0
  fi
  if ! commit=$(workspace_commit "$id" "$branch"); then
    log "task $id: commit or push failed; releasing it"
    worker_release
    return 0
  fi
  local result
  result=$(jq -nc --arg commit "$commit" --arg branch "$branch" --arg agent "$RALPH_AGENT_ID" \
    '{commit: $commit, branch: $branch, agent: $agent}')
  if task_cli done "$id" --agent "$RALPH_AGENT_ID" --result "$result" >/dev/null; then
    log "task $id: done at $commit on $branch"
  else
    log "task $id: could not record the result (lease lost?); the commit $commit is on $branch"
  fi
  WORKER_TASK=""
}

# The lease is renewed at a third of its length while the agent runs.
worker_renew_start() {
  local id=$1 every
  every=$(((${RALPH_LEASE_SECONDS:-300} + 2) / 3))
  (
    trap - TERM INT
    while sleep "$every"; do
      "$RALPH_HOME/task" renew "$id" --agent "$RALPH_AGENT_ID" >/dev/null || exit 0
    done
  ) &
  RENEW_PID=$!
}

worker_renew_stop() {
  [[ -n $RENEW_PID ]] || return 0
  kill "$RENEW_PID" 2>/dev/null || true
  wait "$RENEW_PID" 2>/dev/null || true
  RENEW_PID=""
}

worker_release() {
  [[ -n $WORKER_TASK ]] || return 0
  task_cli release "$WORKER_TASK" --agent "$RALPH_AGENT_ID" >/dev/null || log "could not release $WORKER_TASK"
  WORKER_TASK=""
}

# First signal: stop the agent, hand the task back, deregister, exit 0.
# Second signal: exit now.
worker_on_signal() {
  if ((WORKER_STOPPING)); then
    log "second signal: exiting now"
    [[ -z $AGENT_PID ]] || kill -KILL -- "-$AGENT_PID" 2>/dev/null || true
    exit 130
  fi
  WORKER_STOPPING=1
  log "stopping${WORKER_TASK:+: releasing task $WORKER_TASK}"
  agent_stop
  worker_renew_stop
  worker_release
  task_cli agent stop "$RALPH_AGENT_ID" >/dev/null || true
  rm -rf "${RALPH_STATE_DIR:-/nonexistent}"
  exit 0
}
