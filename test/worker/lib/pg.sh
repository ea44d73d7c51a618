#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests and the benchmark: initdb in a temp
# dir, a free port on 127.0.0.1 only, run as the unprivileged `postgres` user
# when we are root (initdb and postgres refuse to run as root). pg_start
# exports PG_TEST_URL (a superuser URL without a database); pg_stop stops the
# server and removes the directory.

PG_BIN=${PG_BIN:-}
PG_TEST_DIR=${PG_TEST_DIR:-}

pg_find_bin() {
  local dir
  if [[ -z $PG_BIN ]]; then
    for dir in /usr/lib/postgresql/[0-9]*/bin /usr/lib/postgresql/[1-9][0-9]*/bin; do
      [[ -x $dir/initdb ]] && PG_BIN=$dir
    done
  fi
  [[ -n $PG_BIN && -x $PG_BIN/initdb ]] || {
    echo "pg: no PostgreSQL server binaries in /usr/lib/postgresql/*/bin: apt-get install postgresql (or set PG_BIN)" >&2
    return 1
  }
}

pg_as_owner() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# pg_port_in_use PORT: whether something listens on 127.0.0.1:PORT.
pg_port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# pg_init DIR: a new cluster in DIR/data (DIR is created, owned by the
# server's user); superuser `ralph`, trusted on loopback.
pg_init() {
  local dir=$1
  pg_find_bin || return 1
  if ((EUID == 0)) && ! id postgres >/dev/null 2>&1; then
    echo "pg: running as root needs the 'postgres' system user (apt-get install postgresql creates it)" >&2
    return 1
  fi
  mkdir -p "$dir"
  chmod 0755 "$dir"
  ((EUID != 0)) || chown postgres: "$dir"
  if ! pg_as_owner "$PG_BIN/initdb" -D "$dir/data" -U ralph --auth=trust -E UTF8 --no-sync \
    >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    return 1
  fi
}

# pg_run DIR PORT: starts the cluster in DIR on 127.0.0.1:PORT (only).
pg_run() {
  pg_as_owner "$PG_BIN/pg_ctl" -D "$1/data" -l "$1/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $2 -k $1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null 2>&1
}

# pg_halt DIR [MODE]: stops the cluster in DIR, if it runs: immediate by
# default (the tests' end), `fast` for a restart that keeps every commit
# (with synchronous_commit=off an immediate stop loses the last ones).
pg_halt() {
  [[ -f $1/data/postmaster.pid ]] || return 0
  pg_as_owner "$PG_BIN/pg_ctl" -D "$1/data" -m "${2:-immediate}" -w -t 30 stop >/dev/null 2>&1 || true
}

# pg_free_port: a port nobody listens on (a start can still lose a race).
pg_free_port() {
  local port
  while :; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    pg_port_in_use "$port" || break
  done
  printf '%s\n' "$port"
}

pg_start() {
  PG_TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ralph-pg.XXXXXX")
  export PG_TEST_DIR
  pg_init "$PG_TEST_DIR" || return 1
  # Another process may take the port between the check and the start: a
  # failed start tries another one.
  local attempt port
  for attempt in 1 2 3 4 5; do
    port=$(pg_free_port)
    if pg_run "$PG_TEST_DIR" "$port"; then
      export PG_TEST_PORT=$port
      export PG_TEST_URL="postgresql://ralph@127.0.0.1:$port"
      PG_TEST_VERSION_NUM=$(psql "$PG_TEST_URL/postgres" -X -A -t -c "SHOW server_version_num")
      export PG_TEST_VERSION_NUM
      return 0
    fi
    echo "pg: start on port $port failed (attempt $attempt): $(grep -m1 -E 'FATAL|ERROR|could not' "$PG_TEST_DIR/server.log")" >&2
  done
  cat "$PG_TEST_DIR/server.log" >&2
  return 1
}

pg_stop() {
  [[ -n $PG_TEST_DIR && -d $PG_TEST_DIR ]] || return 0
  pg_halt "$PG_TEST_DIR"
  rm -rf "$PG_TEST_DIR"
  PG_TEST_DIR=""
}

# pg_new_db NAME: a fresh database; prints its URL.
# (FILE_COPY: no copy of the template through the WAL, PostgreSQL >= 15.)
pg_new_db() {
  local strategy=""
  [[ ${PG_TEST_VERSION_NUM:-0} -lt 150000 ]] || strategy=" STRATEGY = FILE_COPY"
  psql "$PG_TEST_URL/postgres" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$1\"$strategy" >/dev/null || return 1
  printf '%s/%s\n' "$PG_TEST_URL" "$1"
}

# pg_password_role NAME PASSWORD: a login role that must give PASSWORD
# (scram-sha-256) on 127.0.0.1, while every other role stays trusted. The
# password reaches psql on stdin, not on its command line.
pg_password_role() {
  local name=$1 quoted=${2//\'/\'\'}
  psql "$PG_TEST_URL/postgres" -X -q -v ON_ERROR_STOP=1 -f - >/dev/null <<<"CREATE ROLE \"$name\" LOGIN PASSWORD '$quoted'" \
    || return 1
  pg_require_password "$name"
}

# pg_require_password NAME: the existing login role NAME must give its
# password (scram-sha-256) on 127.0.0.1 from now on; every other role stays
# trusted.
pg_require_password() {
  local name=$1 hba="$PG_TEST_DIR/data/pg_hba.conf" rules i
  # The first matching line wins: the role's goes before the trust lines.
  rules=$(<"$hba") || return 1
  printf 'host all %s 127.0.0.1/32 scram-sha-256\n%s\n' "$name" "$rules" >"$hba" || return 1
  psql "$PG_TEST_URL/postgres" -X -q -A -t -c "SELECT pg_reload_conf()" >/dev/null || return 1
  # The reload is asynchronous: done when the role is refused without its password.
  for ((i = 0; i < 100; i++)); do
    PGPASSWORD="" psql "postgresql://$name@127.0.0.1:$PG_TEST_PORT/postgres" -X -w -q -c "" >/dev/null 2>&1 || return 0
    sleep 0.05
  done
  echo "pg: the role $name still gets in without its password after a reload of $hba" >&2
  return 1
}
