#!/usr/bin/env bash
# Agent start benchmark: what privilege separation adds to each attempt.
# Times, RUNS times each, one attempt's agent lifecycle as the worker runs
# it (lib/agent.sh): a fresh home with the skills, the agent started (a
# stand-in that exits at once) and waited for, and everything after it
# (every process of its user stopped, the tree reclaimed, the home and what
# it left removed): once as the worker's own user, once as another user
# (RALPH_AGENT_USER). Prints the median and p90 of each in ms, and the
# difference. Figures, not a pass/fail test.
#
#   bash test/worker/bench-agent-start.sh [--runs N] [--agent-user USER]
#
# Needs root (to switch users) and USER (default ralph-test-agent, which
# scripts/setup-host.sh makes).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
runs=20
user=ralph-test-agent
while (($#)); do
  case $1 in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --agent-user) user=${2:?--agent-user needs a user}; shift 2 ;;
    -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench-agent-start: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench-agent-start: --runs needs a positive number" >&2; exit 2; }
((EUID == 0)) || { echo "bench-agent-start: run it as root (it switches to $user)" >&2; exit 2; }
id "$user" >/dev/null 2>&1 || { echo "bench-agent-start: no user $user: run scripts/setup-host.sh or pass --agent-user" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/ralph-bench-agent.XXXXXX")
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tmp" "$work/tree" "$work/state"
chmod 1777 "$work/tmp"

export RALPH_HOME=$root RALPH_PROG=bench RALPH_WORKSPACE=$work/tree RALPH_STATE_DIR=$work/state TMPDIR=$work/tmp
export RALPH_AGENT_CMD=true
# shellcheck source=lib/common.sh
source "$root/lib/common.sh"
# shellcheck source=lib/privsep.sh
source "$root/lib/privsep.sh"
# shellcheck source=lib/workspace.sh
source "$root/lib/workspace.sh"
# shellcheck source=lib/agent.sh
source "$root/lib/agent.sh"
agent_files "$work/files"
echo prompt >"$AGENT_FILES/prompt.txt"

# lifecycle: one attempt's agent, start to finish (ms in MS; the clock in
# microseconds: /proc/uptime's 10 ms are too coarse here).
lifecycle() {
  local t0=${EPOCHREALTIME/./}
  agent_start "$AGENT_FILES/prompt.txt" model "$work/agent.log" 60
  agent_wait || true
  agent_finish
  MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
}

# measure LABEL: RUNS lifecycles; prints the median and p90, sets MEDIAN.
measure() {
  local i all=()
  for ((i = 0; i < runs; i++)); do
    lifecycle
    all+=("$MS")
  done
  mapfile -t all < <(printf '%s\n' "${all[@]}" | sort -n)
  MEDIAN=${all[$(((runs - 1) / 2))]}
  printf '%-34s median %5d ms   p90 %5d ms   (%d runs)\n' "$1" "$MEDIAN" "${all[$(((runs * 9 + 9) / 10 - 1))]}" "$runs"
}

unset RALPH_AGENT_USER
privsep_init
measure "as the worker's user"
same=$MEDIAN
RALPH_AGENT_USER=$user
privsep_init
((PRIVSEP)) || { echo "bench-agent-start: no separation: $PRIVSEP_WHY" >&2; exit 1; }
measure "as $user (privilege separation)"
printf 'added by privilege separation: %d ms a start (median)\n' "$((MEDIAN - same))"
