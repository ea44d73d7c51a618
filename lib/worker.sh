#!/usr/bin/env bash
# `ralph.sh build`: the worker loop. Register the agent; then, until stopped:
# claim a task, prepare its branch, run the agent while the lease is renewed
# in the background, commit, push the branch, and record the commit with
# `task done`. Idle backoff with jitter when nothing is claimable.
#
# Faults are classified. The agent's failure (it exits non-zero or runs
# past RALPH_AGENT_TIMEOUT_SECONDS) and the task's (a ref that doesn't
# exist, a push refused because the branch moved) are failed attempts,
# recorded with `task fail`: the store backs the task off and fails it
# after its last attempt; the worker moves on. A fault outside the task
# (the remote out of reach, a full disk, the database before the push)
# hands the task back without counting an attempt, and backs the worker
# off. A claim whose reply was lost is taken up (`task held`); a `task
# done` that fails is retried while the lease holds. A lost lease (the task
# released by an operator, or no renewal that answered in time to keep it)
# stops the agent, and the step in flight, before the lease runs out:
# nothing is pushed or finished for that attempt. Every call to the store
# is bounded (lib/db.sh), so none wedges the worker.
#
# Signals: SIGTERM or SIGINT stops the agent, releases the active task (back
# to open), marks the agent stopped and exits 0; a second signal exits at
# once (130). After a SIGKILL nothing is lost: a watchdog kills the agent,
# the lease stops being renewed, and the task becomes claimable when it
# expires (a failed attempt).
# Needs lib/common.sh, lib/db.sh, lib/models.sh, lib/privsep.sh,
# lib/workspace.sh, lib/agent.sh.

WORKER_TASK=""       # the task this worker holds
WORKER_STOPPING=0    # a stop signal came
WORKER_CHILD=""      # the foreground command worker_run waits for
RENEW_PID=""         # the lease renewer
RALPH_STATE_DIR=""   # this worker's scratch directory

worker_usage() {
  cat <<'USAGE'
usage: ralph.sh [--model ALIAS] build [--max-iterations N] [--until-empty] [--model ALIAS]

  --max-iterations N   stop after N claimed tasks (default 0: run until stopped)
  --until-empty        stop when nothing is claimable instead of waiting
  --model ALIAS        the model (an alias from models.json)

The agent gets RALPH_AGENT_TIMEOUT_SECONDS (default 3600) per task: past it,
it is stopped and the attempt fails.
SIGTERM or SIGINT releases the active task and exits 0; a second one exits now.
USAGE
}

task_cli() { "$RALPH_HOME/task" "$@"; }

# worker_run OUT ERR CMD…: runs CMD in the background, in a process group
# of its own (so stopping it stops what it started), with stdout to OUT and
# stderr to ERR, and waits for it: a signal is handled at once instead of
# when CMD ends. Returns CMD's status. A signal whose handler returns (the
# lease lost, SIGUSR1) ends the wait, not CMD: the wait goes on.
worker_run() {
  local out=$1 err=$2 rc=0
  shift 2
  set -m
  {
    workspace_lock_close
    "$@"
  } >"$out" 2>"$err" &
  WORKER_CHILD=$!
  set +m
  wait "$WORKER_CHILD" || rc=$?
  while ((rc > 128)) && kill -0 "$WORKER_CHILD" 2>/dev/null; do
    rc=0
    wait "$WORKER_CHILD" || rc=$?
  done
  # Nothing of the step outlives it (a push stopped at its bound leaves the
  # remote's receive-pack and its hook in the group).
  kill -KILL -- "-$WORKER_CHILD" 2>/dev/null || true
  WORKER_CHILD=""
  return "$rc"
}

