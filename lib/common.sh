#!/usr/bin/env bash
# Shared by `task` and `ralph.sh`: messages, exit codes, small checks.

# Exit codes (documented in `task --help` and `ralph.sh --help`).
readonly EXIT_OK=0
readonly EXIT_ERROR=1     # the database is unreachable or said no; something failed
readonly EXIT_USAGE=2     # bad input: fix the command line or the environment
readonly EXIT_NOTHING=3   # claim: nothing claimable right now (not an error)
readonly EXIT_NOT_FOUND=4 # no such task (or agent)
export EXIT_OK EXIT_ERROR EXIT_USAGE EXIT_NOTHING EXIT_NOT_FOUND

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
