#!/usr/bin/env bats
# Time limits (issue 17): the agent's (RALPH_AGENT_TIMEOUT_SECONDS), every
# psql call's (bounded from RALPH_LEASE_SECONDS: lib/db.sh, db_bounds), and
# the renewer's view of the whole lease (lib/worker.sh). A database that
# stops answering is lib/silent_db.py: a listener on 127.0.0.1 that accepts
# and never answers, or forwards to the tests' PostgreSQL until told to go
# silent (SIGUSR1), as behind a half-open connection. The agent is a
# stand-in (RALPH_AGENT_CMD).
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

setup() {
  fresh_db
  make_remote
  export RALPH_IDLE_MIN_SECONDS=1 RALPH_IDLE_MAX_SECONDS=1
  export TMPDIR=$BATS_TEST_TMPDIR STATE=$BATS_TEST_TMPDIR RALPH_AGENT_ENV=STATE
  WORKER_PID="" SECOND_PID="" SILENT_PID=""
  AGENT_PID_FILE="$BATS_TEST_TMPDIR/agent.pid"
}

teardown() {
  kill_worker_and_agent
  local pid
  for pid in $SECOND_PID $SILENT_PID; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  cat "$STATE/child.pid" "$STATE/hung.pids" 2>/dev/null | while read -r pid; do
    kill -KILL "$pid" 2>/dev/null || true
  done
}

# start_silent_db [UPSTREAM_PORT [AFTER]]: lib/silent_db.py in the background
# (SILENT_PID), listening on 127.0.0.1:SILENT_PORT; it logs each connection
# it accepts to $STATE/silent.log.
start_silent_db() {
  python3 "$BATS_TEST_DIRNAME/lib/silent_db.py" "$STATE/silent.port" "$@" >"$STATE/silent.log" 2>&1 3>&- &
  SILENT_PID=$!
  wait_for 10 test -s "$STATE/silent.port"
  SILENT_PORT=$(<"$STATE/silent.port")
}

# start_worker LOG ARGS…: ralph.sh build in the background (WORKER_PID),
# its stderr in LOG; with job control on, as from a terminal.
start_worker() {
  local log=$1
  shift
  set -m
  "$RALPH" build "$@" 2>"$log" 3>&- &
  WORKER_PID=$!
  set +m
}