# worker_register OUT ERR: registers the agent (its id in OUT). A database
# out of reach (not yet started, restarting) is waited for with the idle
# back-off, so workers started with or during an outage come up when it
# ends; any other refusal (credentials, no such database) is fatal.
worker_register() {
  local out=$1 err=$2 n=0
  until worker_run "$out" "$err" task_cli agent register; do
    if ! grep -q 'cannot reach the database' "$err"; then
      cat "$err" >&2
      die "$EXIT_ERROR" "could not register the agent: check RALPH_DB_URL"
    fi
    ((n % 10)) || cat "$err" >&2
    ((n % 10)) || log "waiting for the database to register the agent"
    worker_idle "$n"
    n=$((n + 1))
  done
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
      --max-iterations=*)
        is_uint "${1#*=}" || usage_error "--max-iterations needs a number, not '${1#*=}'"
        max_iterations=${1#*=}
        shift
        ;;
      --until-empty) until_empty=true; shift ;;
      --model) require_value "$1" "${2:-}"; RALPH_MODEL=$2; shift 2 ;;
      --model=*) RALPH_MODEL=${1#*=}; shift ;;
      -h | --help) worker_usage; return 0 ;;
      *) usage_error "build: unknown argument '$1' (see ralph.sh build --help)" ;;
    esac
  done
  db_require_url
  [[ -n ${RALPH_REPO_URL:-} ]] || usage_error "RALPH_REPO_URL is not set: export RALPH_REPO_URL=<the git repository the worker changes>"
  worker_check_numbers
  local model
  model=$(model_id "${RALPH_MODEL:-}") || exit "$?"
  if [[ -z ${RALPH_AGENT_CMD:-} ]] && ! command -v claude >/dev/null; then
    usage_error "claude (Claude Code) is not on PATH: install it, or set RALPH_AGENT_CMD to another agent command"
  fi
  worker_git_identity
  privsep_init
  privsep_warn
  workspace_lock

  RALPH_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ralph.XXXXXX")
  export RALPH_STATE_DIR RALPH_WORKER_PID=$$ RALPH_AGENT_PID=$$
  trap worker_cleanup EXIT
  workspace_credentials "$RALPH_STATE_DIR" || die "$EXIT_ERROR" "cannot write the git credentials into $RALPH_STATE_DIR"
  trap worker_on_signal TERM INT
  trap worker_on_lease_lost USR1
  trap worker_on_agent_timeout USR2

  local out="$RALPH_STATE_DIR/out" err="$RALPH_STATE_DIR/err"
  worker_register "$out" "$err"
  RALPH_AGENT_ID=$(<"$out")
  export RALPH_AGENT_ID
  log "agent $RALPH_AGENT_ID: working on $(workspace_public_url) in $(workspace_dir) with $model${AGENT_UID:+ (the agent runs as uid $AGENT_UID)}"

  # What the agent reads: apart from the state directory (the worker's only).
  agent_files "$(mktemp -d "${TMPDIR:-/tmp}/ralph-files.XXXXXX")" \
    || die "$EXIT_ERROR" "cannot write the agent's settings in ${TMPDIR:-/tmp}: make it writable"

  local claimed=0 idle=0 rc since
  while ((max_iterations == 0 || claimed < max_iterations)); do
    rc=0
    # A lease runs from when the claim reached the database: after this.
    now_ms
    since=$NOW_MS
    worker_run "$out" "$err" task_cli --json claim --agent "$RALPH_AGENT_ID" || rc=$?
    case $rc in
      0)
        claimed=$((claimed + 1))
        # A failed attempt backs the task off in the store: go on to the
        # next; a fault outside the task backs the worker off.
        worker_work_then_back_off "$(<"$out")" "$model" "$since"
        ;;
      "$EXIT_NOTHING")
        [[ $until_empty == false ]] || break
        worker_run /dev/null /dev/null task_cli agent heartbeat "$RALPH_AGENT_ID" || true
        worker_idle "$idle"
        idle=$((idle + 1))
        ;;
      *)
        cat "$err" >&2
        # The claim may have committed with its reply lost: what this agent
        # holds is taken up, not left to expire as a failed attempt.
        if worker_run "$out" "$err" task_cli --json held --agent "$RALPH_AGENT_ID"; then
          log "the claim's reply was lost (exit $rc): taking up the task it claimed"
          claimed=$((claimed + 1))
          worker_work_then_back_off "$(<"$out")" "$model" "$since"
        else
          log "claim failed (exit $rc); backing off"
          worker_idle "$idle"
          idle=$((idle + 1))
        fi
        ;;
    esac
  done
  trap - TERM INT
  task_cli agent stop "$RALPH_AGENT_ID" >/dev/null || log "could not mark agent $RALPH_AGENT_ID stopped"
  log "agent $RALPH_AGENT_ID: stopped after $claimed task(s)"
}

