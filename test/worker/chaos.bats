#!/usr/bin/env bats
# Faults, all at once: 8 workers drain 200 tasks while a worker is SIGKILLed
# every second (and replaced), and the database is restarted once in the
# middle. Every task must end done or failed, none finished twice, no agent
# left running, and every worker that saw the database go must recover.
# The agent is a stand-in (fixtures/chaos-agent.sh) that records when it
# starts and ends per task; two agents that ever worked one task at once
# fail the test.
# shellcheck disable=SC2030,SC2031

load lib/helpers

setup() {
  fresh_db
  make_remote
  export TMPDIR=$BATS_TEST_TMPDIR
  CHAOS="$BATS_TEST_TMPDIR/chaos"
  mkdir -p "$CHAOS/agents" "$CHAOS/logs"
  WORKERS=()
}

# Workers and agents are known by proc_id (PID:START), never by PID alone:
# hundreds of them come and go, and on a busy machine their PIDs soon name
# other processes (a build's, another test's), which must not be killed
# or taken for a leftover agent.
teardown() {
  local id agent
  for id in "${WORKERS[@]}"; do
    alive "$id" && kill -KILL "${id%%:*}" 2>/dev/null
  done
  for agent in "$CHAOS"/agents/[0-9]*; do
    [[ -e $agent ]] || continue
    alive "$(agent_id "$agent")" && kill -KILL -- "-${agent##*/}" 2>/dev/null
  done
  return 0
}

# agent_id FILE: the proc_id of the agent that wrote CHAOS_AGENTS/PID (its start time).
agent_id() { echo "${1##*/}:$(<"$1")"; }

# start_chaos_worker N: worker N in the background, its own workspace and log.
start_chaos_worker() {
  set -m
  RALPH_WORKSPACE="$CHAOS/ws-$1" "$RALPH" build 2>"$CHAOS/logs/$1.log" &
  WORKERS+=("$(proc_id $!)")
  disown # (no "Killed" notice for each kill)
  set +m
}

# done_lines N: how many tasks worker N has finished so far (its log's done lines).
done_lines() { grep -c ': done: ' "$CHAOS/logs/$1.log" || true; }

# live_workers: the proc_ids of the workers still running.
live_workers() {
  local id
  for id in "${WORKERS[@]}"; do
    alive "$id" && printf '%s\n' "$id"
  done
  return 0
}

# How many tasks the workers drain: 200 take about 100 s and some 30 kills
# (400 took 207 s with both cores busy, the worker suite's longest file).
CHAOS_TASKS=200

settled() {
  [ "$(sql "SELECT count(*) FROM tasks WHERE status IN ('done', 'failed')")" -eq "$CHAOS_TASKS" ]
}

