#!/usr/bin/env bash
# Shared by `task` and `ralph.sh`: messages, exit codes, small checks.

# Exit codes (documented in `task --help` and `ralph.sh --help`).
readonly EXIT_OK=0
readonly EXIT_ERROR=1     # the database is unreachable or said no; something failed
readonly EXIT_USAGE=2     # bad input: fix the command line or the environment
readonly EXIT_NOTHING=3   # claim: nothing claimable right now (not an error)
readonly EXIT_NOT_FOUND=4 # no such task (or agent)
readonly EXIT_NOT_HELD=5  # the task is not held by this agent (its lease was lost or taken)
export EXIT_OK EXIT_ERROR EXIT_USAGE EXIT_NOTHING EXIT_NOT_FOUND EXIT_NOT_HELD

RALPH_PROG=${RALPH_PROG:-ralph}

# log MESSAGE: one line on stderr, prefixed with the program's name.
log() { printf '%s: %s\n' "$RALPH_PROG" "$*" >&2; }

# die CODE MESSAGE: one line naming the problem and the fix, then exit CODE.
die() {
  local code=$1
  shift
  log "$*"
  exit "$code"
}

usage_error() { die "$EXIT_USAGE" "$*"; }

# require_value FLAG VALUE: the flag was given a value.
require_value() {
  [[ -n ${2:-} ]] || usage_error "$1 needs a value"
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# env_uint NAME DEFAULT MIN MAX: sets ENV_UINT to the environment variable
# NAME as a plain decimal number (DEFAULT when it is unset or empty), or
# exits 2 with one line naming the variable, its value and the range. The
# value is only matched and compared, never evaluated: bash arithmetic on an
# environment value would run a command substitution in an array subscript
# (a[$(cmd)]).
env_uint() {
  env_uint_check "$@" || usage_error "$ENV_UINT_ERROR"
}

# env_uint_check NAME DEFAULT MIN MAX: the same, but on a bad value it sets
# ENV_UINT_ERROR to that line and returns 1 (to report several problems at
# once).
env_uint_check() {
  local name=$1 min=$3 max=$4 value shown what="a whole number"
  value=${!name:-}
  shown=${value//[[:cntrl:]]/?} # the message stays one line
  [[ -n $value ]] || value=$2
  [[ $name != *_SECONDS ]] || what="a number of seconds"
  ENV_UINT="" ENV_UINT_ERROR="$name='$shown' is not $what between $min and $max: set $name to one${2:+, or unset it for the default $2}"
  uint_between "$value" "$min" "$max" || return 1
  ENV_UINT=$UINT
}
# shellcheck disable=SC2034 # read by the callers
ENV_UINT="" ENV_UINT_ERROR=""

# uint_between VALUE MIN MAX: VALUE is a whole number in MIN..MAX; sets UINT
# to it as plain decimal. Only matched and compared, never evaluated: leading
# zeros are dropped (bash reads 010 as octal), more than 18 digits refused
# (they would overflow).
uint_between() {
  local digits
  UINT=""
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  digits=${1#"${1%%[!0]*}"}
  digits=${digits:-0}
  ((${#digits} <= 18 && digits >= $2 && digits <= $3)) || return 1
  UINT=$digits
}
UINT=""

# db_url_parts URL: splits a PostgreSQL URL so the password never reaches a
# command line (where `ps` shows it to every user): DB_URL_NOPW is the URL
# without the password (user info and ?password= removed from it), and
# DB_PASSWORD the password, percent-decoded ("" when the URL has none: a
# PGPASSWORD already in the environment then applies). A key=value
# connection string is passed on as it is, unless it holds a password.
# Returns 1, with DB_URL_ERROR set, when the password's percent-encoding is
# broken or a key=value string holds one.
db_url_parts() {
  local url=$1 scheme rest user="" password="" query="" param kept=""
  DB_URL_NOPW=$url DB_PASSWORD="" DB_URL_ERROR=""
  if [[ ! $url =~ ^(postgres(ql)?://)(.*)$ ]]; then
    if [[ $url =~ (^|[[:space:]])password[[:space:]]*= ]]; then
      DB_URL_ERROR="a key=value connection string with password= would put it on psql's command line: use postgresql://USER@HOST:5432/DATABASE and the password in PGPASSWORD"
      return 1
    fi
    return 0
  fi
  scheme=${BASH_REMATCH[1]} rest=${BASH_REMATCH[3]}
  # User info ends at the first @ before the host (as libpq reads it).
  if [[ $rest =~ ^([^@/]*)@(.*)$ ]]; then
    user=${BASH_REMATCH[1]} rest=${BASH_REMATCH[2]}
    if [[ $user == *:* ]]; then
      password=${user#*:}
      user=${user%%:*}
    fi
  fi
  if [[ $rest == *\?* ]]; then
    query=${rest#*\?}
    rest=${rest%%\?*}
    local -a params
    IFS='&' read -r -a params <<<"$query"
    for param in "${params[@]}"; do
      if [[ $param == password=* ]]; then
        password=${param#password=}
      else
        kept+=${kept:+&}$param
      fi
    done
  fi
  DB_URL_NOPW=$scheme${user:+$user@}$rest${kept:+?$kept}
  # %XX sequences only, and no NUL (libpq refuses both too).
  if [[ $password =~ %([^0-9A-Fa-f]|.[^0-9A-Fa-f]|.?$) || $password =~ %00 ]]; then
    DB_URL_ERROR="the password's percent-encoding is broken: write @ as %40, : as %3A, / as %2F, % as %25"
    return 1
  fi
  # Backslashes doubled first, so only the %XX sequences are decoded.
  password=${password//\\/\\\\}
  printf -v DB_PASSWORD '%b' "${password//%/\\x}"
}
# shellcheck disable=SC2034 # read by the callers
DB_URL_NOPW="" DB_PASSWORD="" DB_URL_ERROR=""

# now_ms: sets NOW_MS to a clock in milliseconds that only goes forward
# (/proc/uptime: a change of the wall clock doesn't move it; where there is
# none, the wall clock, EPOCHREALTIME). No fork: the renewer reads it often.
now_ms() {
  local up=""
  if [[ -r /proc/uptime ]] && read -r up _ </proc/uptime && [[ $up =~ ^([0-9]+)\.([0-9]{2})$ ]]; then
    NOW_MS=$((10#${BASH_REMATCH[1]} * 1000 + 10#${BASH_REMATCH[2]} * 10))
    return
  fi
  up=${EPOCHREALTIME/[.,]/}
  [[ $up =~ ^[0-9]+$ ]] || up=${EPOCHSECONDS}000000
  NOW_MS=$((10#$up / 1000))
}
# shellcheck disable=SC2034 # read by the callers
NOW_MS=0

# ms_seconds MS: sets SECS to MS milliseconds as seconds with a fraction
# (what sleep(1) and timeout(1) take), never less than 0.
ms_seconds() {
  local ms=$1
  ((ms >= 0)) || ms=0
  printf -v SECS '%d.%03d' $((ms / 1000)) $((ms % 1000))
}
# shellcheck disable=SC2034 # read by the callers
SECS=0