# worker_work_then_back_off TASK_JSON MODEL SINCE_MS: worker_work; after a
# fault outside the task, the idle back-off before the next claim, growing
# while such faults go on (the caller's `idle` counter: a remote that is
# down is not asked again every two seconds). A failed attempt backs the
# task off in the store instead: the worker goes on to the next.
worker_work_then_back_off() {
  local rc=0
  worker_work "$@" || rc=$?
  if ((rc != 2)); then
    idle=0
    return 0
  fi
  worker_idle "$idle"
  idle=$((idle + 1))
}

# Commits need an identity; the entrypoint sets one, this covers hosts.
worker_git_identity() {
  export GIT_AUTHOR_NAME=${GIT_AUTHOR_NAME:-${RALPH_GIT_NAME:-ralph}}
  export GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL:-${RALPH_GIT_EMAIL:-ralph@localhost}}
  export GIT_COMMITTER_NAME=${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}
  export GIT_COMMITTER_EMAIL=${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}
}

# worker_check_numbers: every number the worker reads from its environment,
# checked at the start (not in a signal handler, mid-task): the lease, the
# idle back-off, the agent's time limit and grace period and the stop-time
# connect timeout (the retry policy too: `task` reads it, the worker passes
# it on).
worker_check_numbers() {
  env_uint RALPH_LEASE_SECONDS 300 1 86400
  WORKER_LEASE=$ENV_UINT
  env_uint RALPH_IDLE_MIN_SECONDS 2 0 3600
  WORKER_IDLE_MIN=$ENV_UINT
  env_uint RALPH_IDLE_MAX_SECONDS 60 0 86400
  WORKER_IDLE_MAX=$ENV_UINT
  env_uint RALPH_AGENT_TIMEOUT_SECONDS 3600 1 604800
  WORKER_AGENT_TIMEOUT=$ENV_UINT
  env_uint RALPH_AGENT_STOP_SECONDS 3 0 3600
  WORKER_AGENT_STOP=$ENV_UINT
  env_uint RALPH_STOP_CONNECT_TIMEOUT 3 0 3600
  env_uint RALPH_GIT_TIMEOUT_SECONDS 300 1 86400
  env_uint RALPH_MAX_ATTEMPTS 3 1 1000
  env_uint RALPH_RETRY_BASE_SECONDS 30 0 86400
  env_uint RALPH_RETRY_MAX_SECONDS 900 "$ENV_UINT" 86400
}
WORKER_LEASE=300 WORKER_IDLE_MIN=2 WORKER_IDLE_MAX=60 WORKER_AGENT_TIMEOUT=3600 WORKER_AGENT_STOP=3

# worker_idle N: sleeps after the Nth idle poll in a row: exponential backoff
# from RALPH_IDLE_MIN_SECONDS (default 2) to RALPH_IDLE_MAX_SECONDS (default
# 60), with jitter in [half, full] so workers that went idle together spread
# out. Interruptible by a signal.
worker_idle() {
  local n=$1 min=$WORKER_IDLE_MIN max=$WORKER_IDLE_MAX
  local base=$((min << (n < 10 ? n : 10)))
  ((base <= max)) || base=$max
  local ms=$((base * 500 + (RANDOM * 32768 + RANDOM) % (base * 500 + 1)))
  ((ms > 0)) || return 0
  worker_run /dev/null /dev/null sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))" || true
}

