#!/usr/bin/env bats
# Faults are classified (issue 17, parts 5 and 6): only the agent's own
# failure, or the task's, counts an attempt. A claim whose reply is lost is
# taken up; a `task done` that fails once is retried while the lease holds;
# the remote out of reach or a stale lock hands the task back without
# counting an attempt; a push that can't finish inside the lease is
# stopped, and a lease lost during the push stops it with nothing recorded; a
# `task done` refused for a whole lease hands the task back;
# a full disk under the git directory hands the task back; one worker per
# tree.
# Faults are injected at the edges: a psql wrapper (RALPH_PSQL) that drops
# a reply or a call, the real PostgreSQL behind it; a remote whose
# pre-receive hook hangs.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

setup() {
  fresh_db
  make_remote
  export RALPH_IDLE_MIN_SECONDS=1 RALPH_IDLE_MAX_SECONDS=1 RALPH_RETRY_BASE_SECONDS=0
  export TMPDIR=$BATS_TEST_TMPDIR
  WORKER_PID=""
}

teardown() {
  [[ -z $WORKER_PID ]] || kill -KILL "$WORKER_PID" 2>/dev/null || true
  pkill -KILL -f "$BATS_TEST_TMPDIR/hook-sleep" 2>/dev/null || true
  ! mountpoint -q "$BATS_TEST_TMPDIR/small" 2>/dev/null || umount "$BATS_TEST_TMPDIR/small"
}

# psql_shim MATCH ACTION: a psql wrapper (in $SHIM) that, the first time the
# SQL it is given contains MATCH, either runs it and then reports a lost
# connection (ACTION=lose-reply: the change committed, the reply never
# came) or reports a refused connection without running it (ACTION=refuse);
# ACTION=refuse-always refuses every time.
psql_shim() {
  SHIM="$BATS_TEST_TMPDIR/psql-shim"
  local once="mkdir '$BATS_TEST_TMPDIR/shim.once' 2>/dev/null"
  [[ $2 != refuse-always ]] || once=true
  cat >"$SHIM" <<EOF
#!/usr/bin/env bash
body=\$(cat)
if [[ \$body == *"$1"* ]] && $once; then
  case $2 in
    lose-reply)
      $(command -v psql) "\$@" <<<"\$body" >/dev/null 2>&1
      echo "psql: error: server closed the connection unexpectedly" >&2
      exit 2 ;;
    refuse | refuse-always)
      echo "psql: error: connection to server failed: Connection refused" >&2
      exit 2 ;;
  esac
fi
exec $(command -v psql) "\$@" <<<"\$body"
EOF
  chmod +x "$SHIM"
}

@test "a claim whose reply is lost is taken up by the worker that made it, with its one attempt" {
  "$TASK" add lost/1 "the claim commits, its reply is lost"
  psql_shim "ralph_claim(" lose-reply
  export RALPH_AGENT_CMD='echo worked > worked.txt'
  RALPH_PSQL=$SHIM run "$RALPH" build --max-iterations 1
  echo "$output"
  [ "$status" -eq 0 ]
  [ -d "$BATS_TEST_TMPDIR/shim.once" ]
  [[ $output == *"the claim's reply was lost (exit 1): taking up the task it claimed"* ]]
  [ "$(sql "SELECT status || ' ' || attempts FROM tasks WHERE id = 'lost/1'")" = "done 1" ]
  [ "$(git -C "$REMOTE" show ralph/lost/1:worked.txt)" = worked ]
}

@test "task held: what the agent holds, with its token; exit 3 when nothing" {
  "$TASK" add h/1 "held"
  run "$TASK" held --agent a1
  [ "$status" -eq 3 ]
  [ "$output" = "task: agent a1 holds no task" ]
  mkdir -p "$BATS_TEST_TMPDIR/state"
  RALPH_STATE_DIR="$BATS_TEST_TMPDIR/state" "$TASK" claim --agent a1 >/dev/null
  local token
  token=$(<"$BATS_TEST_TMPDIR/state/task-token")
  rm "$BATS_TEST_TMPDIR/state/task-token"
  RALPH_STATE_DIR="$BATS_TEST_TMPDIR/state" run "$TASK" --json held --agent a1
  [ "$status" -eq 0 ]
  [ "$(jq -r '.id + " " + .status' <<<"$output")" = "h/1 active" ]
  [ "$(<"$BATS_TEST_TMPDIR/state/task-token")" = "$token" ]
  run "$TASK" held --agent a2
  [ "$status" -eq 3 ]
}

