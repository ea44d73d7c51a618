#!/usr/bin/env bash
# The agent that works a task: Claude Code by default (`claude -p` with the
# task prompt, the model from models.json, our skills and hooks), or
# RALPH_AGENT_CMD, a command run by bash instead (the stand-in the tests use,
# or another agent). It runs in the workspace's tree, in a process group of
# its own, as the agent's user where the worker can switch to it
# (lib/privsep.sh), with a fresh home per attempt; after each attempt every
# process of that user is stopped (privsep_sweep; without separation, the
# agent's process group).
# Needs lib/common.sh, lib/privsep.sh and lib/workspace.sh.

AGENT_PID=""
AGENT_GROUP=""   # the agent's process group, until agent_finish
AGENT_WATCH_PID=""

# agent_prompt TASK_JSON: the prompt for one task.
agent_prompt() {
  jq -r '
    "You are a ralph worker. Work exactly one task, in this working tree of a git repository (your working directory; the worker keeps its history and commits for you, so there is no .git here).\n\n" +
    "Task \(.id) [\(.category), priority \(.priority)]\n\n\(.description)\n" +
    (if (.steps | length) > 0 then "\nSteps:\n" + (.steps | map("- " + .) | join("\n")) + "\n" else "" end) +
    (if .spec_ref then "\nSpecification: \(.spec_ref)\n" else "" end) +
    (if .attempts > 1 then "\nThis is attempt \(.attempts): an earlier one did not finish" +
      (if .last_error then " (\(.last_error))" else "" end) + ".\n" else "" end) +
    "\nFollow the ralph-build skill. Make the change, run the relevant tests, and stop when the task is done.\n" +
    "Do not commit or push: the worker commits your changes and records the result.\n"' <<<"$1"
}

# agent_settings FILE: Claude Code settings that install our hooks: the
# pre-tool-use guard on every tool that runs commands or writes files, and
# the session-end hook.
agent_settings() {
  jq -n --arg hooks "$RALPH_HOME/hooks" '{
    hooks: {
      PreToolUse: [{matcher: "Bash|Write|Edit|MultiEdit|NotebookEdit",
                    hooks: [{type: "command", command: ($hooks + "/pre-tool-use.sh"), timeout: 30}]}],
      SessionEnd: [{hooks: [{type: "command", command: ($hooks + "/session-end.sh"), timeout: 30}]}]
    }
  }' >"$1"
}

# agent_tools_dir DIR: `ralph` and `task` on the agent's PATH.
agent_tools_dir() {
  mkdir -p "$1"
  ln -sfn "$RALPH_HOME/ralph.sh" "$1/ralph"
  ln -sfn "$RALPH_HOME/task" "$1/task"
}

# agent_files DIR: what every agent of this worker reads, in DIR (readable
# by the agent's user; nothing secret): its settings and its tools. Sets
# AGENT_FILES.
agent_files() {
  AGENT_FILES=$1
  mkdir -p "$AGENT_FILES" && chmod 0755 "$AGENT_FILES" || return 1
  agent_settings "$AGENT_FILES/settings.json"
  agent_tools_dir "$AGENT_FILES/bin"
  chmod -R a+rX "$AGENT_FILES"
}
AGENT_FILES=""

# agent_home_make: a fresh home for one attempt, made by the agent's user
# (nothing an earlier agent left there reaches the next: dotfiles, Claude
# Code's settings), with our skills where Claude Code finds personal skills
# (~/.claude/skills/NAME/SKILL.md) and Claude Code's credentials file when
# the worker has one (the model's credentials are the agent's). Sets
# AGENT_HOME.
agent_home_make() {
  AGENT_HOME=$(as_agent mktemp -d "${TMPDIR:-/tmp}/ralph-agent.XXXXXX") || {
    log "cannot make the agent's home in ${TMPDIR:-/tmp}: make it writable for the agent's user"
    return 1
  }
  as_agent mkdir -p "$AGENT_HOME/tmp" "$AGENT_HOME/.claude/skills" || return 1
  [[ -n ${RALPH_AGENT_CMD:-} ]] || as_agent cp -R "$RALPH_HOME/skills/." "$AGENT_HOME/.claude/skills/" \
    || log "cannot copy ralph's skills into $AGENT_HOME: the agent runs without them"
  local credentials="${HOME:-/nonexistent}/.claude/.credentials.json"
  if [[ -z ${CLAUDE_CONFIG_DIR:-} && -r $credentials ]]; then
    as_agent sh -c 'umask 077 && cat >"$1"' _ "$AGENT_HOME/.claude/.credentials.json" <"$credentials" \
      || log "cannot give the agent Claude Code's credentials file"
  fi
}
AGENT_HOME=""