# worker_work TASK_JSON MODEL SINCE_MS: one claimed task (claimed after
# SINCE_MS, on now_ms's clock), from the branch to `task done`. Returns 0
# when it is done; 1 when the attempt failed (the agent's fault, or the
# task's: recorded with `task fail`, an attempt counted) or its lease was
# lost; 2 when something outside the task failed (the remote out of reach,
# a full disk, the database before the push): the task is handed back
# without counting an attempt, and the worker backs off.
worker_work() {
  local task=$1 model=$2 id ref branch remote_head commit changed=false agent_rc=0 out err rc=0
  out="$RALPH_STATE_DIR/out" err="$RALPH_STATE_DIR/err"
  id=$(jq -r '.id' <<<"$task")
  ref=$(jq -r '.ref // empty' <<<"$task")
  WORKER_TASK=$id
  rm -f "$RALPH_STATE_DIR/lease-lost" "$RALPH_STATE_DIR/agent-timeout"
  export RALPH_TASK_ID=$id
  log "task $id: claimed (attempt $(jq -r '.attempts' <<<"$task"))"
  worker_renew_start "$id" "$3"

  worker_run "$out" "$err" workspace_prepare "$id" "$ref" || rc=$?
  if ((rc)); then
    cat "$err" >&2
    worker_lease_lost_stop && return 1
    if ((rc == WORKSPACE_TASK_FAULT)); then
      worker_fail_attempt "$(tail -n1 "$err" | sed "s/^$RALPH_PROG: //")"
      return 1
    fi
    worker_hand_back "could not prepare the workspace from $(workspace_public_url): $(tail -n1 "$err")"
    return 2
  fi
  # The branch, and what the remote's branch was when this attempt began:
  # the push replaces exactly that, or nothing.
  { read -r branch && read -r remote_head; } <"$out"
  local base
  base=$(wgit rev-parse --verify --quiet HEAD) || base=""
  local prompt_file="$AGENT_FILES/prompt.txt" log_file="$RALPH_STATE_DIR/agent.log"
  agent_prompt "$task" >"$prompt_file"
  chmod a+r "$prompt_file"

  worker_lease_lost_stop && return 1
  if ! agent_start "$prompt_file" "$model" "$log_file" "$WORKER_AGENT_TIMEOUT"; then
    agent_finish
    worker_hand_back "could not start the agent"
    return 2
  fi
  log "task $id: agent running on $branch (pid $AGENT_PID)"
  agent_wait || agent_rc=$?
  agent_finish
  # What the agent said (claude -p prints its final message), for the log.
  sed "s|^|$RALPH_PROG: task $id: agent: |" "$log_file" >&2 || true
  worker_lease_lost_stop && return 1
  # Its watchdog said it ran out of time (agent_watch), and it was stopped.
  if [[ -e $RALPH_STATE_DIR/agent-timeout ]]; then
    worker_fail_attempt "the agent passed its time limit of $WORKER_AGENT_TIMEOUT seconds (RALPH_AGENT_TIMEOUT_SECONDS) and was stopped"
    return 1
  fi
  if ((agent_rc != 0)); then
    worker_fail_attempt "the agent failed (exit $agent_rc): $(tail -n1 "$log_file" | cut -c1-200)"
    return 1
  fi

  local summary
  summary=$(tail -c 2000 "$log_file")
  # The commit (local: a failure is the disk's or the git directory's).
  if ! worker_run "$out" "$err" workspace_commit "$id" "$(jq -r '.description' <<<"$task")"; then
    cat "$err" >&2
    worker_lease_lost_stop && return 1
    worker_hand_back "could not commit on $branch: $(tail -n1 "$err")"
    return 2
  fi
  commit=$(<"$out")
  # Nothing leaves the worker on a lease it can't confirm: a renewal that
  # answers now, and the push bounded to finish well inside the lease it
  # gave (RALPH_LEASE_SECONDS less RALPH_AGENT_STOP_SECONDS + 2 s).
  rc=0
  worker_run "$out" "$err" task_cli renew "$id" --agent "$RALPH_AGENT_ID" || rc=$?
  if ((rc == EXIT_NOT_HELD || rc == EXIT_NOT_FOUND)); then
    worker_renew_lost_now "$(tail -n1 "$err")"
    worker_lease_lost_stop
    return 1
  elif ((rc)); then
    cat "$err" >&2
    worker_lease_lost_stop && return 1
    worker_hand_back "could not confirm the lease before the push: $(tail -n1 "$err")"
    return 2
  fi
  local bound=$((WORKER_LEASE - WORKER_AGENT_STOP - 2))
  ((bound >= 1)) || bound=1
  rc=0
  worker_run "$out" "$err" workspace_push "$branch" "$remote_head" "$bound" || rc=$?
  if ((rc)); then
    cat "$err" >&2
    worker_lease_lost_stop && return 1
    if ((rc == WORKSPACE_TASK_FAULT)); then
      worker_fail_attempt "the push of $branch was refused: $(grep -m1 -E 'rejected|stale info' "$err" || tail -n1 "$err")"
      return 1
    fi
    worker_hand_back "could not push $branch to $(workspace_public_url): $(tail -n1 "$err")"
    return 2
  fi
  # Changed: the commit's tree differs from the base's (whether the agent
  # left its change in the working tree or committed it itself).
  if [[ -z $base ]] || ! wgit diff --quiet "$base" "$commit" --; then
    changed=true
  fi
  local result
  result=$(jq -nc --arg commit "$commit" --arg branch "$branch" --arg agent "$RALPH_AGENT_ID" \
    --arg model "$model" --argjson changed "$changed" --arg summary "$summary" \
    '{commit: $commit, branch: $branch, changed: $changed, agent: $agent, model: $model, summary: $summary}')
  worker_done "$id" "$result" || return "$?"
  worker_renew_stop
  WORKER_TASK=""
  log "task $id: done: $commit on $branch"
}

