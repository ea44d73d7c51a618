#!/usr/bin/env bash
# Loaded by every worker test (bats `load`): paths, a fresh database per test
# on the PostgreSQL that run.sh started (PG_TEST_URL), and small helpers.

REPO_ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
export RALPH_HOME=$REPO_ROOT
# shellcheck disable=SC2034 # used by the .bats files
TASK="$REPO_ROOT/task"
# shellcheck disable=SC2034
RALPH="$REPO_ROOT/ralph.sh"
# The tests set what they need; nothing leaks in from the caller.
unset RALPH_DB_URL RALPH_REPO_URL RALPH_AGENT_ID RALPH_AGENT_CMD RALPH_MODEL RALPH_MODELS_FILE \
  RALPH_LEASE_SECONDS RALPH_WORKSPACE RALPH_STATE_DIR RALPH_TASK_ID
# shellcheck source=test/worker/lib/pg.sh
source "$BATS_TEST_DIRNAME/lib/pg.sh"

# fresh_db: a new, empty database for this test, in RALPH_DB_URL.
fresh_db() {
  [[ -n ${PG_TEST_URL:-} ]] || {
    echo "PG_TEST_URL is not set: run the tests through test/worker/run.sh" >&2
    return 1
  }
  RALPH_DB_URL=$(pg_new_db "t_$$_${BATS_SUITE_TEST_NUMBER:-0}_$RANDOM")
  export RALPH_DB_URL
}

# sql QUERY: the result of one query on the test database.
sql() { psql "$RALPH_DB_URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

# store_snapshot: every row of the store, to compare before and after a
# refused command.
store_snapshot() {
  sql "SELECT coalesce(string_agg(t::text, E'\n' ORDER BY t.id), '') FROM tasks t;
       SELECT coalesce(string_agg(d::text, E'\n' ORDER BY d.task_id, d.blocked_by), '') FROM task_dependencies d;
       SELECT coalesce(string_agg(a::text, E'\n' ORDER BY a.id), '') FROM agents a"
}

# A bare repository with one commit on main (REMOTE), and the worker's
# environment pointing at it with a workspace in the test's temp dir.
make_remote() {
  REMOTE="$BATS_TEST_TMPDIR/remote.git"
  git init -q --bare -b main "$REMOTE"
  local seed="$BATS_TEST_TMPDIR/seed"
  git init -q -b main "$seed"
  echo "# project" >"$seed/README.md"
  git -C "$seed" add README.md
  git -C "$seed" -c user.name=test -c user.email=test@localhost commit -qm init
  git -C "$seed" push -q "$REMOTE" main
  export RALPH_REPO_URL=$REMOTE RALPH_WORKSPACE="$BATS_TEST_TMPDIR/workspace"
}

# wait_for SECONDS COMMAND…: until COMMAND succeeds, or fail.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

task_status() { sql "SELECT status FROM tasks WHERE id = '$1'"; }

# task_result ID KEY: one field of a task's result JSON, as text.
task_result() { sql "SELECT result->>'$2' FROM tasks WHERE id = '$1'"; }

# task_is ID STATUS: the task has that status now.
task_is() { [[ $(task_status "$1") == "$2" ]]; }

# proc_state PID: "STATE START" of a process, from /proc/PID/stat (its
# state letter and its start time, in clock ticks since boot); fails when
# there is no such process.
proc_state() {
  local stat
  local -a field
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  read -r -a field <<<"${stat##*) }"
  echo "${field[0]} ${field[19]}"
}

# proc_id PID: "PID:START": which process it is. A PID alone names another
# process once the first has ended and been reaped, and pid_max may be
# 32768: a busy machine wraps it in minutes.
proc_id() {
  local state start
  read -r state start < <(proc_state "$1") || { echo "$1:gone"; return 0; }
  echo "$1:$start"
}

# alive PID or alive PID:START (proc_id): the process exists (and is not
# a zombie); with START, it is that very process.
alive() {
  local state start
  read -r state start < <(proc_state "${1%%:*}") || return 1
  [[ $state != Z ]] || return 1
  [[ $1 != *:* || $start == "${1#*:}" ]]
}

# gone PID or gone PID:START: the process has ended (a zombie nobody reaped
# yet counts as gone).
gone() { ! alive "$1"; }

# group_alive PGID: a process of that process group is alive (not a zombie).
group_alive() {
  local stat line state pgrp
  for stat in /proc/[0-9]*/stat; do
    { read -r line <"$stat"; } 2>/dev/null || continue
    read -r state _ pgrp _ <<<"${line##*) }"
    [[ $pgrp != "$1" || $state == Z ]] || return 0
  done
  return 1
}

# group_gone PGID: every process of that process group has ended.
group_gone() { ! group_alive "$1"; }

# db_down / db_up: stops and restarts the tests' PostgreSQL (the database
# going away under running workers). From /: the server's user can't enter
# the test's directory. The server must not hold bats's descriptors (fd 3:
# bats would wait for it to end).
db_down() {
  pg_find_bin
  (cd / && pg_halt "$PG_TEST_DIR" fast)
}
db_up() {
  pg_find_bin
  (cd / && pg_run "$PG_TEST_DIR" "$PG_TEST_PORT" </dev/null 3>&-) || {
    tail -n 5 "$PG_TEST_DIR/server.log" >&2
    return 1
  }
}

# kill_worker_and_agent: a test's teardown: the worker in WORKER_PID and the
# agent whose pid is in AGENT_PID_FILE (its process group) are killed.
kill_worker_and_agent() {
  if [[ -n ${WORKER_PID:-} ]]; then
    kill -KILL "$WORKER_PID" 2>/dev/null || true
    wait "$WORKER_PID" 2>/dev/null || true
  fi
  local pid
  if [[ -s ${AGENT_PID_FILE:-} ]]; then
    pid=$(<"$AGENT_PID_FILE")
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
}