# agent_home_remove: the attempt's home goes, and what the agent's user left
# in the shared temporary directories (after privsep_sweep: nothing of it
# runs).
agent_home_remove() {
  [[ -z $AGENT_HOME ]] || as_agent rm -rf -- "$AGENT_HOME" 2>/dev/null || true
  AGENT_HOME=""
  ((PRIVSEP)) || return 0
  # shellcheck disable=SC2153 # lib/privsep.sh sets it
  local dir entry uid=$AGENT_UID
  for dir in "${TMPDIR:-/tmp}" /tmp /var/tmp /dev/shm; do
    [[ -d $dir ]] || continue
    while IFS= read -r -d '' entry; do
      as_agent chmod -R -f u+rwX -- "$entry" 2>/dev/null || true
      as_agent rm -rf -- "$entry" 2>/dev/null || true
    done < <(find "$dir" -mindepth 1 -maxdepth 1 -user "$uid" -print0 2>/dev/null)
  done
}

# agent_env_names: the variables of the worker's environment the agent
# gets: the model's (ANTHROPIC_*, CLAUDE_*, the Claude Code switches), the
# locale, the proxy, and those RALPH_AGENT_ENV names (a space-separated
# list of names, for another agent's needs). Nothing else of the worker's:
# not its database URL or password, not RALPH_REPO_URL, not its git
# credentials.
agent_env_names() {
  local name extra=()
  read -r -a extra <<<"${RALPH_AGENT_ENV:-}"
  for name in $(compgen -e); do
    case $name in
      ANTHROPIC_* | CLAUDE_* | DISABLE_* | USE_BUILTIN_RIPGREP | MAX_THINKING_TOKENS | LANG | LC_* | TZ | TERM | \
        HTTP_PROXY | HTTPS_PROXY | NO_PROXY | http_proxy | https_proxy | no_proxy)
        printf '%s\n' "$name"
        ;;
    esac
  done
  for name in "${extra[@]}"; do
    [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "$EXIT_USAGE" "RALPH_AGENT_ENV: '$name' is not a variable name: list names, separated by spaces"
    [[ -z ${!name+x} ]] || printf '%s\n' "$name"
  done
}

# agent_start PROMPT_FILE MODEL_ID LOG_FILE LIMIT_SECONDS: starts the agent
# in the background, in the tree, in its own process group (job control on
# for the launch: no setsid(1) needed), as the agent's user (as_agent), in
# an environment of its own (env -i: agent_env_names, its home, its tools,
# the task, and the agent role's database connection RALPH_AGENT_DB_URL /
# RALPH_AGENT_DB_PASSWORD when given); sets AGENT_PID, which is also the
# group id. Its stdout goes to LOG_FILE, its stderr to ours. A watchdog
# kills its process group when the worker is gone (a SIGKILL leaves no
# agent spending behind it), and tells the worker when it runs past
# LIMIT_SECONDS (agent_watch).
agent_start() {
  local prompt_file=$1 model=$2 log_file=$3 limit=$4 dir name vars=()
  dir=$(workspace_dir)
  agent_home_make || return 1
  while IFS= read -r name; do vars+=("$name=${!name}"); done < <(agent_env_names)
  vars+=("PATH=$AGENT_FILES/bin:$PATH" "HOME=$AGENT_HOME" "TMPDIR=$AGENT_HOME/tmp" "RALPH_HOME=$RALPH_HOME"
    "RALPH_WORKSPACE=$dir" "RALPH_PROMPT_FILE=$prompt_file" "RALPH_MODEL_ID=$model"
    "RALPH_TASK_ID=${RALPH_TASK_ID:-}" "RALPH_AGENT_ID=${RALPH_AGENT_ID:-}" "RALPH_WORKER_PID=$$")
  # The claim's token (`task claim` left it in the state directory): how
  # the store knows which task the agent's `task` commands act for. A UUID
  # only: matched, never evaluated.
  local token=""
  [[ ! -r $RALPH_STATE_DIR/task-token ]] || IFS= read -r token <"$RALPH_STATE_DIR/task-token" || true
  [[ ! $token =~ ^[0-9a-f-]{36}$ ]] || vars+=("RALPH_TASK_TOKEN=$token")
  if [[ -n ${RALPH_AGENT_DB_URL:-} ]]; then
    vars+=("RALPH_DB_URL=$RALPH_AGENT_DB_URL")
    [[ -z ${RALPH_AGENT_DB_PASSWORD:-} ]] || vars+=("PGPASSWORD=$RALPH_AGENT_DB_PASSWORD")
  fi
  set -m
  (
    workspace_lock_close
    cd "$dir" || exit 1
    if [[ -n ${RALPH_AGENT_CMD:-} ]]; then
      exec_agent env -i "${vars[@]}" bash -c "$RALPH_AGENT_CMD"
    else
      exec_agent env -i "${vars[@]}" claude -p "$(cat "$prompt_file")" --model "$model" \
        --settings "$AGENT_FILES/settings.json" --dangerously-skip-permissions --output-format text
    fi
  ) </dev/null >"$log_file" &
  AGENT_PID=$! AGENT_GROUP=$!
  set +m
  agent_watch "$$" "$AGENT_PID" "$limit"
}

