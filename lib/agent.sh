#!/usr/bin/env bash
# The agent that works a task: Claude Code by default (`claude -p` with the
# task prompt, the model from models.json, our skills and hooks), or
# RALPH_AGENT_CMD, the stand-in tests and other agents use. It runs in the
# workspace, in a process group of its own so a stop reaches all of it.

# agent_prompt ROW_JSON: the prompt for one task.
agent_prompt() {
  jq -r '
    "You are a ralph worker. Work exactly one task, in this git repository (your working directory).\n\n" +
    "Task \(.id) [\(.category), priority \(.priority)]\n\n\(.description)\n" +
    (if (.steps | length) > 0 then "\nSteps:\n" + (.steps | map("- " + .) | join("\n")) + "\n" else "" end) +
    (if .spec_ref then "\nSpecification: \(.spec_ref)\n" else "" end) +
    "\nFollow the ralph-build skill. Make the change, run the relevant tests, and stop when the task is done.\n" +
    "Do not commit or push: the worker commits your changes and records the result.\n"' <<<"$1"
}

# agent_settings FILE: Claude Code settings installing our hooks.
agent_settings() {
  jq -n --arg hooks "$RALPH_HOME/hooks" '{
    hooks: {
      PreToolUse: [{matcher: "Bash|Write|Edit|MultiEdit|NotebookEdit",
                    hooks: [{type: "command", command: ($hooks + "/pre-tool-use.sh")}]}],
      SessionEnd: [{hooks: [{type: "command", command: ($hooks + "/session-end.sh")}]}]
    }
  }' >"$1"
}

# agent_install_skills: our skills where Claude Code finds them (~/.claude/skills).
agent_install_skills() {
  local dest="${HOME:-/tmp}/.claude/skills"
  if mkdir -p "$dest" 2>/dev/null; then
    cp -R "$RALPH_HOME/skills/." "$dest/"
  else
    log "cannot write $dest: the agent runs without ralph's skills"
  fi
}

# agent_start PROMPT_FILE MODEL_ID SETTINGS_FILE: starts the agent in the
# background; sets AGENT_PID (also its process group id).
agent_start() {
  local prompt_file=$1 model=$2 settings=$3
  export RALPH_PROMPT_FILE=$prompt_file RALPH_MODEL_ID=$model
  cd "$(workspace_dir)" || return 1
  if [[ -n ${RALPH_AGENT_CMD:-} ]]; then
    setsid bash -c "$RALPH_AGENT_CMD" </dev/null &
  else
    setsid claude -p "$(cat "$prompt_file")" --model "$model" --settings "$settings" \
      --dangerously-skip-permissions --output-format text </dev/null &
  fi
  AGENT_PID=$!
  cd - >/dev/null || true
}

# agent_stop: TERM to the agent's process group, KILL after a grace period.
agent_stop() {
  [[ -n ${AGENT_PID:-} ]] || return 0
  kill -TERM -- "-$AGENT_PID" 2>/dev/null || true
  local i
  for ((i = 0; i < 30; i++)); do
    kill -0 "$AGENT_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL -- "-$AGENT_PID" 2>/dev/null || true
  wait "$AGENT_PID" 2>/dev/null || true
  AGENT_PID=""
}