# The first worker's agent in the renewal tests: notes when it is told to
# stop (SIGTERM), and has a child that ignores SIGTERM. A second worker's
# (RALPH_AGENT_ID=second) notes when it starts, and what is left of the
# first agent's processes then.
# shellcheck disable=SC2016 # expanded by the agent's shell
RENEWAL_AGENT='
  if [ "$RALPH_AGENT_ID" = second ]; then
    date +%s.%N > "$STATE/second.start"
    for f in agent child; do
      s=$(cat "/proc/$(cat "$STATE/$f.pid")/stat" 2>/dev/null); s=${s##*) }; echo "$f:${s%% *}" >> "$STATE/seen"
    done
    echo second > second.txt
    exit 0
  fi
  echo $$ > "$STATE/agent.pid"
  trap "date +%s.%N > \"\$STATE/first.stopped\"; exit 143" TERM
  (trap "" TERM; exec sleep 300) &
  echo $! > "$STATE/child.pid"
  echo first > first.txt
  touch "$STATE/started"
  sleep 300 &
  wait $!'

# reap PID SECONDS: waits for the background process PID to end, and
# returns its status; still running after SECONDS, it is killed (status 1).
reap() {
  if ! wait_for "$2" gone "$1"; then
    echo "process $1 still runs after $2 s: killed" >&2
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
    return 1
  fi
  wait "$1"
}

# worker_on_silent_db: a worker for one task through lib/silent_db.py
# (SILENT_PORT) in front of the tests' database, reaped within 60 s, its log
# printed; fails unless it exited 0.
worker_on_silent_db() {
  RALPH_DB_URL="postgresql://ralph@127.0.0.1:$SILENT_PORT/${RALPH_DB_URL##*/}" \
    start_worker "$STATE/worker.log" --max-iterations 1
  local rc=0
  reap "$WORKER_PID" 60 || rc=$?
  WORKER_PID=""
  cat "$STATE/worker.log"
  [ "$rc" -eq 0 ]
}

# earlier A B: the decimal number A is below B.
earlier() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

@test "an agent past RALPH_AGENT_TIMEOUT_SECONDS is stopped with all it started, the attempt fails with that reason, the worker goes on" {
  export RALPH_AGENT_TIMEOUT_SECONDS=2 RALPH_AGENT_STOP_SECONDS=1
  "$TASK" add slow/1 "never ends" --priority 1
  "$TASK" add next/1 "quick" --priority 2
  # slow/1: the agent notes the SIGTERM it gets, starts a child that
  # ignores SIGTERM (only the SIGKILL to the group ends it), and sleeps.
  # next/1: it notes what is left of slow/1's agent when it starts.
  # shellcheck disable=SC2016 # expanded by the agent's shell
  export RALPH_AGENT_CMD='
    if [ "$RALPH_TASK_ID" = slow/1 ]; then
      echo $$ > "$STATE/agent.pid"
      trap "echo TERM > \"\$STATE/slow.stopped\"; exit 143" TERM
      (trap "" TERM; exec sleep 300) &
      echo $! > "$STATE/child.pid"
      echo working; echo partial > partial.txt
      sleep 300 &
      wait $!
    fi
    for f in agent child; do
      s=$(cat "/proc/$(cat "$STATE/$f.pid")/stat" 2>/dev/null); s=${s##*) }; echo "$f:${s%% *}" >> "$STATE/seen"
    done
    echo next > next.txt'
  run timeout 60 "$RALPH" build --until-empty
  echo "$output"
  [ "$status" -eq 0 ]
  # A failed attempt that says why; nothing finished, nothing pushed.
  [ "$(sql "SELECT status || ' ' || coalesce(assignee, '-') || ' ' || attempts || ' ' || (result IS NULL) FROM tasks WHERE id = 'slow/1'")" = "open - 1 true" ]
  [ "$(sql "SELECT last_error FROM tasks WHERE id = 'slow/1'")" = "the agent passed its time limit of 2 seconds (RALPH_AGENT_TIMEOUT_SECONDS) and was stopped" ]
  [[ $output == *"task slow/1: the agent passed its time limit of 2 seconds (RALPH_AGENT_TIMEOUT_SECONDS) and was stopped"* ]]
  run git -C "$REMOTE" rev-parse --verify --quiet refs/heads/ralph/slow/1
  [ "$status" -ne 0 ]
  # Stopped as the worker stops an agent: SIGTERM, then SIGKILL to the
  # group. Every process of its group was gone (or a zombie) when the next
  # task's agent started: the agent and the child that ignored SIGTERM.
  [ "$(cat "$STATE/slow.stopped")" = TERM ]
  run cat "$STATE/seen"
  [[ ${lines[0]} =~ ^agent:Z?$ ]]
  [[ ${lines[1]} =~ ^child:Z?$ ]]
  group_gone "$(<"$AGENT_PID_FILE")"
  # The worker went on to the next task and finished it.
  [ "$(task_status next/1)" = "done" ]
  [ "$(git -C "$REMOTE" show ralph/next/1:next.txt)" = next ]
}

# The worker's own functions in a shell of their own, as ralph.sh sources
# them, its exit cleanup armed on a state directory: 200 times the
# watchdog of an agent that ended at once, started and stopped; 200 times
# a step forked as worker_run forks one, stopped at once as a lost lease
# or a SIGTERM stops it (group_stop). bash runs the EXIT trap in a
# subshell that a signal ends before it has reset its parent's traps: the
# worker's, there, removed the state directory under the worker still
# running (CI: "a task done that hangs" lost its agent.log, its commit and
# its push).
@test "a subshell of the worker stopped as soon as it starts leaves the worker's state directory alone" {
  mkdir "$STATE/state"
  # shellcheck disable=SC2016 # expanded by that shell
  run bash -c '
    set -euo pipefail
    RALPH_HOME=$1 RALPH_PROG=ralph
    for lib in common version db models privsep workspace agent worker; do source "$RALPH_HOME/lib/$lib.sh"; done
    export RALPH_STATE_DIR=$2
    trap worker_cleanup EXIT
    check() { [[ -d $RALPH_STATE_DIR ]] || { echo "the state directory was removed: $1"; exit 1; }; }
    for ((i = 0; i < 200; i++)); do
      set -m
      true &
      group=$!
      set +m
      wait "$group"
      agent_watch "$$" "$group" 3600
      agent_unwatch
      check "watchdog, round $i"
    done
    for ((i = 0; i < 200; i++)); do
      set -m
      sleep 5 &
      step=$!
      set +m
      group_stop "$step" 1
      wait "$step" 2>/dev/null || true
      check "step, round $i"
    done
    trap - EXIT
    echo "400 rounds"' _ "$REPO_ROOT" "$STATE/state"
  echo "$output"
  [ "$status" -eq 0 ]
  [ -d "$STATE/state" ]
  # Nor anything else said on the worker's stderr.
  [ "$output" = "400 rounds" ]
}

@test "RALPH_AGENT_TIMEOUT_SECONDS is checked when the worker starts" {
  local bad
  for bad in 0 604801 1h ' 5'; do
    run env RALPH_AGENT_TIMEOUT_SECONDS="$bad" RALPH_AGENT_CMD=true "$RALPH" build --until-empty
    [ "$status" -eq 2 ]
    [ "$output" = "ralph: RALPH_AGENT_TIMEOUT_SECONDS='$bad' is not a number of seconds between 1 and 604800: set RALPH_AGENT_TIMEOUT_SECONDS to one, or unset it for the default 3600" ]
  done
}

@test "a database that accepts and never answers: the psql call ends at its bound with the timeout error" {
  start_silent_db
  # PGCONNECT_TIMEOUT=0: libpq would wait forever; the call's bound (a
  # quarter of the 8 s lease, at least 2 s) ends it. The outer timeout only
  # keeps a broken bound from hanging the suite.
  local t0=$SECONDS
  run timeout 30 env PGCONNECT_TIMEOUT=0 RALPH_LEASE_SECONDS=8 \
    RALPH_DB_URL="postgresql://ralph@127.0.0.1:$SILENT_PORT/nowhere" "$TASK" list
  echo "$output"
  [ "$status" -eq 1 ]
  [ "$output" = "task: cannot reach the database (RALPH_DB_URL): no answer within 2s, psql was stopped (a half-open connection, or a server that hangs): check that PostgreSQL is running and RALPH_DB_URL points at it" ]
  grep -q '^accepted 1$' "$STATE/silent.log"
  # A sanity check only (5 times the bound): the outcome above is the test.
  [ $((SECONDS - t0)) -lt 10 ]
  # A worker's claim says the same, and the worker waits it out.
  run timeout 30 env PGCONNECT_TIMEOUT=0 RALPH_LEASE_SECONDS=8 \
    RALPH_DB_URL="postgresql://ralph@127.0.0.1:$SILENT_PORT/nowhere" "$TASK" claim --agent a-1
  [ "$status" -eq 1 ]
  [[ $output == "task: cannot reach the database (RALPH_DB_URL): no answer within 2s, psql was stopped "* ]]
}

@test "a connection that goes silent mid-statement: the call ends at its bound" {
  # The proxy goes silent itself once it has forwarded the statement: the
  # server runs it, and its answer never comes (no poll of the server
  # racing the statement: on a loaded machine that poll missed it).
  start_silent_db "$PG_TEST_PORT" "pg_sleep(3)"
  local url="postgresql://ralph@127.0.0.1:$SILENT_PORT/${RALPH_DB_URL##*/}"
  # A lease of 16 s: the call's bound is 4 s.
  # shellcheck disable=SC2016 # expanded by that shell
  timeout 30 env PGCONNECT_TIMEOUT=0 RALPH_LEASE_SECONDS=16 RALPH_DB_URL="$url" bash -c '
    source "$RALPH_HOME/lib/common.sh"; source "$RALPH_HOME/lib/db.sh"
    rc=0; db_run <<<"SELECT pg_sleep(3); SELECT 42;" || rc=$?
    echo "rc=$rc out=$DB_OUT"' >"$STATE/call.out" 2>&1 3>&- &
  local call=$!
  local rc=0
  wait "$call" || rc=$?
  cat "$STATE/call.out" "$STATE/silent.log"
  grep -qxF "silent after forwarding pg_sleep(3)" "$STATE/silent.log"
  [ "$rc" -eq 0 ]
  [ "$(tail -n1 "$STATE/call.out")" = "rc=1 out=" ]
  grep -qxF "ralph: cannot reach the database (RALPH_DB_URL): no answer within 4s, psql was stopped (a half-open connection, or a server that hangs): check that PostgreSQL is running and RALPH_DB_URL points at it" \
    "$STATE/call.out"
}

@test "the bounds reach the server and the connection string, whatever form RALPH_DB_URL has" {
  # db SQL: what db_run makes of SQL, with the environment given before it.
  db() {
    bash -c 'source "$RALPH_HOME/lib/common.sh"; source "$RALPH_HOME/lib/db.sh"; rc=0; db_run <<<"$1" || rc=$?; echo "$DB_OUT"; exit "$rc"' _ "$1"
  }
  export RALPH_LEASE_SECONDS=8
  run db "SHOW statement_timeout; SHOW lock_timeout; SHOW idle_in_transaction_session_timeout;"
  [ "$status" -eq 0 ]
  [ "$output" = "$(printf '1s\n500ms\n1s')" ]
  # The server cancels a statement past half the call's bound.
  run db "SELECT pg_sleep(30);"
  [ "$status" -eq 1 ]
  [[ $output == *"canceling statement due to statement timeout"* ]]
  # The caller's PGOPTIONS win over the defaults.
  PGOPTIONS="-c statement_timeout=1234" run db "SHOW statement_timeout;"
  [ "$output" = "1234ms" ]
  # The default lease: 30 s a call.
  unset RALPH_LEASE_SECONDS
  run db "SHOW statement_timeout;"
  [ "$output" = "15s" ]
  # libpq's TCP bounds, added to each form of connection string.
  conninfo() {
    bash -c 'source "$RALPH_HOME/lib/common.sh"; source "$RALPH_HOME/lib/db.sh"; db_require_url; echo "$DB_CONNINFO"'
  }
  local tcp="keepalives=1&keepalives_idle=5&keepalives_interval=2&keepalives_count=3&tcp_user_timeout=15000"
  [ "$(RALPH_DB_URL=postgresql://u@h/d conninfo)" = "postgresql://u@h/d?$tcp" ]
  [ "$(RALPH_DB_URL='postgresql://u:pw@h/d?sslmode=disable' conninfo)" = "postgresql://u@h/d?sslmode=disable&$tcp" ]
  [ "$(RALPH_DB_URL='postgres://h?a=b&' conninfo)" = "postgres://h?a=b&$tcp" ]
  [ "$(RALPH_DB_URL='postgresql://h/d?tcp_user_timeout=7&keepalives_idle=9' conninfo)" = \
    "postgresql://h/d?tcp_user_timeout=7&keepalives_idle=9&keepalives=1&keepalives_interval=2&keepalives_count=3" ]
  [ "$(RALPH_DB_URL='host=h dbname=d' conninfo)" = "host=h dbname=d ${tcp//&/ }" ]
  [ "$(RALPH_LEASE_SECONDS=3 RALPH_DB_URL="it's" conninfo)" = \
    "dbname='it\\'s' keepalives=1 keepalives_idle=1 keepalives_interval=1 keepalives_count=3 tcp_user_timeout=1000" ]
  # And psql takes every form.
  "$TASK" add form/1 "reachable"
  local db=${RALPH_DB_URL##*/} url
  for url in "$RALPH_DB_URL" "$RALPH_DB_URL?sslmode=disable" "$RALPH_DB_URL?application_name=x&" \
    "$RALPH_DB_URL?keepalives_idle=7" "host=127.0.0.1 port=$PG_TEST_PORT user=ralph dbname=$db"; do
    run env RALPH_DB_URL="$url" "$TASK" list
    [ "$status" -eq 0 ] || { echo "$url: $output"; return 1; }
    [[ $output == *form/1* ]]
  done
  run env PGHOST=127.0.0.1 PGPORT="$PG_TEST_PORT" PGUSER=ralph RALPH_DB_URL="$db" "$TASK" list
  [ "$status" -eq 0 ]
  [[ $output == *form/1* ]]
}

@test "renewals that hang: the agent is stopped before the lease runs out, nothing is finished, and only then can another worker take the task" {
  # A lease of 6 s: a renewal every 2 s; the agent is stopped 2 s (a third
  # of the lease; RALPH_AGENT_STOP_SECONDS + 2 would be 3) before the lease
  # ends unless a renewal succeeded meanwhile.
  export RALPH_LEASE_SECONDS=6 RALPH_AGENT_STOP_SECONDS=1 RALPH_RETRY_BASE_SECONDS=0
  "$TASK" add hang/1 "renewals hang"
  start_silent_db "$PG_TEST_PORT"
  export RALPH_AGENT_CMD=$RENEWAL_AGENT
  RALPH_DB_URL="postgresql://ralph@127.0.0.1:$SILENT_PORT/${RALPH_DB_URL##*/}" \
    start_worker "$STATE/first.log" --max-iterations 1
  wait_for 20 test -e "$STATE/started"
  # The database goes silent for the first worker: its renewals hang.
  kill -USR1 "$SILENT_PID"
  wait_for 20 grep -q "the lease was lost" "$STATE/first.log"
  # Where its lease ends in the store: nothing can renew it any more, and
  # nobody claims it before the second worker starts.
  local expires
  expires=$(sql "SELECT extract(epoch FROM lease_expires_at) FROM tasks WHERE id = 'hang/1' AND status = 'active'")
  [ -n "$expires" ]
  # The first worker ends (the calls that hang are bounded).
  local rc=0
  reap "$WORKER_PID" 30 || rc=$?
  WORKER_PID=""
  cat "$STATE/first.log"
  [ "$rc" -eq 0 ]
  grep -q "task hang/1: the lease was lost (no renewal succeeded in time to keep the lease of 6s" "$STATE/first.log"
  grep -q "the agent and the step in flight were stopped; nothing is pushed or finished for this attempt" "$STATE/first.log"
  run git -C "$REMOTE" rev-parse --verify --quiet refs/heads/ralph/hang/1
  [ "$status" -ne 0 ]
  [ "$(task_status hang/1)" = active ]
  # The agent was told to stop before the lease ended.
  [ -s "$STATE/first.stopped" ]
  earlier "$(<"$STATE/first.stopped")" "$expires"
  group_gone "$(<"$AGENT_PID_FILE")"
  # A second worker, on the database itself: it gets the task once the
  # lease ran out, when nothing of the first agent runs any more.
  set -m
  RALPH_AGENT_ID=second RALPH_WORKSPACE="$BATS_TEST_TMPDIR/ws2" RALPH_IDLE_MIN_SECONDS=0 \
    "$RALPH" build --max-iterations 1 2>"$STATE/second.log" 3>&- &
  SECOND_PID=$!
  set +m
  rc=0
  reap "$SECOND_PID" 60 || rc=$?
  SECOND_PID=""
  cat "$STATE/second.log"
  [ "$rc" -eq 0 ]
  earlier "$expires" "$(<"$STATE/second.start")"
  run cat "$STATE/seen"
  [[ ${lines[0]} =~ ^agent:Z?$ ]]
  [[ ${lines[1]} =~ ^child:Z?$ ]]
  [ "$(sql "SELECT status || ' ' || attempts || ' ' || (result->>'agent') FROM tasks WHERE id = 'hang/1'")" = "done 2 second" ]
  [[ $(sql "SELECT last_error FROM tasks WHERE id = 'hang/1'") == "the lease of "*" expired (attempt 1)"* ]]
  # What was pushed is the second attempt's only.
  [ "$(git -C "$REMOTE" show ralph/hang/1:second.txt)" = second ]
  run git -C "$REMOTE" show ralph/hang/1:first.txt
  [ "$status" -ne 0 ]
}

@test "a renewal that hangs past its own bound: the agent is still stopped before the lease runs out" {
  export RALPH_LEASE_SECONDS=6 RALPH_AGENT_STOP_SECONDS=1 RALPH_AGENT_CMD=$RENEWAL_AGENT
  "$TASK" add stuck/1 "a renewal never returns"
  # A psql for the worker that, once $STATE/hang exists, never answers a
  # renewal and leaves behind, when timeout(1) kills it at its bound, a
  # process that holds its output open: the renewal call never returns. It
  # refuses `agent stop` (so the task stays as the lease left it).
  local shim="$STATE/psql"
  cat >"$shim" <<EOF
#!/usr/bin/env bash
if [[ -e \$STATE/hang ]]; then
  case " \$* " in
    *" verb=renewed "*)
      sleep 300 &
      echo "\$!" >>"\$STATE/hung.pids"
      trap '' TERM
      wait
      ;;
    *" verb=stop "*)
      echo "psql: error: connection to server failed: refused by the test" >&2
      exit 2
      ;;
  esac
fi
exec $(command -v psql) "\$@"
EOF
  chmod +x "$shim"
  RALPH_PSQL=$shim start_worker "$STATE/worker.log" --max-iterations 1
  wait_for 20 test -e "$STATE/started"
  touch "$STATE/hang"
  local rc=0
  wait_for 20 grep -q "the lease was lost" "$STATE/worker.log" || rc=$?
  reap "$WORKER_PID" 30 || rc=$?
  WORKER_PID=""
  cat "$STATE/worker.log"
  [ "$rc" -eq 0 ]
  [ -s "$STATE/hung.pids" ]
  grep -q "task stuck/1: the lease was lost (no renewal succeeded in time to keep the lease of 6s: the last one has not answered after " \
    "$STATE/worker.log"
  # Told to stop before the lease ended, and all of it gone; nothing pushed
  # or finished; the hung renewal went with the renewer.
  local expires
  expires=$(sql "SELECT extract(epoch FROM lease_expires_at) FROM tasks WHERE id = 'stuck/1' AND status = 'active'")
  [ -n "$expires" ]
  earlier "$(<"$STATE/first.stopped")" "$expires"
  group_gone "$(<"$AGENT_PID_FILE")"
  run git -C "$REMOTE" rev-parse --verify --quiet refs/heads/ralph/stuck/1
  [ "$status" -ne 0 ]
  [ "$(sql "SELECT status || ' ' || (result IS NULL) FROM tasks WHERE id = 'stuck/1'")" = "active true" ]
  local pid
  for pid in $(<"$STATE/hung.pids"); do
    wait_for 5 gone "$pid"
  done
}

@test "a task done that hangs doesn't wedge the worker" {
  # A lease of 20 s (calls bounded at 5 s): `task done` is tried, and
  # retried, before the lease can be lost, also on a loaded machine (with
  # 8 s, the agent, its commit and the push outlasted the lease in run 33,
  # and the worker found it lost before its first try: another path).
  export RALPH_LEASE_SECONDS=20 RALPH_AGENT_STOP_SECONDS=1 PGCONNECT_TIMEOUT=0
  "$TASK" add stuck/1 "done hangs"
  start_silent_db "$PG_TEST_PORT"
  # The database goes silent once the push has reached the remote (its
  # post-receive hook): the renewal before the push answered, `task done`
  # and the renewals after it hang.
  printf '#!/bin/sh\nkill -USR1 %s\n' "$SILENT_PID" >"$REMOTE/hooks/post-receive"
  chmod +x "$REMOTE/hooks/post-receive"
  export RALPH_AGENT_CMD='echo work > work.txt'
  worker_on_silent_db
  # The commit was pushed, `task done` got no answer within its bound and
  # was retried until the lease was lost, and the worker went on (here: to
  # its end).
  git -C "$REMOTE" rev-parse --verify --quiet refs/heads/ralph/stuck/1
  grep -q "task: cannot reach the database (RALPH_DB_URL): no answer within 5s, psql was stopped" "$STATE/worker.log"
  grep -q "task stuck/1: could not record the result (exit 1); retrying in " "$STATE/worker.log"
  grep -q "task stuck/1: could not record the result (the lease was lost: " "$STATE/worker.log"
  [ "$(sql "SELECT status || ' ' || (result IS NULL) FROM tasks WHERE id = 'stuck/1'")" = "active true" ]
}

@test "the database silent before the push: nothing is pushed, and the worker does not wedge" {
  # A lease of 20 s (calls bounded at 5 s): the check before the push ends
  # long before the lease could be lost, also on a loaded machine (with 8 s,
  # a slow agent start left the lease to be lost first, another path).
  export RALPH_LEASE_SECONDS=20 RALPH_AGENT_STOP_SECONDS=1 PGCONNECT_TIMEOUT=0
  "$TASK" add quiet/1 "silent before the push"
  start_silent_db "$PG_TEST_PORT"
  export SILENT_PID RALPH_AGENT_ENV="STATE SILENT_PID"
  # shellcheck disable=SC2016 # expanded by the agent's shell
  export RALPH_AGENT_CMD='echo work > work.txt; kill -USR1 "$SILENT_PID"'
  worker_on_silent_db
  grep -q "task quiet/1: could not confirm the lease before the push: " "$STATE/worker.log"
  run git -C "$REMOTE" rev-parse --verify --quiet refs/heads/ralph/quiet/1
  [ "$status" -ne 0 ]
  [ "$(sql "SELECT status || ' ' || (result IS NULL) FROM tasks WHERE id = 'quiet/1'")" = "active true" ]
}