# exec_agent CMD…: the agent's process becomes CMD, as the agent's user.
exec_agent() { exec "${AGENT_SETPRIV[@]}" "$@"; }

# agent_watch WORKER_PID GROUP LIMIT_SECONDS: a watchdog in its own process
# group that kills GROUP when WORKER_PID is gone (exited, or a zombie nobody
# reaped yet), and ends when GROUP does. When GROUP runs past LIMIT_SECONDS
# it writes agent-timeout in RALPH_STATE_DIR and tells the worker (SIGUSR2:
# the worker stops the agent, agent_stop, and fails the attempt); should
# GROUP still run RALPH_AGENT_STOP_SECONDS + 5 s later, it kills it itself.
agent_watch() {
  local worker=$1 group=$2 limit_ms=$(($3 * 1000)) grace_ms
  env_uint RALPH_AGENT_STOP_SECONDS 3 0 3600
  grace_ms=$(((ENV_UINT + 5) * 1000))
  set -m
  (
    workspace_lock_close
    now_ms
    deadline=$((NOW_MS + limit_ms)) told=0
    while process_alive "$worker"; do
      kill -0 -- "-$group" 2>/dev/null || exit 0
      now_ms
      if ((NOW_MS >= deadline + grace_ms)); then
        kill -KILL -- "-$group" 2>/dev/null || true
      elif ((NOW_MS >= deadline && !told)); then
        told=1
        [[ -z ${RALPH_STATE_DIR:-} ]] || printf '%s\n' "$3" >"$RALPH_STATE_DIR/agent-timeout" || true
        kill -USR2 "$worker" 2>/dev/null || true
      fi
      sleep 0.5
    done
    kill -KILL -- "-$group" 2>/dev/null || true
    privsep_sweep
  ) </dev/null >/dev/null 2>&1 &
  AGENT_WATCH_PID=$!
  set +m
}

# agent_wait: waits for the agent; returns its exit status.
agent_wait() {
  local rc=0
  [[ -z $AGENT_PID ]] || wait "$AGENT_PID" || rc=$?
  # A signal (the lease lost) interrupts the wait: the handler stopped the agent.
  [[ -z $AGENT_PID ]] || ! kill -0 "$AGENT_PID" 2>/dev/null || { wait "$AGENT_PID" || rc=$?; }
  AGENT_PID=""
  agent_unwatch
  return "$rc"
}

# process_alive PID: the process exists and is not a zombie.
process_alive() {
  local stat
  if [[ -r /proc/$1/stat ]]; then
    stat=$(<"/proc/$1/stat") 2>/dev/null || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != Z ]]
  else
    kill -0 "$1" 2>/dev/null
  fi
}

agent_unwatch() {
  [[ -n $AGENT_WATCH_PID ]] || return 0
  kill -- "-$AGENT_WATCH_PID" 2>/dev/null || true
  wait "$AGENT_WATCH_PID" 2>/dev/null || true
  AGENT_WATCH_PID=""
}

# agent_finish: after every attempt, however it ended: nothing the agent
# started runs on (its process group; with separation every process of its
# user, also what it detached with setsid), what it made in the tree is the
# worker's to commit and reset (privsep_reclaim), and its home is gone.
agent_finish() {
  [[ -z $AGENT_GROUP ]] || kill -KILL -- "-$AGENT_GROUP" 2>/dev/null || true
  AGENT_GROUP=""
  privsep_sweep || true
  privsep_reclaim "$(workspace_dir)"
  agent_home_remove
}

# agent_stop: TERM to the agent's process group, KILL after a grace period
# (RALPH_AGENT_STOP_SECONDS, default 3, checked before it is used).
agent_stop() {
  [[ -n ${AGENT_PID:-} ]] || return 0
  env_uint RALPH_AGENT_STOP_SECONDS 3 0 3600
  group_stop "$AGENT_PID" "$ENV_UINT"
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
}

# group_stop PGID SECONDS: SIGTERM to the process group, SIGKILL to what is
# left of it after SECONDS.
group_stop() {
  local i
  kill -TERM -- "-$1" 2>/dev/null || true
  for ((i = 0; i < $2 * 10; i++)); do
    kill -0 -- "-$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$1" 2>/dev/null || true
}
