#!/usr/bin/env bash
# Claude Code SessionEnd hook: finalizes the worker's view of the session.
# The worker normally records the result itself when the agent exits; if the
# worker is gone (killed while its agent ran on), the session's end releases
# the task so another worker can take it now instead of after the lease.
# Reads the hook's JSON ({session_id, reason, …}) on stdin; never blocks.
set -uo pipefail

input=$(cat)
reason=$(jq -r '.reason // "unknown"' <<<"$input" 2>/dev/null || echo unknown)
state=${RALPH_STATE_DIR:-}
if [[ -n $state && -d $state ]]; then
  jq -nc --arg reason "$reason" --arg task "${RALPH_TASK_ID:-}" '{reason: $reason, task: $task}' \
    >"$state/session-end.json" 2>/dev/null || true
fi

if [[ -n ${RALPH_TASK_ID:-} && -n ${RALPH_AGENT_ID:-} && -n ${RALPH_WORKER_PID:-} ]] \
  && ! kill -0 "$RALPH_WORKER_PID" 2>/dev/null; then
  "${RALPH_HOME:-/opt/ralph}/task" release "$RALPH_TASK_ID" --agent "$RALPH_AGENT_ID" >/dev/null 2>&1 || true
fi
exit 0
