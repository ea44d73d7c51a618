#!/usr/bin/env bash
# Entrypoint of the Python-runtime images: starts the status server when
# RALPH_STATUS_ADDR is set, then becomes the worker entrypoint (exec, so the
# worker stays the direct child of tini, which forwards signals to the whole
# process group: the worker and the status server both get SIGTERM).
set -euo pipefail

# Started as root: the status server and the worker run as the worker's
# user (lib/privsep.sh), never as root.
if ((EUID == 0)) && [[ -n ${RALPH_WORKER_USER:-} ]]; then
  RALPH_PROG=ralph-status
  # shellcheck source=lib/common.sh
  source "${RALPH_HOME:-/opt/ralph}/lib/common.sh"
  # shellcheck source=lib/privsep.sh
  source "${RALPH_HOME:-/opt/ralph}/lib/privsep.sh"
  privsep_drop "$(readlink -f "${BASH_SOURCE[0]}")" "$@"
fi

if [[ -n ${RALPH_STATUS_ADDR:-} ]]; then
  python -m ralph_status "$RALPH_STATUS_ADDR" &
  # With a status server the worker waits for the database as long as it
  # takes (unless told otherwise): /healthz answers 503 meanwhile, so the
  # orchestrator sees the truth and the container doesn't exit and restart
  # in a loop.
  export RALPH_DB_WAIT_SECONDS=${RALPH_DB_WAIT_SECONDS:-0}
fi
exec "${RALPH_HOME:-/opt/ralph}/docker/entrypoint.sh" "$@"
