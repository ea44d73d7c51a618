#!/usr/bin/env bash
# Claude Code SessionEnd hook: finalizes the worker's side of the session.
# It records why the session ended (RALPH_STATE_DIR/session-end.json, for
# the worker's log). The worker itself commits and records the result when
# the agent exits; but if the worker is gone (killed while its agent ran
# on), the session's end releases the task so another worker can take it
# now instead of when the lease expires.
# Reads the hook's JSON ({session_id, reason, …}) on stdin; never blocks.
set -uo pipefail

here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
task_cli=${RALPH_HOME:-$here/..}/task
# shellcheck source=lib/common.sh
source "$here/../lib/common.sh"

input=$(cat)
reason=$(jq -r '.reason // "unknown"' <<<"$input" 2>/dev/null) || reason=unknown
state=${RALPH_STATE_DIR:-}
if [[ -n $state && -d $state ]]; then
  jq -nc --arg reason "$reason" --arg task "${RALPH_TASK_ID:-}" '{reason: $reason, task: $task}' \
    >"$state/session-end.json" 2>/dev/null || true
fi

if [[ -n ${RALPH_TASK_ID:-} && -n ${RALPH_AGENT_ID:-} && -n ${RALPH_WORKER_PID:-} ]]; then
  # A process id, never 0 or -1: kill -0 would ask about a whole group and
  # take the worker for alive.
  env_uint RALPH_WORKER_PID "" 1 4194304
  # (The agent may run as another user than the worker: kill -0 is then
  # refused, and /proc says whether the worker is there.)
  if ! kill -0 "$ENV_UINT" 2>/dev/null && [[ ! -e /proc/$ENV_UINT ]] \
    && "$task_cli" release "$RALPH_TASK_ID" --agent "$RALPH_AGENT_ID" >/dev/null 2>&1; then
    printf 'ralph: worker %s is gone: released task %s\n' "$ENV_UINT" "$RALPH_TASK_ID" >&2
  fi
fi
exit 0