@test "a task done that fails once is retried while the lease holds: done, one attempt" {
  "$TASK" add d/1 "done fails once"
  psql_shim "SET status = 'done'" refuse
  export RALPH_AGENT_CMD='echo worked > worked.txt'
  RALPH_PSQL=$SHIM run "$RALPH" build --max-iterations 1
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"task d/1: could not record the result (exit 1); retrying in "*"s while the lease holds"* ]]
  [[ $output == *"task d/1: done: "* ]]
  [ "$(sql "SELECT status || ' ' || attempts FROM tasks WHERE id = 'd/1'")" = "done 1" ]
}

@test "a task done refused for a whole lease while renewals succeed: handed back, not retried forever" {
  export RALPH_LEASE_SECONDS=3 RALPH_AGENT_STOP_SECONDS=0
  "$TASK" add d/2 "done always refused"
  psql_shim "SET status = 'done'" refuse-always
  export RALPH_AGENT_CMD='echo worked > worked.txt'
  RALPH_PSQL=$SHIM run timeout 60 "$RALPH" build --max-iterations 1
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"task d/2: could not record the result for 3s (the commit is on its branch): handing it back (not the task's fault: no attempt counted)"* ]]
  [ "$(sql "SELECT status || ' ' || attempts FROM tasks WHERE id = 'd/2'")" = "open 0" ]
  git -C "$REMOTE" rev-parse --verify --quiet refs/heads/ralph/d/2
}

@test "the remote out of reach: the task is handed back, no attempt counted, and the worker backs off" {
  "$TASK" add r/1 "the remote is gone"
  export RALPH_REPO_URL="$BATS_TEST_TMPDIR/no-such-remote.git" RALPH_AGENT_CMD='touch ran'
  run "$RALPH" build --max-iterations 3
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c "task r/1: could not prepare the workspace from $RALPH_REPO_URL: .*: handing it back (not the task's fault: no attempt counted)" <<<"$output")" -eq 3 ]
  [ "$(sql "SELECT status || ' ' || attempts || ' ' || coalesce(last_error, '-') FROM tasks WHERE id = 'r/1'")" = "open 0 -" ]
}

@test "a ref that doesn't exist is the task's fault: a failed attempt" {
  "$TASK" add bad/1 "a bad ref" --ref no-such-branch
  export RALPH_AGENT_CMD='touch ran'
  run "$RALPH" build --max-iterations 1
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT status || ' ' || attempts || ' ' || last_error FROM tasks WHERE id = 'bad/1'")" = "open 1 ref 'no-such-branch' is not a branch, tag or commit of $REMOTE" ]
}

@test "a stale lock in the git directory (a worker killed mid-git) doesn't fail the next task" {
  "$TASK" add s/1 "first"
  export RALPH_AGENT_CMD='echo "$RALPH_TASK_ID" > id.txt'
  run "$RALPH" build --max-iterations 1
  [ "$status" -eq 0 ]
  : >"$RALPH_WORKSPACE.git/index.lock"
  "$TASK" add s/2 "second"
  run "$RALPH" build --max-iterations 1
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT status || ' ' || attempts FROM tasks WHERE id = 's/2'")" = "done 1" ]
  [ "$(git -C "$REMOTE" show ralph/s/2:id.txt)" = s/2 ]
}

# hang_pushes: the remote's pre-receive hook hangs (the remote's own hook,
# run by the remote's receive-pack; its pid in hook.pid): pushes never
# finish by themselves.
hang_pushes() {
  printf '#!/bin/sh\necho $$ > %s\nexec %s 300\n' "$BATS_TEST_TMPDIR/hook.pid" "$BATS_TEST_TMPDIR/hook-sleep" \
    >"$REMOTE/hooks/pre-receive"
  ln -s "$(command -v sleep)" "$BATS_TEST_TMPDIR/hook-sleep"
  chmod +x "$REMOTE/hooks/pre-receive"
}

@test "a push that can't finish inside the lease is stopped: handed back, nothing on the remote, no attempt counted" {
  export RALPH_LEASE_SECONDS=6 RALPH_AGENT_STOP_SECONDS=1 RALPH_AGENT_CMD='echo work > work.txt'
  "$TASK" add p/1 "the push hangs"
  hang_pushes
  run timeout 60 "$RALPH" build --max-iterations 1
  echo "$output"
  [ "$status" -eq 0 ]
  # The push's bound: the lease less the agent's stop time and 2 s.
  [[ $output == *"the push did not finish within 3s"* ]]
  [[ $output == *"task p/1: could not push ralph/p/1 to $REMOTE: "*"handing it back"* ]]
  # The remote's side of the push went with it (a zombie nobody reaped yet
  # counts as gone).
  wait_for 5 gone "$(<"$BATS_TEST_TMPDIR/hook.pid")"
  run git -C "$REMOTE" rev-parse --verify --quiet refs/heads/ralph/p/1
  [ "$status" -ne 0 ]
  [ "$(sql "SELECT status || ' ' || attempts FROM tasks WHERE id = 'p/1'")" = "open 0" ]
}

