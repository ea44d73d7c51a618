#!/usr/bin/env bash
# The container entrypoint (/opt/ralph/docker/entrypoint.sh in the images).
# --help and --version need no environment. Otherwise: check the required
# variables (a message naming the missing one), wait for PostgreSQL with
# pg_isready (bounded by RALPH_DB_WAIT_SECONDS; 0: no bound), apply the schema, set the
# git identity, and exec ralph.sh with the container's arguments, so the
# worker is the process signals reach.
set -euo pipefail

RALPH_HOME=${RALPH_HOME:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)}
export RALPH_HOME
ralph="$RALPH_HOME/ralph.sh"

fail() { # fail CODE MESSAGE
  local code=$1
  shift
  printf 'ralph-entrypoint: %s\n' "$*" >&2
  exit "$code"
}

[[ -x $ralph ]] || fail 1 "$ralph is missing: set RALPH_HOME to where ralph is installed (default /opt/ralph)"

(($#)) || set -- build

# The command ralph.sh will run: the first argument that is not an option
# (or the value of --model).
command_of() {
  while (($#)); do
    case $1 in
      --model) shift 2 || return 0 ;;
      -*) shift ;;
      *) printf '%s\n' "$1"; return 0 ;;
    esac
  done
}
cmd=$(command_of "$@")

# Help and version need nothing.
case " $* " in
  *" --help "* | *" -h "* | *" --version "*) exec "$ralph" "$@" ;;
esac
case $cmd in
  help | version | models) exec "$ralph" "$@" ;;
esac

[[ -n ${RALPH_DB_URL:-} ]] \
  || fail 2 "RALPH_DB_URL is not set: pass -e RALPH_DB_URL=postgresql://USER:PASSWORD@HOST:5432/DATABASE"
if [[ $cmd == build ]]; then
  [[ -n ${RALPH_REPO_URL:-} ]] \
    || fail 2 "RALPH_REPO_URL is not set: pass -e RALPH_REPO_URL=<the git repository the worker changes>"
fi

wait_seconds=${RALPH_DB_WAIT_SECONDS:-60}
[[ $wait_seconds =~ ^[0-9]+$ ]] \
  || fail 2 "RALPH_DB_WAIT_SECONDS='$wait_seconds' is not a number of seconds"
command -v pg_isready >/dev/null \
  || fail 1 "pg_isready is not installed: install the PostgreSQL client"
# 0 waits as long as it takes (the status-server images: their /healthz
# tells the orchestrator the truth meanwhile, instead of a restart loop).
deadline=$((SECONDS + wait_seconds))
next_note=$((SECONDS + 30))
until pg_isready -q -d "$RALPH_DB_URL" -t 2; do
  if ((wait_seconds > 0 && SECONDS >= deadline)); then
    fail 1 "PostgreSQL did not answer within ${wait_seconds}s (RALPH_DB_URL): check that the database is up and reachable, or raise RALPH_DB_WAIT_SECONDS"
  fi
  if ((SECONDS >= next_note)); then
    printf 'ralph-entrypoint: still waiting for PostgreSQL (RALPH_DB_URL)\n' >&2
    next_note=$((SECONDS + 30))
  fi
  sleep 1
done

"$ralph" init

# The git identity, through the environment: works with a read-only root
# filesystem and a read-only or tmpfs HOME alike.
export GIT_AUTHOR_NAME=${GIT_AUTHOR_NAME:-${RALPH_GIT_NAME:-ralph}}
export GIT_AUTHOR_EMAIL=${GIT_AUTHOR_EMAIL:-${RALPH_GIT_EMAIL:-ralph@localhost}}
export GIT_COMMITTER_NAME=${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}
export GIT_COMMITTER_EMAIL=${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}
# A workspace volume owned by another uid is still trusted (git's
# safe.directory, as command-line configuration: no config file written).
workspace=${RALPH_WORKSPACE:-/workspace}
if [[ -z ${GIT_CONFIG_COUNT:-} ]]; then
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=safe.directory GIT_CONFIG_VALUE_0=$workspace
fi

exec "$ralph" "$@"
