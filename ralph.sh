#!/usr/bin/env bash
# ralph: an autonomous coding worker. A thin dispatcher over lib/*.sh.
set -euo pipefail

RALPH_HOME=${RALPH_HOME:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)}
export RALPH_HOME
RALPH_PROG=ralph
# shellcheck source=lib/common.sh
source "$RALPH_HOME/lib/common.sh"
# shellcheck source=lib/version.sh
source "$RALPH_HOME/lib/version.sh"
# shellcheck source=lib/db.sh
source "$RALPH_HOME/lib/db.sh"
# shellcheck source=lib/models.sh
source "$RALPH_HOME/lib/models.sh"
# shellcheck source=lib/workspace.sh
source "$RALPH_HOME/lib/workspace.sh"
# shellcheck source=lib/agent.sh
source "$RALPH_HOME/lib/agent.sh"
# shellcheck source=lib/worker.sh
source "$RALPH_HOME/lib/worker.sh"

ralph_usage() {
  cat <<'USAGE'
usage: ralph.sh [--model ALIAS] COMMAND [ARGS]

  build [--max-iterations N] [--until-empty]   the worker loop
  task ARGS…                                   the task CLI (task --help)
  init                                         apply the task store schema
  --help | --version

The model alias comes from models.json (--model or RALPH_MODEL; default: its
"default"). Needs RALPH_DB_URL; build also needs RALPH_REPO_URL. Every
variable is documented in .env.example.
Exit codes: 0 ok, 1 error, 2 bad input.
USAGE
}

main() {
  while (($#)); do
    case $1 in
      -h | --help) ralph_usage; return 0 ;;
      --version) echo "ralph $RALPH_VERSION"; return 0 ;;
      --model)
        require_value "$1" "${2:-}"
        model_id "$2" >/dev/null
        export RALPH_MODEL=$2
        shift 2
        ;;
      --model=*) model_id "${1#--model=}" >/dev/null; export RALPH_MODEL=${1#--model=}; shift ;;
      -*) usage_error "unknown option '$1': see ralph.sh --help" ;;
      *) break ;;
    esac
  done
  (($#)) || { ralph_usage >&2; return "$EXIT_USAGE"; }
  local cmd=$1
  shift
  case $cmd in
    build) export RALPH_AGENT_PID=$$; worker_build "$@" ;;
    task) exec "$RALPH_HOME/task" "$@" ;;
    init) db_apply_schema && log "schema applied" ;;
    help) ralph_usage ;;
    *) usage_error "unknown command '$cmd': see ralph.sh --help" ;;
  esac
}

main "$@"
