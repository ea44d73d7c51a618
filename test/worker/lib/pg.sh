#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests: initdb in a temp dir, a free loopback
# port, run as the unprivileged `postgres` user when the tests run as root
# (initdb refuses root). pg_start exports PG_TEST_URL; pg_stop removes it all.

PG_BIN=${PG_BIN:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)}

pg_as_owner() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

pg_start() {
  [[ -x $PG_BIN/initdb ]] || { echo "pg: no PostgreSQL server binaries (apt-get install postgresql)" >&2; return 1; }
  PG_TEST_DIR=$(mktemp -d /tmp/ralph-pg.XXXXXX)
  chmod 0755 "$PG_TEST_DIR"
  ((EUID != 0)) || chown postgres:postgres "$PG_TEST_DIR"
  PG_TEST_PORT=$(pg_free_port)
  pg_as_owner "$PG_BIN/initdb" -D "$PG_TEST_DIR/data" -U ralph --auth=trust -E UTF8 >"$PG_TEST_DIR/initdb.log" 2>&1 \
    || { cat "$PG_TEST_DIR/initdb.log" >&2; return 1; }
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $PG_TEST_PORT -k $PG_TEST_DIR -c fsync=off -c synchronous_commit=off -c max_connections=200" start >/dev/null \
    || { cat "$PG_TEST_DIR/server.log" >&2; return 1; }
  export PG_TEST_DIR PG_TEST_PORT
  export PG_TEST_URL="postgresql://ralph@127.0.0.1:$PG_TEST_PORT"
}

pg_stop() {
  [[ -n ${PG_TEST_DIR:-} && -d $PG_TEST_DIR ]] || return 0
  pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_TEST_DIR"
}

# pg_new_db NAME: a fresh database; prints its URL.
pg_new_db() {
  psql "$PG_TEST_URL/postgres" -X -q -c "CREATE DATABASE \"$1\"" >/dev/null
  printf '%s/%s\n' "$PG_TEST_URL" "$1"
}
