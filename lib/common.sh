#!/usr/bin/env bash
# Shared by `task`, `ralph.sh` and the hooks: messages, exit codes, checks.

# Exit codes (documented in `task --help` and `ralph.sh --help`).
readonly EXIT_OK=0
readonly EXIT_ERROR=1          # the database said no, or something failed
readonly EXIT_USAGE=2          # bad input: fix the command line
readonly EXIT_NOTHING=3        # claim: nothing claimable right now
readonly EXIT_NOT_FOUND=4      # no such task (or agent)
export EXIT_OK EXIT_ERROR EXIT_USAGE EXIT_NOTHING EXIT_NOT_FOUND

RALPH_PROG=${RALPH_PROG:-ralph}

log() { printf '%s: %s\n' "$RALPH_PROG" "$*" >&2; }

# die CODE MESSAGE: one line naming the problem and the fix.
die() {
  local code=$1
  shift
  printf '%s: %s\n' "$RALPH_PROG" "$*" >&2
  exit "$code"
}

usage_error() { die "$EXIT_USAGE" "$*"; }

require_value() { # require_value FLAG VALUE
  [[ -n ${2:-} ]] || usage_error "$1 needs a value"
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# json_string VALUE: VALUE as a JSON string.
json_string() { jq -Rn --arg v "$1" '$v'; }
