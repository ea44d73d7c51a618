#!/usr/bin/env bash
# The container entrypoint (/opt/ralph/docker/entrypoint.sh in the images).
# Started as root (the images' default), it drops at once to the worker's
# user RALPH_WORKER_USER, keeping CAP_SETUID, CAP_SETGID and CAP_KILL only,
# so the worker can run its agent as RALPH_AGENT_USER (lib/privsep.sh);
# started as another user it goes on as that user (the agent then runs as
# the worker's user, and the worker says so).
# --help and --version need no environment. Otherwise: check the whole
# environment first (one message naming every problem, exit 2, before any
# wait), wait for PostgreSQL with pg_isready (bounded by
# RALPH_DB_WAIT_SECONDS; 0: no bound), apply the schema, set the git
# identity, and exec ralph.sh with the container's arguments, so the worker
# is the process signals reach.
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
RALPH_PROG="ralph-entrypoint"
# shellcheck source=lib/common.sh
source "$RALPH_HOME/lib/common.sh"
# shellcheck source=lib/privsep.sh
source "$RALPH_HOME/lib/privsep.sh"

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

# Root only for as long as it takes to drop to the worker's user.
if ((EUID == 0)) && [[ -n ${RALPH_WORKER_USER:-} ]]; then
  privsep_drop "$(readlink -f "${BASH_SOURCE[0]}")" "$@"
fi

# Every problem with the environment, in one message, before anything waits:
# a container that would fail after a minute's wait fails now, and says all
# that needs fixing at once.
problems=()
if [[ -z ${RALPH_DB_URL:-} ]]; then
  problems+=("RALPH_DB_URL is not set: pass -e RALPH_DB_URL=postgresql://USER@HOST:5432/DATABASE (and the password in -e PGPASSWORD)")
elif ! db_url_parts "$RALPH_DB_URL"; then
  problems+=("RALPH_DB_URL: $DB_URL_ERROR")
fi
if [[ $cmd == build ]]; then
  [[ -n ${RALPH_REPO_URL:-} ]] \
    || problems+=("RALPH_REPO_URL is not set: pass -e RALPH_REPO_URL=<the git repository the worker changes>")
  # Claude Code's credentials: an API key, an OAuth token, or the file
  # `claude login` writes (in CLAUDE_CONFIG_DIR, else ~/.claude). Another
  # agent (RALPH_AGENT_CMD) brings its own.
  if [[ -z ${RALPH_AGENT_CMD:-} && -z ${ANTHROPIC_API_KEY:-} && -z ${CLAUDE_CODE_OAUTH_TOKEN:-} ]]; then
    credentials="" looked="no credentials file (HOME and CLAUDE_CONFIG_DIR are unset)"
    if [[ -n ${CLAUDE_CONFIG_DIR:-} ]]; then
      credentials=$CLAUDE_CONFIG_DIR/.credentials.json
    elif [[ -n ${HOME:-} ]]; then
      credentials=$HOME/.claude/.credentials.json
    fi
    [[ -z $credentials ]] || looked="no readable $credentials"
    if [[ -z $credentials || ! -r $credentials ]]; then
      problems+=("no credentials for Claude Code: ANTHROPIC_API_KEY and CLAUDE_CODE_OAUTH_TOKEN are unset and there is $looked: pass -e ANTHROPIC_API_KEY (or -e CLAUDE_CODE_OAUTH_TOKEN, or mount the credentials file), or set RALPH_AGENT_CMD to another agent")
    fi
  fi
fi
# The numbers the entrypoint and the worker read: NAME DEFAULT MIN MAX.
wait_seconds=60
for spec in "RALPH_DB_WAIT_SECONDS 60 0 86400" "RALPH_LEASE_SECONDS 300 1 86400" "RALPH_MAX_ATTEMPTS 3 1 1000" \
  "RALPH_RETRY_BASE_SECONDS 30 0 86400" "RALPH_RETRY_MAX_SECONDS 900 0 86400" "RALPH_IDLE_MIN_SECONDS 2 0 3600" \
  "RALPH_IDLE_MAX_SECONDS 60 0 86400" "RALPH_AGENT_TIMEOUT_SECONDS 3600 1 604800" "RALPH_AGENT_STOP_SECONDS 3 0 3600" \
  "RALPH_GIT_TIMEOUT_SECONDS 300 1 86400" \
  "RALPH_STOP_CONNECT_TIMEOUT 3 0 3600" "PGCONNECT_TIMEOUT 5 0 3600"; do
  read -r name default min max <<<"$spec"
  if ! env_uint_check "$name" "$default" "$min" "$max"; then
    problems+=("$ENV_UINT_ERROR")
  elif [[ $name == RALPH_DB_WAIT_SECONDS ]]; then
    wait_seconds=$ENV_UINT
  fi
done
if ((${#problems[@]})); then
  printf 'ralph-entrypoint: %s\n' "${problems[@]}" >&2
  exit 2
fi

command -v pg_isready >/dev/null \
  || fail 1 "pg_isready is not installed: install the PostgreSQL client"
# 0 waits as long as it takes (the status-server images: their /healthz
# tells the orchestrator the truth meanwhile, instead of a restart loop).
deadline=$((SECONDS + wait_seconds))
next_note=$((SECONDS + 30))
# pg_isready only asks whether the server accepts connections: it needs no
# password, and gets the URL without one (ps shows every command line).
until pg_isready -q -d "$DB_URL_NOPW" -t 2; do
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
