#!/usr/bin/env bash
# The agent that works a task: Claude Code by default (`claude -p` with the
# task prompt, the model from models.json, our skills and hooks), or
# RALPH_AGENT_CMD, a command run by bash instead (the stand-in the tests use,
# or another agent). It runs in the workspace, in a process group of its own,
# so stopping it reaches everything it started.
# Needs lib/common.sh and lib/workspace.sh.

AGENT_PID=""

# agent_prompt TASK_JSON: the prompt for one task.
agent_prompt() {
  jq -r '
    "You are a ralph worker. Work exactly one task, in this git repository (your working directory).\n\n" +
    "Task \(.id) [\(.category), priority \(.priority)]\n\n\(.description)\n" +
    (if (.steps | length) > 0 then "\nSteps:\n" + (.steps | map("- " + .) | join("\n")) + "\n" else "" end) +
    (if .spec_ref then "\nSpecification: \(.spec_ref)\n" else "" end) +
    (if .retry_count > 0 then "\nThis is attempt \(.retry_count + 1): an earlier worker stopped before finishing.\n" else "" end) +
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

# agent_start PROMPT_FILE MODEL_ID SETTINGS_FILE LOG_FILE: starts the agent
# in the background, in the workspace, in its own process group (job control
# on for the launch: no setsid(1) needed); sets AGENT_PID, which is also the
# group id. Its stdout goes to LOG_FILE, its stderr to ours.
agent_start() {
  local prompt_file=$1 model=$2 settings=$3 log_file=$4 dir
  dir=$(workspace_dir)
  export RALPH_PROMPT_FILE=$prompt_file RALPH_MODEL_ID=$model
  set -m
  if [[ -n ${RALPH_AGENT_CMD:-} ]]; then
    (cd "$dir" && exec bash -c "$RALPH_AGENT_CMD") </dev/null >"$log_file" &
  else
    (cd "$dir" && exec claude -p "$(cat "$prompt_file")" --model "$model" --settings "$settings" \
      --dangerously-skip-permissions --output-format text) </dev/null >"$log_file" &
  fi
  AGENT_PID=$!
  set +m
}

# agent_wait: waits for the agent; returns its exit status.
agent_wait() {
  local rc=0
  wait "$AGENT_PID" || rc=$?
  AGENT_PID=""
  return "$rc"
}

# agent_stop: TERM to the agent's process group, KILL after a grace period
# (RALPH_AGENT_STOP_SECONDS, default 3).
agent_stop() {
  [[ -n ${AGENT_PID:-} ]] || return 0
  kill -TERM -- "-$AGENT_PID" 2>/dev/null || true
  local i tenths=$((${RALPH_AGENT_STOP_SECONDS:-3} * 10))
  for ((i = 0; i < tenths; i++)); do
    kill -0 -- "-$AGENT_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
}
