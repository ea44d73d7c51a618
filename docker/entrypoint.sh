#!/usr/bin/env bash
# Container entrypoint: --help and --version need nothing; otherwise check the
# required variables, wait for PostgreSQL (bounded), apply the schema, set the
# git identity, and exec ralph.sh with the container's arguments (so signals
# reach the worker directly).
set -euo pipefail

RALPH_HOME=${RALPH_HOME:-$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)}
export RALPH_HOME
ralph="$RALPH_HOME/ralph.sh"

fail() {
  printf 'ralph-entrypoint: %s\n' "$*" >&2
  exit 2
}

(($#)) || set -- build
for arg in "$@"; do
  case $arg in
    -h | --help | help | --version) exec "$ralph" "$@" ;;
  esac
done

[[ -n ${RALPH_DB_URL:-} ]] || fail "RALPH_DB_URL is not set: pass -e RALPH_DB_URL=postgresql://USER:PASSWORD@HOST:5432/DATABASE"
if [[ " $* " == *" build "* ]]; then
  [[ -n ${RALPH_REPO_URL:-} ]] || fail "RALPH_REPO_URL is not set: pass -e RALPH_REPO_URL=<the git repository to work on>"
fi

wait_seconds=${RALPH_DB_WAIT_SECONDS:-60}
[[ $wait_seconds =~ ^[0-9]+$ ]] || fail "RALPH_DB_WAIT_SECONDS='$wait_seconds' is not a number of seconds"
deadline=$((SECONDS + wait_seconds))
until pg_isready -q -d "$RALPH_DB_URL" -t 2; do
  if ((SECONDS >= deadline)); then
    printf 'ralph-entrypoint: PostgreSQL did not answer within %ss (RALPH_DB_URL): check that the database is up and reachable, or raise RALPH_DB_WAIT_SECONDS\n' "$wait_seconds" >&2
    exit 1
  fi
  sleep 1
done

"$ralph" init

# Through the environment: works with a read-only HOME too.
export GIT_AUTHOR_NAME=${RALPH_GIT_NAME:-ralph}
export GIT_AUTHOR_EMAIL=${RALPH_GIT_EMAIL:-ralph@localhost}
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME
export GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL

exec "$ralph" "$@"