@test "the lease lost during the push: the push is stopped and waited for, nothing is pushed or recorded" {
  export RALPH_LEASE_SECONDS=30 RALPH_AGENT_STOP_SECONDS=1 RALPH_AGENT_CMD='echo work > work.txt'
  "$TASK" add l/1 "released mid-push"
  hang_pushes
  set -m
  "$RALPH" build --max-iterations 1 2>"$BATS_TEST_TMPDIR/worker.log" &
  WORKER_PID=$!
  set +m
  # The push hangs in the remote's hook; an operator releases the task.
  wait_for 30 test -s "$BATS_TEST_TMPDIR/hook.pid"
  "$TASK" release l/1 >/dev/null
  wait_for 30 gone "$WORKER_PID" || { cat "$BATS_TEST_TMPDIR/worker.log"; false; }
  cat "$BATS_TEST_TMPDIR/worker.log"
  grep -q "task l/1: the lease was lost (cannot renew task l/1: it is open" "$BATS_TEST_TMPDIR/worker.log"
  grep -q "the agent and the step in flight were stopped; nothing is pushed or finished" "$BATS_TEST_TMPDIR/worker.log"
  # The push in flight went with the worker's child: the hook is gone, and
  # the branch never reached the remote, then or later.
  wait_for 5 gone "$(<"$BATS_TEST_TMPDIR/hook.pid")"
  sleep 1
  run git -C "$REMOTE" rev-parse --verify --quiet refs/heads/ralph/l/1
  [ "$status" -ne 0 ]
  [ "$(sql "SELECT status || ' ' || (result IS NULL) FROM tasks WHERE id = 'l/1'")" = "open true" ]
  WORKER_PID=""
}

@test "a lease that ran out is gone: neither renewed nor finished, even before another worker takes the task" {
  "$TASK" add x/1 "expires"
  RALPH_LEASE_SECONDS=1 "$TASK" claim --agent a1 >/dev/null
  sleep 1.5
  run "$TASK" renew x/1 --agent a1
  [ "$status" -eq 5 ]
  [ "$output" = "task: cannot renew task x/1: the lease of agent a1 on it ran out (RALPH_LEASE_SECONDS)" ]
  run "$TASK" "done" x/1 --agent a1 --result '{"commit": "c"}'
  [ "$status" -eq 5 ]
  [ "$output" = "task: cannot finish task x/1: the lease of agent a1 on it ran out (RALPH_LEASE_SECONDS)" ]
  [ "$(sql "SELECT status || ' ' || (result IS NULL) FROM tasks WHERE id = 'x/1'")" = "active true" ]
}

@test "a full disk under the git directory: the commit fails, the task is handed back, no attempt counted" {
  ((EUID == 0)) || skip "needs root (to mount a small tmpfs)"
  local small="$BATS_TEST_TMPDIR/small"
  mkdir -p "$small"
  mount -t tmpfs -o size=512k tmpfs "$small" || skip "cannot mount a tmpfs here"
  export RALPH_GIT_DIR="$small/git" RALPH_AGENT_CMD='head -c 2000000 /dev/urandom > big.bin'
  "$TASK" add full/1 "fills the disk"
  run "$RALPH" build --max-iterations 1
  umount "$small"
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"task full/1: could not commit on ralph/full/1: "*"handing it back (not the task's fault: no attempt counted)"* ]]
  [ "$(sql "SELECT status || ' ' || attempts FROM tasks WHERE id = 'full/1'")" = "open 0" ]
}

@test "one worker per workspace: a second one on the same tree is refused with what to change" {
  export RALPH_AGENT_CMD='sleep 300'
  "$TASK" add one/1 "holds the tree"
  set -m
  "$RALPH" build --max-iterations 1 2>"$BATS_TEST_TMPDIR/first.log" &
  WORKER_PID=$!
  set +m
  wait_for 20 grep -q "agent running" "$BATS_TEST_TMPDIR/first.log"
  run "$RALPH" build --max-iterations 1
  [ "$status" -eq 2 ]
  [[ ${lines[-1]} == "ralph: another worker uses $RALPH_WORKSPACE: give each worker its own RALPH_WORKSPACE" ]]
  # The first goes on undisturbed; stopped, it hands its task back.
  kill -TERM "$WORKER_PID"
  wait_for 15 gone "$WORKER_PID"
  WORKER_PID=""
  [ "$(task_status one/1)" = open ]
}
