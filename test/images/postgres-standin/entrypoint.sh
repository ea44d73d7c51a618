#!/usr/bin/env bash
# The official postgres image's first-start contract, in small: initialize
# PGDATA when empty with POSTGRES_USER/POSTGRES_PASSWORD/POSTGRES_DB, listen on
# all addresses with password auth, then exec the server (signals reach it).
set -euo pipefail

# Options go to the server; --version and --help need no password and no data
# directory (as in the official image).
if [[ ${1:-} == -* ]]; then
  set -- postgres "$@"
fi
if [[ ${1:-} == postgres && " ${*:2} " =~ \ (--version|-V|--help|-\?|--describe-config|-C)\  ]]; then
  exec "$@"
fi

: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required: set it in the environment}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --username="$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
  rm -f "$pwfile"
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [[ $db != postgres ]]; then
    postgres --single -D "$PGDATA" -j postgres <<<"CREATE DATABASE \"$db\" OWNER \"$user\";" >/dev/null
  fi
fi

if [[ ${1:-} == postgres ]]; then
  shift
  exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