# worker_done ID RESULT: `task done`, retried while the lease holds (the
# renewer keeps it; a lost lease ends the retries), for at most one lease:
# a database that failed once after the push doesn't cost the attempt.
# Returns 1 when the lease was lost first (the commit stays on its branch),
# 2 when the store kept refusing for a whole lease (the task is handed
# back).
worker_done() {
  local id=$1 out="$RALPH_STATE_DIR/out" err="$RALPH_STATE_DIR/err" rc retry=$((WORKER_LEASE * 1000 / 9)) until
  ((retry >= 200)) || retry=200
  now_ms
  until=$((NOW_MS + WORKER_LEASE * 1000))
  ms_seconds "$retry"
  while :; do
    rc=0
    worker_run "$out" "$err" task_cli "done" "$id" --agent "$RALPH_AGENT_ID" --result "$2" || rc=$?
    ((rc)) || return 0
    cat "$err" >&2
    if ((rc == EXIT_NOT_HELD || rc == EXIT_NOT_FOUND)); then
      worker_renew_lost_now "$(tail -n1 "$err")"
    fi
    if [[ -e $RALPH_STATE_DIR/lease-lost ]]; then
      log "task $id: could not record the result (the lease was lost: $(<"$RALPH_STATE_DIR/lease-lost")); the commit is on its branch"
      worker_renew_stop
      WORKER_TASK=""
      return 1
    fi
    now_ms
    if ((NOW_MS >= until)); then
      worker_hand_back "could not record the result for ${WORKER_LEASE}s (the commit is on its branch)"
      return 2
    fi
    log "task $id: could not record the result (exit $rc); retrying in ${SECS}s while the lease holds"
    worker_run /dev/null /dev/null sleep "$SECS" || true
  done
}

# worker_hand_back REASON: something outside the task failed: the task goes
# back to open without counting an attempt (`task release`), and the worker
# backs off before its next claim.
worker_hand_back() {
  log "task $WORKER_TASK: $1: handing it back (not the task's fault: no attempt counted)"
  worker_renew_stop
  PGCONNECT_TIMEOUT=${RALPH_STOP_CONNECT_TIMEOUT:-3} worker_run /dev/null "$RALPH_STATE_DIR/err" \
    task_cli release "$WORKER_TASK" --agent "$RALPH_AGENT_ID" \
    || log "could not hand task $WORKER_TASK back: $(tail -n1 "$RALPH_STATE_DIR/err"); it becomes claimable when its lease expires"
  WORKER_TASK=""
}

# worker_renew_lost_now WHY: the store said the task is no longer ours.
worker_renew_lost_now() {
  [[ -e $RALPH_STATE_DIR/lease-lost ]] || printf '%s\n' "${1#task: }" >"$RALPH_STATE_DIR/lease-lost"
}

# worker_fail_attempt REASON: the attempt failed; the store backs the task
# off (and fails it after its last attempt).
worker_fail_attempt() {
  log "task $WORKER_TASK: $1"
  worker_renew_stop
  if PGCONNECT_TIMEOUT=${RALPH_STOP_CONNECT_TIMEOUT:-3} worker_run "$RALPH_STATE_DIR/out" "$RALPH_STATE_DIR/err" \
    task_cli fail "$WORKER_TASK" --agent "$RALPH_AGENT_ID" --reason "$1"; then
    log "$(<"$RALPH_STATE_DIR/out")"
  else
    log "could not record the failed attempt of task $WORKER_TASK: $(tail -n1 "$RALPH_STATE_DIR/err"); it becomes claimable when its lease expires"
  fi
  WORKER_TASK=""
}

# worker_lease_lost_stop: when the lease was lost (the renewer wrote why to
# lease-lost), says why and drops the attempt (no commit, push, done or
# fail: the task is not ours any more).
worker_lease_lost_stop() {
  [[ -e $RALPH_STATE_DIR/lease-lost ]] || return 1
  log "task $WORKER_TASK: the lease was lost ($(<"$RALPH_STATE_DIR/lease-lost")): the agent and the step in flight were stopped; nothing is pushed or finished for this attempt"
  agent_stop
  worker_renew_stop
  WORKER_TASK=""
  return 0
}

