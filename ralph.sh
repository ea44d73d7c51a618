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
# shellcheck source=lib/privsep.sh
source "$RALPH_HOME/lib/privsep.sh"
# shellcheck source=lib/workspace.sh
source "$RALPH_HOME/lib/workspace.sh"
# shellcheck source=lib/agent.sh
source "$RALPH_HOME/lib/agent.sh"
# shellcheck source=lib/worker.sh
source "$RALPH_HOME/lib/worker.sh"

ralph_usage() {
  cat <<'USAGE'
usage: ralph.sh [--model ALIAS] COMMAND [ARGS]

Commands:
  build [--max-iterations N] [--until-empty]   the worker loop (ralph.sh build --help)
  task ARGS…                                   the task store CLI (ralph.sh task --help)
  init                                         apply the task store schema
  models                                       the model aliases (models.json)

Options:
  --model ALIAS   the model for build: an alias from models.json (default: its
                  "default"; also RALPH_MODEL)
  --help          this text
  --version       ralph's version

Needs RALPH_DB_URL; build also needs RALPH_REPO_URL. Every variable ralph
reads is documented in .env.example.

Exit codes: 0 ok, 1 error, 2 bad input (the command line or the environment);
`task` adds 3 (nothing to claim) and 4 (unknown task or agent).
USAGE
}

# --model ALIAS: refused at once when models.json doesn't know it.
ralph_set_model() {
  model_id "$1" >/dev/null
  export RALPH_MODEL=$1
}

main() {
  while (($#)); do
    case $1 in
      -h | --help) ralph_usage; return 0 ;;
      --version) echo "ralph $RALPH_VERSION"; return 0 ;;
      --model) require_value "$1" "${2:-}"; ralph_set_model "$2"; shift 2 ;;
      --model=*) ralph_set_model "${1#--model=}"; shift ;;
      -*) usage_error "unknown option '$1': see ralph.sh --help" ;;
      *) break ;;
    esac
  done
  (($#)) || { ralph_usage >&2; return "$EXIT_USAGE"; }
  local cmd=$1
  shift
  case $cmd in
    build) worker_build "$@" ;;
    task) exec "$RALPH_HOME/task" "$@" ;;
    init) exec "$RALPH_HOME/task" init "$@" ;;
    models) models_list ;;
    help) ralph_usage ;;
    version) echo "ralph $RALPH_VERSION" ;;
    *) usage_error "unknown command '$cmd': see ralph.sh --help" ;;
  esac
}

main "$@"