@test "chaos: 8 workers, 200 tasks, a worker SIGKILLed every second, the database restarted once" {
  export RALPH_LEASE_SECONDS=3 RALPH_RETRY_BASE_SECONDS=1 RALPH_RETRY_MAX_SECONDS=2
  export RALPH_IDLE_MIN_SECONDS=1 RALPH_IDLE_MAX_SECONDS=2 RALPH_STOP_CONNECT_TIMEOUT=2 PGCONNECT_TIMEOUT=2
  export CHAOS_AGENTS="$CHAOS/agents" RALPH_AGENT_ENV=CHAOS_AGENTS
  export RALPH_AGENT_CMD="bash $BATS_TEST_DIRNAME/fixtures/chaos-agent.sh"
  "$TASK" init >/dev/null
  sql "INSERT INTO tasks (id, description) SELECT 'c/' || n, 'chaos task ' || n FROM generate_series(1, $CHAOS_TASKS) n" >/dev/null
  local n next=9
  for n in 1 2 3 4 5 6 7 8; do start_chaos_worker "$n"; done

  local t0=$SECONDS restarted=0 restart_at="" victim done_now live
  while ! settled; do
    ((SECONDS - t0 < 600)) || { echo "not settled after 600 s: $(sql "SELECT status, count(*) FROM tasks GROUP BY 1")"; false; }
    sleep 1
    # One worker killed, one started in its place.
    mapfile -t live < <(live_workers)
    if ((${#live[@]})); then
      victim=${live[RANDOM % ${#live[@]}]}
      kill -KILL "${victim%%:*}" 2>/dev/null || true
      start_chaos_worker "$((next++))"
    fi
    # Once, with a good part done: the database goes away for 2 s and comes
    # back; then every live worker must finish a task again (no kills meanwhile).
    done_now=$(sql "SELECT count(*) FROM tasks WHERE status = 'done'" 2>/dev/null || echo 0)
    if ((!restarted && done_now >= 100)); then
      restarted=1
      local -A before=()
      for ((n = 1; n < next; n++)); do
        alive "${WORKERS[n - 1]}" && before[$n]=$(done_lines "$n")
      done
      db_down
      sleep 2
      db_up
      restart_at=$(date +%s)
      local recovered=0 deadline=$((SECONDS + 90))
      while ((recovered < ${#before[@]})); do
        ((SECONDS < deadline)) || { echo "workers did not recover: $(for n in "${!before[@]}"; do tail -n3 "$CHAOS/logs/$n.log"; done)"; false; }
        sleep 0.5
        recovered=0
        for n in "${!before[@]}"; do
          (($(done_lines "$n") > before[$n])) && recovered=$((recovered + 1))
        done
      done
      echo "chaos: all ${#before[@]} workers recovered $((SECONDS - deadline + 90)) s after the database came back" >&3
    fi
  done
  [ "$restarted" -eq 1 ]

  # Every task ended done or failed; none was finished twice: no task is
  # named by two workers' done lines (a worker killed between `task done`
  # and its log line leaves a done task without one).
  settled
  local finished lines unique done_count
  finished=$(cat "$CHAOS"/logs/*.log | grep -oE 'task c/[0-9]+: done:' | sort)
  lines=$(grep -c . <<<"$finished" || true)
  unique=$(sort -u <<<"$finished" | grep -c . || true)
  done_count=$(sql "SELECT count(*) FROM tasks WHERE status = 'done'")
  echo "chaos: $lines done lines, $unique tasks, $done_count done in the store" >&3
  [ "$lines" -eq "$unique" ] || { echo "finished twice: $(uniq -d <<<"$finished")"; false; }
  [ "$unique" -le "$done_count" ]
  [ "$unique" -ge $((done_count - next + 9)) ]
  # Each done task's commit is on its branch in the remote.
  local id commit
  while IFS='|' read -r id commit; do
    [ "$(git -C "$REMOTE" rev-parse "refs/heads/ralph/$id")" = "$commit" ] || { echo "$id: $commit is not its branch's head"; false; }
  done < <(sql "SELECT id || '|' || (result->>'commit') FROM tasks WHERE status = 'done' ORDER BY id")

  local id
  for id in $(live_workers); do
    kill -TERM "${id%%:*}"
  done
  for id in "${WORKERS[@]}"; do
    wait_for 15 gone "$id" || { echo "worker $id did not stop on SIGTERM"; false; }
  done
  # No agent process is left running: the killed workers' watchdogs stopped theirs.
  local agent leftover=()
  for agent in "$CHAOS"/agents/[0-9]*; do
    wait_for 3 gone "$(agent_id "$agent")" || leftover+=("$(agent_id "$agent")")
  done
  [ "${#leftover[@]}" -eq 0 ] || { echo "agents left running: ${leftover[*]}"; false; }
  # No two agents ever worked one task at once: none found an earlier one
  # still running when it started, and no two recorded spans overlap
  # (spans with both ends, per task, by start: each starts after the latest
  # end before it).
  [ ! -s "$CHAOS/agents/overlaps" ] || { cat "$CHAOS/agents/overlaps"; false; }
  local spans starts
  spans=$(awk '$1 == "start" { s[FILENAME " " $2] = $3 } $1 == "end" { e[FILENAME " " $2] = $3 }
      END { for (k in s) if (k in e) { split(k, a, " "); print a[1], s[k], e[k] } }' "$CHAOS"/agents/*.log \
    | sort -k1,1 -k2,2g | awk '$1 != f { f = $1; last = 0 } { if ($2 + 0 < last) print f; if ($3 + 0 > last) last = $3 + 0 }' | sort -u)
  starts=$(cat "$CHAOS"/agents/*.log | grep -c '^start ')
  echo "chaos: $starts agent starts recorded" >&3
  [ "$starts" -ge "$CHAOS_TASKS" ]
  [ -z "$spans" ] || { echo "two agents at once in: $spans"; false; }
  # The workers saw the database go (and said so), and went on.
  grep -lE "cannot reach the database|claim failed|renewal failed" "$CHAOS"/logs/*.log >/dev/null
  local after
  after=$(sql "SELECT count(*) FROM tasks WHERE status = 'done' AND updated_at > to_timestamp($restart_at + 2)")
  [ "$after" -gt 0 ]
  echo "chaos: $done_count done, $((CHAOS_TASKS - done_count)) failed, $((next - 9)) workers killed, $((SECONDS - t0)) s" >&3
}

@test "a process known by proc_id is not taken for another one with its pid" {
  sleep 30 &
  local pid=$! id
  id=$(proc_id "$pid")
  [[ $id == "$pid":[0-9]* ]]
  alive "$id"
  # The same pid with another start time: a later process that got the pid.
  run alive "$pid:$((${id#*:} + 1))"
  [ "$status" -ne 0 ]
  kill "$pid"
  wait "$pid" || true
  gone "$id"
  [ "$(proc_id "$pid")" = "$pid:gone" ]
}