# SIGUSR1, from the renewer (after it wrote lease-lost): stop the agent
# and whatever the worker runs for the task now (a push, a `task done`),
# and wait for them: nothing of the attempt goes on after the lease.
worker_on_lease_lost() {
  agent_stop
  [[ -z $WORKER_CHILD ]] || group_stop "$WORKER_CHILD" "$WORKER_AGENT_STOP"
}

# SIGUSR2, from the agent's watchdog (after it wrote agent-timeout): the
# agent ran past RALPH_AGENT_TIMEOUT_SECONDS; stop it now.
worker_on_agent_timeout() {
  agent_stop
}

# The lease is renewed every third of its length while the task is held, by
# a background loop that ends with the worker (also after a SIGKILL: it
# checks that the worker is alive before each renewal), so a dead worker's
# lease runs out. It keeps the whole lease in view: the lease runs until
# RALPH_LEASE_SECONDS after the last renewal that succeeded (after its
# start: the database set the new end later than that), and it is lost
# when a renewal finds the task no longer held by this agent (exit 5:
# released, taken, done), or when no renewal succeeded in time to keep it:
# a lead before its end (RALPH_AGENT_STOP_SECONDS + 2 s, at most a third of
# the lease: the time to stop the agent), whether the last renewal failed
# or still hangs (every call is bounded too, but the renewer doesn't wait
# for one past that point). A failed renewal is retried after a ninth of
# the lease. On a loss the renewer writes why to the state directory, tells
# the worker (SIGUSR1: it stops the agent) and ends.
worker_renew_start() {
  rm -f "$RALPH_STATE_DIR/renew.err" "$RALPH_STATE_DIR/renew.rc"
  set -m
  worker_renew_loop "$1" "$2" "$$" </dev/null &
  RENEW_PID=$!
  set +m
}

# worker_renew_loop ID SINCE_MS WORKER_PID: the renewer (in the background,
# its own process group). Times in ms on now_ms's clock.
worker_renew_loop() {
  workspace_lock_close
  local id=$1 worker=$3 state=$RALPH_STATE_DIR lease=$((WORKER_LEASE * 1000))
  local every=$((lease / 3)) lead=$(((WORKER_AGENT_STOP + 2) * 1000)) retry
  ((every >= 200)) || every=200
  ((lead <= lease / 3)) || lead=$((lease / 3))
  retry=$((every / 3))
  ((retry >= 200)) || retry=200
  # stop: when the agent must be stopped, unless a renewal succeeds first.
  local stop=$(($2 + lease - lead)) next=$(($2 + every)) start rc why
  while :; do
    now_ms
    if ((NOW_MS >= stop)); then
      why=""
      [[ ! -s $state/renew.err ]] || why=$(tail -n1 "$state/renew.err")
      worker_renew_lost "no renewal succeeded in time to keep the lease of ${WORKER_LEASE}s${why:+: ${why#task: }}" "$worker"
    fi
    if ((NOW_MS < next)); then
      ms_seconds $(((next < stop ? next : stop) - NOW_MS))
      sleep "$SECS"
      continue
    fi
    kill -0 "$worker" 2>/dev/null || exit 0
    start=$NOW_MS
    : >"$state/renew.err"
    rm -f "$state/renew.rc"
    {
      rc=0
      "$RALPH_HOME/task" renew "$id" --agent "$RALPH_AGENT_ID" >/dev/null 2>"$state/renew.err" || rc=$?
      echo "$rc" >"$state/renew.rc"
    } &
    # Waited for only until the agent must be stopped: a renewal that hangs
    # (a half-open connection) doesn't hold that back.
    until [[ -s $state/renew.rc ]]; do
      now_ms
      if ((NOW_MS >= stop)); then
        ms_seconds $((NOW_MS - start))
        worker_renew_lost "no renewal succeeded in time to keep the lease of ${WORKER_LEASE}s: the last one has not answered after ${SECS}s" "$worker"
      fi
      sleep 0.05
    done
    rc=""
    read -r rc <"$state/renew.rc" || true
    wait "$!" 2>/dev/null || true
    if [[ $rc == 0 ]]; then
      stop=$((start + lease - lead)) next=$((start + every))
      continue
    fi
    if [[ $rc == "$EXIT_NOT_HELD" || $rc == "$EXIT_NOT_FOUND" ]]; then
      why=$(tail -n1 "$state/renew.err")
      worker_renew_lost "${why#task: }" "$worker"
    fi
    printf '%s: task %s: lease renewal failed; retrying: %s\n' "$RALPH_PROG" "$id" "$(tail -n1 "$state/renew.err")" >&2
    next=$((start + retry))
  done
}

