#!/usr/bin/env bash
# The agent that works a task: Claude Code by default (`claude -p` with the
# task prompt, the model from models.json, our skills and hooks), or
# RALPH_AGENT_CMD, a command run by bash instead (the stand-in the tests use,
# or another agent). It runs in the workspace, in a process group of its own,
# so stopping it reaches everything it started.
# Needs lib/common.sh and lib/workspace.sh.

AGENT_PID=""
AGENT_WATCH_PID=""

# agent_prompt TASK_JSON: the prompt for one task.
agent_prompt() {
  jq -r '
    "You are a ralph worker. Work exactly one task, in this git repository (your working directory).\n\n" +
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

# agent_install_skills: our skills where Claude Code finds personal skills
# (~/.claude/skills/NAME/SKILL.md).
agent_install_skills() {
  local dest="${HOME:-/tmp}/.claude/skills"
  if mkdir -p "$dest" 2>/dev/null && cp -R "$RALPH_HOME/skills/." "$dest/" 2>/dev/null; then
    return 0
  fi
  log "cannot write $dest: the agent runs without ralph's skills (make HOME writable)"
}

# agent_tools_dir DIR: `ralph` and `task` on the agent's PATH.
agent_tools_dir() {
  mkdir -p "$1"
  ln -sfn "$RALPH_HOME/ralph.sh" "$1/ralph"
  ln -sfn "$RALPH_HOME/task" "$1/task"
}

# agent_start PROMPT_FILE MODEL_ID SETTINGS_FILE LOG_FILE LIMIT_SECONDS:
# starts the agent in the background, in the workspace, in its own process
# group (job control on for the launch: no setsid(1) needed); sets
# AGENT_PID, which is also the group id. Its stdout goes to LOG_FILE, its
# stderr to ours. Its environment holds no database credential of the
# worker's: only the agent role's (RALPH_AGENT_DB_URL,
# RALPH_AGENT_DB_PASSWORD), when given. A watchdog kills its process group
# when the worker is gone (a SIGKILL leaves no agent spending behind it),
# and tells the worker when it runs past LIMIT_SECONDS (agent_watch).
agent_start() {
  local prompt_file=$1 model=$2 settings=$3 log_file=$4 limit=$5 dir
  dir=$(workspace_dir)
  export RALPH_PROMPT_FILE=$prompt_file RALPH_MODEL_ID=$model
  set -m
  (
    cd "$dir" || exit 1
    agent_environment
    if [[ -n ${RALPH_AGENT_CMD:-} ]]; then
      exec bash -c "$RALPH_AGENT_CMD"
    else
      exec claude -p "$(cat "$prompt_file")" --model "$model" --settings "$settings" \
        --dangerously-skip-permissions --output-format text
    fi
  ) </dev/null >"$log_file" &
  AGENT_PID=$!
  set +m
  agent_watch "$$" "$AGENT_PID" "$limit"
}

# In the agent's subshell: the worker's database connection out, the agent
# role's in (the names through which libpq and `task` find a connection).
agent_environment() {
  local agent_url=${RALPH_AGENT_DB_URL:-} agent_password=${RALPH_AGENT_DB_PASSWORD:-}
  unset RALPH_DB_URL RALPH_AGENT_DB_URL RALPH_AGENT_DB_PASSWORD PGPASSWORD PGPASSFILE PGSERVICE PGSERVICEFILE \
    PGUSER PGHOST PGHOSTADDR PGPORT PGDATABASE PGSSLKEY PGSSLCERT
  if [[ -n $agent_url ]]; then
    export RALPH_DB_URL=$agent_url
    [[ -z $agent_password ]] || export PGPASSWORD=$agent_password
  fi
}

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

# agent_stop: TERM to the agent's process group, KILL after a grace period
# (RALPH_AGENT_STOP_SECONDS, default 3, checked before it is used).
agent_stop() {
  [[ -n ${AGENT_PID:-} ]] || return 0
  env_uint RALPH_AGENT_STOP_SECONDS 3 0 3600
  local i tenths=$((ENV_UINT * 10))
  kill -TERM -- "-$AGENT_PID" 2>/dev/null || true
  for ((i = 0; i < tenths; i++)); do
    kill -0 -- "-$AGENT_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
}