# worker_renew_lost WHY WORKER_PID: the lease is lost: says why in
# lease-lost, tells the worker (SIGUSR1) and ends the renewer (a renewal
# still running goes with its process group: worker_renew_stop).
worker_renew_lost() {
  kill -0 "$2" 2>/dev/null || exit 0
  printf '%s\n' "$1" >"$RALPH_STATE_DIR/lease-lost"
  kill -USR1 "$2" 2>/dev/null || true
  exit 0
}

worker_renew_stop() {
  [[ -n $RENEW_PID ]] || return 0
  kill -- "-$RENEW_PID" 2>/dev/null || true
  wait "$RENEW_PID" 2>/dev/null || true
  RENEW_PID=""
}

worker_release() {
  [[ -n $WORKER_TASK ]] || return 0
  PGCONNECT_TIMEOUT=${RALPH_STOP_CONNECT_TIMEOUT:-3} worker_run /dev/null "$RALPH_STATE_DIR/err" \
    task_cli release "$WORKER_TASK" --agent "$RALPH_AGENT_ID" \
    || log "could not release task $WORKER_TASK: $(tail -n1 "$RALPH_STATE_DIR/err"); it becomes claimable when its lease expires"
  WORKER_TASK=""
}

# First signal: stop the agent, hand the task back, mark the agent stopped,
# exit 0. Second signal: kill what runs and exit 130 now.
worker_on_signal() {
  if ((WORKER_STOPPING)); then
    log "second signal: exiting now"
    [[ -z $AGENT_PID ]] || kill -KILL -- "-$AGENT_PID" 2>/dev/null || true
    [[ -z $WORKER_CHILD ]] || kill -KILL -- "-$WORKER_CHILD" 2>/dev/null || true
    exit 130
  fi
  WORKER_STOPPING=1
  log "stopping${WORKER_TASK:+: releasing task $WORKER_TASK}"
  [[ -z $WORKER_CHILD ]] || kill -TERM -- "-$WORKER_CHILD" 2>/dev/null || true
  agent_stop
  worker_renew_stop
  worker_release
  if [[ -n ${RALPH_AGENT_ID:-} ]]; then
    PGCONNECT_TIMEOUT=${RALPH_STOP_CONNECT_TIMEOUT:-3} worker_run /dev/null /dev/null \
      task_cli agent stop "$RALPH_AGENT_ID" || log "could not mark agent $RALPH_AGENT_ID stopped"
  fi
  log "stopped"
  exit 0
}

# On any exit: nothing of ours keeps running, the scratch directory goes.
# In the worker's own shell only: bash runs the EXIT trap in a subshell the
# worker has just forked (the agent's watchdog, a step of worker_run, the
# agent before its exec) when a signal ends it before it has reset the
# worker's traps, as stopping an agent that ended at once does. There it
# would remove the state directory, and stop the agent and the renewer,
# under the worker still running; it exits instead, with the signal's
# status (exit in a trap keeps the status it came with).
worker_cleanup() {
  [[ $BASHPID == "$$" ]] || exit
  [[ -z $AGENT_PID ]] || kill -KILL -- "-$AGENT_PID" 2>/dev/null || true
  [[ -z $AGENT_WATCH_PID ]] || kill -- "-$AGENT_WATCH_PID" 2>/dev/null || true
  [[ -z $RENEW_PID ]] || kill -- "-$RENEW_PID" 2>/dev/null || true
  [[ -z $WORKER_CHILD ]] || kill -- "-$WORKER_CHILD" 2>/dev/null || true
  privsep_sweep || true
  agent_home_remove
  [[ -z $AGENT_FILES ]] || rm -rf "$AGENT_FILES"
  [[ -z $RALPH_STATE_DIR ]] || rm -rf "$RALPH_STATE_DIR"
}
