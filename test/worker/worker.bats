#!/usr/bin/env bats
# `ralph.sh build` end to end against a real PostgreSQL and a local bare git
# repository. The only stand-in is the agent command (RALPH_AGENT_CMD
# replaces `claude -p`, the paid model API): a script that edits a file.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

setup() {
  fresh_db
  make_remote
  export RALPH_IDLE_MIN_SECONDS=1 RALPH_IDLE_MAX_SECONDS=1
  # The worker's scratch directories land in the test's temp dir.
  export TMPDIR=$BATS_TEST_TMPDIR
  WORKER_PID=""
  AGENT_PID_FILE="$BATS_TEST_TMPDIR/agent.pid"
}

teardown() { kill_worker_and_agent; }

# slow_agent [PREFIX]: a stand-in agent that records its pid, says it
# started, and sleeps.
slow_agent() {
  printf '%secho $$ > %q; touch %q; sleep 300' "${1:-}" "$AGENT_PID_FILE" "$BATS_TEST_TMPDIR/started"
}

# start_worker ARGS…: ralph.sh build in the background. With job control
# on, as from a terminal or a container runtime: a background job of a
# script would otherwise start with SIGINT ignored (and bash can't trap a
# signal ignored at entry).
start_worker() {
  set -m
  "$RALPH" build "$@" 2>"$BATS_TEST_TMPDIR/worker.log" &
  WORKER_PID=$!
  set +m
}

@test "task -> branch -> commit -> pushed -> done with that commit in the result" {
  "$TASK" add e2e/1 "append a line" --category feat
  export RALPH_AGENT_CMD='printf "%s by %s\n" "$RALPH_TASK_ID" "$RALPH_MODEL_ID" >> worked.txt && grep -q "append a line" "$RALPH_PROMPT_FILE" && echo "summary: appended"'
  run "$RALPH" build --until-empty
  [ "$status" -eq 0 ]
  [ "$(task_status e2e/1)" = "done" ]
  local commit branch
  commit=$(task_result e2e/1 commit)
  branch=$(task_result e2e/1 branch)
  [ "$branch" = ralph/e2e/1 ]
  [[ $commit =~ ^[0-9a-f]{40}$ ]]
  # The commit is the branch's head in the remote, on top of main, with the
  # agent's change.
  [ "$(git -C "$REMOTE" rev-parse "refs/heads/$branch")" = "$commit" ]
  [ "$(git -C "$REMOTE" rev-parse "$commit^")" = "$(git -C "$REMOTE" rev-parse main)" ]
  [ "$(git -C "$REMOTE" show "$commit:worked.txt")" = "e2e/1 by claude-sonnet-4-5" ]
  [ "$(git -C "$REMOTE" log -1 --format=%s "$commit")" = "ralph: e2e/1" ]
  [ "$(task_result e2e/1 changed)" = true ]
  [[ "$(task_result e2e/1 summary)" == *"summary: appended"* ]]
  [[ $output == *"ralph: task e2e/1: agent: summary: appended"* ]]
  # main is untouched; the agent is registered and now stopped.
  [ "$(git -C "$REMOTE" rev-list --count main)" -eq 1 ]
  [ "$(sql "SELECT status FROM agents")" = stopped ]
  [ -z "$(find "$BATS_TEST_TMPDIR" -maxdepth 1 -name 'ralph*')" ]
}

@test "several tasks in one run: a branch each, fetched into the same workspace" {
  "$TASK" add m/1 "one" --priority 1
  "$TASK" add m/2 "two" --priority 2
  "$TASK" add m/3 "three" --priority 3 --blocked-by m/1
  export RALPH_AGENT_CMD='echo "$RALPH_TASK_ID" > task.txt; ls > "$RALPH_STATE_DIR/ls" && mv "$RALPH_STATE_DIR/ls" files.txt'
  run "$RALPH" --model haiku build --until-empty
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT string_agg(id, ',' ORDER BY id) FROM tasks WHERE status = 'done'")" = "m/1,m/2,m/3" ]
  local id
  for id in m/1 m/2 m/3; do
    [ "$(git -C "$REMOTE" show "ralph/$id:task.txt")" = "$id" ]
    # Each branch starts from main: no file from an earlier task.
    [ "$(git -C "$REMOTE" show "ralph/$id:files.txt")" = "$(printf 'README.md\ntask.txt')" ]
    [ "$(task_result "$id" model)" = claude-haiku-4-5 ]
  done
}

@test "a task's ref is the base of its branch" {
  git -C "$BATS_TEST_TMPDIR/seed" checkout -qb release
  echo "v2" >"$BATS_TEST_TMPDIR/seed/VERSION"
  git -C "$BATS_TEST_TMPDIR/seed" add VERSION
  git -C "$BATS_TEST_TMPDIR/seed" -c user.name=t -c user.email=t@l commit -qm v2
  git -C "$BATS_TEST_TMPDIR/seed" push -q "$REMOTE" release
  "$TASK" add r/1 "on release" --ref release
  export RALPH_AGENT_CMD='cat VERSION > seen.txt'
  run "$RALPH" build --until-empty
  [ "$status" -eq 0 ]
  [ "$(git -C "$REMOTE" show ralph/r/1:seen.txt)" = v2 ]
}

@test "an agent that changes nothing still gets a recorded commit" {
  "$TASK" add n/1 "nothing to do"
  export RALPH_AGENT_CMD='true'
  run "$RALPH" build --until-empty
  [ "$status" -eq 0 ]
  [ "$(task_status n/1)" = "done" ]
  [ "$(task_result n/1 changed)" = false ]
  [ "$(git -C "$REMOTE" rev-parse ralph/n/1)" = "$(task_result n/1 commit)" ]
}

@test "the tree has no .git: an agent's own repository there is neither committed nor read by the worker" {
  "$TASK" add own/1 "commits itself"
  # The agent finds no git directory in its tree, makes its own, commits
  # there and writes a hook and an fsmonitor into its config.
  # shellcheck disable=SC2016 # expanded by the agent's shell
  export RALPH_AGENT_CMD='test ! -e .git && test -f README.md && git init -q . && echo mine > mine.txt && git add mine.txt \
    && git -c user.name=a -c user.email=a@localhost commit -qm "agent commit" \
    && git config core.fsmonitor "touch $PWD/../fsmonitor-ran" && git config core.hooksPath "$PWD/.git/hooks" \
    && printf "#!/bin/sh\ntouch $PWD/../hook-ran\n" > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit'
  run "$RALPH" build --until-empty
  [ "$status" -eq 0 ]
  [ "$(task_status own/1)" = "done" ]
  [ "$(task_result own/1 changed)" = true ]
  [ "$(git -C "$REMOTE" show ralph/own/1:mine.txt)" = mine ]
  # Only the worker's commit on top of main, and no .git in it.
  [ "$(git -C "$REMOTE" log --format=%s main..ralph/own/1)" = "ralph: own/1" ]
  run git -C "$REMOTE" ls-tree -r --name-only ralph/own/1
  [ "$output" = "$(printf 'README.md\nmine.txt')" ]
  [ ! -e "$BATS_TEST_TMPDIR/fsmonitor-ran" ] && [ ! -e "$BATS_TEST_TMPDIR/hook-ran" ]
}

@test "--max-iterations stops after N tasks" {
  "$TASK" add m/1 "one"
  "$TASK" add m/2 "two"
  "$TASK" add m/3 "three"
  export RALPH_AGENT_CMD='true'
  run "$RALPH" build --max-iterations 2
  [ "$status" -eq 0 ]
  [ "$(sql "SELECT count(*) FROM tasks WHERE status = 'done'")" -eq 2 ]
  [ "$(task_status m/3)" = open ]
}

@test "a failing agent's attempt is recorded as failed, with its reason" {
  "$TASK" add f/1 "fails"
  export RALPH_AGENT_CMD='echo partial > partial.txt; echo "could not build"; exit 7'
  run "$RALPH" build --max-iterations 1
  [ "$status" -eq 0 ]
  [[ $output == *"task f/1: the agent failed (exit 7): could not build"* ]]
  [[ $output == *"failed f/1: fails [p2 feat, open, attempt 1, not before "*", last error: the agent failed (exit 7): could not build]"* ]]
  [ "$(sql "SELECT status || ' ' || coalesce(assignee, '-') || ' ' || attempts || ' ' || (not_before > now()) FROM tasks WHERE id = 'f/1'")" = "open - 1 true" ]
  # Nothing was pushed for it.
  run git -C "$REMOTE" rev-parse --verify --quiet refs/heads/ralph/f/1
  [ "$status" -ne 0 ]
}

@test "an idle worker backs off, then takes a task that appears" {
  export RALPH_AGENT_CMD='echo late > late.txt'
  start_worker --max-iterations 1
  sleep 1.5
  alive "$WORKER_PID"
  grep -q "working on" "$BATS_TEST_TMPDIR/worker.log"
  "$TASK" add late/1 "added while the worker waits"
  local rc=0
  wait_for 15 task_is late/1 "done" || rc=$?
  wait "$WORKER_PID" || rc=$?
  WORKER_PID=""
  # On a failure, what the worker said (the task's status, the worker's log).
  ((rc == 0)) || { echo "rc $rc, late/1 is $(task_status late/1)"; cat "$BATS_TEST_TMPDIR/worker.log"; }
  [ "$rc" -eq 0 ]
  [ "$(git -C "$REMOTE" show ralph/late/1:late.txt)" = late ]
}

@test "a worker started while the database is down waits for it, then works" {
  export RALPH_AGENT_CMD='echo up > up.txt'
  "$TASK" add up/1 "taken once the database is back"
  db_down
  start_worker --max-iterations 1
  sleep 2
  alive "$WORKER_PID" || { db_up; cat "$BATS_TEST_TMPDIR/worker.log"; false; }
  db_up
  grep -q "waiting for the database to register the agent" "$BATS_TEST_TMPDIR/worker.log"
  local rc=0
  wait_for 20 task_is up/1 "done" || rc=$?
  wait "$WORKER_PID" || rc=$?
  WORKER_PID=""
  [ "$rc" -eq 0 ]
  [ "$(git -C "$REMOTE" show ralph/up/1:up.txt)" = up ]
}

@test "SIGTERM mid-task releases the task and exits 0 within 10 s" {
  "$TASK" add s/1 "slow"
  export RALPH_AGENT_CMD
  RALPH_AGENT_CMD=$(slow_agent)
  start_worker
  wait_for 20 test -e "$BATS_TEST_TMPDIR/started"
  [ "$(task_status s/1)" = active ]
  local agent t0=$SECONDS rc=0
  agent=$(<"$AGENT_PID_FILE")
  kill -TERM "$WORKER_PID"
  wait "$WORKER_PID" || rc=$?
  WORKER_PID=""
  [ "$rc" -eq 0 ]
  [ $((SECONDS - t0)) -le 10 ]
  # Handed back, not failed: the attempt doesn't count.
  [ "$(sql "SELECT status || ' ' || coalesce(assignee, '-') || ' ' || attempts FROM tasks WHERE id = 's/1'")" = "open - 0" ]
  [ "$(sql "SELECT status FROM agents")" = stopped ]
  # The agent went with it (every process of its group), and the worker's
  # scratch directory too.
  run group_alive "$agent"
  [ "$status" -eq 1 ]
  [ -z "$(find "$BATS_TEST_TMPDIR" -maxdepth 1 -name 'ralph*')" ]
  grep -q "stopping: releasing task s/1" "$BATS_TEST_TMPDIR/worker.log"
}

@test "SIGINT mid-task does the same" {
  "$TASK" add s/2 "slow"
  export RALPH_AGENT_CMD
  RALPH_AGENT_CMD=$(slow_agent)
  start_worker
  wait_for 20 test -e "$BATS_TEST_TMPDIR/started"
  local rc=0
  kill -INT "$WORKER_PID"
  wait "$WORKER_PID" || rc=$?
  WORKER_PID=""
  [ "$rc" -eq 0 ]
  [ "$(task_status s/2)" = open ]
}

@test "a second signal forces the exit" {
  "$TASK" add s/3 "slow to stop"
  # An agent that ignores SIGTERM: the first signal's cleanup waits for it.
  export RALPH_AGENT_CMD RALPH_AGENT_STOP_SECONDS=30
  RALPH_AGENT_CMD=$(slow_agent "trap '' TERM; ")
  start_worker
  wait_for 20 test -e "$BATS_TEST_TMPDIR/started"
  local t0=$SECONDS rc=0
  kill -TERM "$WORKER_PID"
  wait_for 5 grep -q "stopping" "$BATS_TEST_TMPDIR/worker.log"
  kill -TERM "$WORKER_PID"
  wait "$WORKER_PID" || rc=$?
  WORKER_PID=""
  [ "$rc" -eq 130 ]
  [ $((SECONDS - t0)) -le 8 ]
  grep -q "second signal: exiting now" "$BATS_TEST_TMPDIR/worker.log"
}

@test "SIGKILL mid-task loses nothing: the agent dies with the worker, the task is a failed attempt after the lease" {
  export RALPH_LEASE_SECONDS=2 RALPH_RETRY_BASE_SECONDS=0
  "$TASK" add k/1 "killed"
  export RALPH_AGENT_CMD
  RALPH_AGENT_CMD=$(slow_agent)
  start_worker
  wait_for 20 test -e "$BATS_TEST_TMPDIR/started"
  local agent
  agent=$(<"$AGENT_PID_FILE")
  kill -KILL "$WORKER_PID"
  wait "$WORKER_PID" || true
  WORKER_PID=""
  # Nobody kills the agent but its watchdog: it is gone within the lease,
  # with every process of its group (its `sleep`).
  wait_for "$RALPH_LEASE_SECONDS" group_gone "$agent"
  [ "$(task_status k/1)" = active ]
  run "$TASK" claim --agent rescuer
  [ "$status" -eq 3 ]
  # Nobody renews the lease now: it runs out, and that attempt failed.
  sleep 2.5
  run "$TASK" --json claim --agent rescuer
  [ "$status" -eq 0 ]
  [ "$(jq -r '.id + " " + (.attempts | tostring)' <<<"$output")" = "k/1 2" ]
  [[ $(jq -r .last_error <<<"$output") == "the lease of "*" expired (attempt 1)"* ]]
  # A new worker finishes it.
  "$TASK" release k/1 >/dev/null
  RALPH_AGENT_CMD='echo rescued > r.txt' run "$RALPH" build --until-empty
  [ "$status" -eq 0 ]
  [ "$(task_status k/1)" = "done" ]
  [ "$(git -C "$REMOTE" show ralph/k/1:r.txt)" = rescued ]
}

# What a SIGKILLed worker started lives on a while: the renewer until its
# next check (a third of the lease: 10 s here), the agent's watchdog until
# it has stopped the agent. None of it holds the workspace's lock: a worker
# restarted on that workspace at once (a container's restart policy) is
# not refused as "another worker".
@test "SIGKILL mid-task: a worker restarted at once on the same workspace is not refused" {
  export RALPH_LEASE_SECONDS=30
  "$TASK" add k/1 "killed"
  export RALPH_AGENT_CMD
  RALPH_AGENT_CMD=$(slow_agent)
  start_worker
  wait_for 20 test -e "$BATS_TEST_TMPDIR/started"
  # The worker's children other than the agent: its renewer and the
  # agent's watchdog.
  local worker=$WORKER_PID agent pid left=() id running=0
  agent=$(<"$AGENT_PID_FILE")
  for pid in $(pgrep -P "$worker"); do
    [ "$pid" = "$agent" ] || left+=("$(proc_id "$pid")")
  done
  kill -KILL "$worker"
  wait "$worker" || true
  WORKER_PID=""
  # Some still run when the new worker starts (the renewer sleeps until
  # its next check): else this would prove nothing.
  for id in "${left[@]}"; do
    if alive "$id"; then running=$((running + 1)); fi
  done
  [ "$running" -gt 0 ]
  RALPH_AGENT_CMD=true run "$RALPH" build --until-empty
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output != *"another worker uses"* ]]
  [[ $output == *"stopped after 0 task(s)"* ]]
  for id in "${left[@]}"; do
    if alive "$id"; then kill -KILL "${id%%:*}"; fi
  done
}

@test "an always-failing agent: failed after exactly 3 attempts, backing off, and the worker moves on" {
  export RALPH_RETRY_BASE_SECONDS=1 RALPH_RETRY_MAX_SECONDS=4 RALPH_IDLE_MIN_SECONDS=1 RALPH_IDLE_MAX_SECONDS=1
  "$TASK" add bad/1 "always fails" --priority 1
  "$TASK" add ok/1 "works" --priority 2
  export TRIES_DIR=$BATS_TEST_TMPDIR RALPH_AGENT_ENV=TRIES_DIR
  # shellcheck disable=SC2016,SC2089 # expanded by the agent's shell
  export RALPH_AGENT_CMD='date +%s.%N >> "$TRIES_DIR/tries.${RALPH_TASK_ID%%/*}"; [ "$RALPH_TASK_ID" = ok/1 ] || exit 3'
  run "$RALPH" build --max-iterations 4
  [ "$status" -eq 0 ] || { echo "exit $status:"; echo "$output"; false; }
  [ "$(sql "SELECT status || ' ' || attempts || ' ' || last_error FROM tasks WHERE id = 'bad/1'")" = "failed 3 the agent failed (exit 3): " ]
  [ "$(task_status ok/1)" = "done" ]
  # Exactly three tries, the second at least 1 s after the first, the third at least 2 s after the second.
  mapfile -t tries <"$BATS_TEST_TMPDIR/tries.bad"
  [ "${#tries[@]}" -eq 3 ]
  awk -v a="${tries[0]}" -v b="${tries[1]}" -v c="${tries[2]}" 'BEGIN { exit !(b - a >= 1 && c - b >= 2) }'
  # Between the first failure and the second try it worked on the other task.
  [[ $(grep -n "task ok/1: done" <<<"$output" | cut -d: -f1) -lt $(grep -n "task bad/1: claimed (attempt 2)" <<<"$output" | cut -d: -f1) ]]
  # A failed task is not claimed again.
  RALPH_AGENT_CMD=true run "$RALPH" build --until-empty
  [[ $output != *"claimed"* ]]
}

@test "a lost lease stops the agent: nothing committed, pushed or finished" {
  "$TASK" add lost/1 "taken away"
  # shellcheck disable=SC2090 # a command for the agent's shell
  export RALPH_LEASE_SECONDS=3 RALPH_AGENT_CMD
  RALPH_AGENT_CMD=$(slow_agent "echo work > work.txt; ")
  start_worker --max-iterations 1
  wait_for 20 test -e "$BATS_TEST_TMPDIR/started"
  local agent rc=0
  agent=$(<"$AGENT_PID_FILE")
  # An operator takes the task back while the agent works.
  "$TASK" release lost/1 >/dev/null
  wait_for 10 group_gone "$agent"
  wait "$WORKER_PID" || rc=$?
  WORKER_PID=""
  [ "$rc" -eq 0 ]
  grep -q "task lost/1: the lease was lost (cannot renew task lost/1: it is open" "$BATS_TEST_TMPDIR/worker.log"
  grep -q "the agent and the step in flight were stopped; nothing is pushed or finished for this attempt" "$BATS_TEST_TMPDIR/worker.log"
  run git -C "$REMOTE" rev-parse --verify --quiet refs/heads/ralph/lost/1
  [ "$status" -ne 0 ]
  [ "$(sql "SELECT status || ' ' || coalesce(assignee, '-') || ' ' || (result IS NULL) FROM tasks WHERE id = 'lost/1'")" = "open - true" ]
}

@test "the push never overwrites what another worker pushed meanwhile" {
  "$TASK" add race/1 "contested"
  # While the agent works, someone else pushes the task's branch.
  local other="$BATS_TEST_TMPDIR/other"
  git clone -q "$REMOTE" "$other"
  git -C "$other" -c user.name=o -c user.email=o@localhost commit -q --allow-empty -m "the other worker's"
  export OTHER_CLONE=$other RALPH_AGENT_ENV=OTHER_CLONE
  # shellcheck disable=SC2016 # expanded by the agent's shell
  export RALPH_AGENT_CMD='git -C "$OTHER_CLONE" push -q origin HEAD:refs/heads/ralph/race/1; echo mine > mine.txt'
  run "$RALPH" build --max-iterations 1
  [ "$status" -eq 0 ]
  [[ $output == *"task race/1: the push of ralph/race/1 was refused: "* ]]
  [ "$(git -C "$REMOTE" log -1 --format=%s ralph/race/1)" = "the other worker's" ]
  [ "$(sql "SELECT status || ' ' || attempts FROM tasks WHERE id = 'race/1'")" = "open 1" ]
}

@test "the lease is renewed while the agent runs" {
  export RALPH_LEASE_SECONDS=2
  "$TASK" add n/1 "longer than a lease"
  export RALPH_AGENT_CMD='sleep 5; echo done > out.txt'
  start_worker --until-empty
  sleep 3.5
  # Past the first lease, still held, and nobody else can take it.
  [ "$(task_status n/1)" = active ]
  run "$TASK" claim --agent thief
  [ "$status" -eq 3 ]
  local rc=0
  wait "$WORKER_PID" || rc=$?
  WORKER_PID=""
  [ "$rc" -eq 0 ]
  [ "$(task_status n/1)" = "done" ]
  [ "$(sql "SELECT attempts FROM tasks WHERE id = 'n/1'")" -eq 1 ]
}

@test "the agent gets the task, the prompt, the model and the tools" {
  "$TASK" add env/1 "check the environment" --step "look around"
  export RALPH_AGENT_CMD='{ echo "$RALPH_TASK_ID"; echo "$RALPH_MODEL_ID"; echo "$PWD"; task --json show "$RALPH_TASK_ID" | jq -r .status; ralph --version; cat "$RALPH_PROMPT_FILE"; } > env.txt'
  # The agent's own connection (the agent role's, in a deployment).
  RALPH_AGENT_DB_URL=$RALPH_DB_URL run "$RALPH" --model opus build --until-empty
  [ "$status" -eq 0 ]
  run git -C "$REMOTE" show ralph/env/1:env.txt
  [ "${lines[0]}" = env/1 ]
  [ "${lines[1]}" = claude-opus-4-5 ]
  [ "${lines[2]}" = "$RALPH_WORKSPACE" ]
  [ "${lines[3]}" = active ]
  [[ ${lines[4]} == "ralph "* ]]
  [[ $output == *"Task env/1 [feat, priority 2]"* ]]
  [[ $output == *"- look around"* ]]
}

@test "the agent's environment holds no database credential of the worker's" {
  "$TASK" add cred/1 "look for credentials"
  export PGPASSWORD=worker-secret RALPH_AGENT_CMD='{ echo "db=${RALPH_DB_URL:-none} pw=${PGPASSWORD:-none}"; task list >/dev/null 2>&1 && echo "task works" || echo "task refused"; } > cred.txt'
  run "$RALPH" build --until-empty
  [ "$status" -eq 0 ]
  [ "$(git -C "$REMOTE" show ralph/cred/1:cred.txt)" = "db=none pw=none
task refused" ]
}

@test "the default agent is claude -p with our settings, hooks and skill" {
  "$TASK" add c/1 "use claude"
  # A `claude` on PATH that records how it was called (the real one needs
  # the paid API).
  local bin="$BATS_TEST_TMPDIR/bin"
  mkdir -p "$bin"
  cat >"$bin/claude" <<EOF
#!/usr/bin/env bash
printf '%s\n' "\$@" > "$BATS_TEST_TMPDIR/claude.args"
settings=\$(sed -n '/^--settings\$/{n;p}' "$BATS_TEST_TMPDIR/claude.args")
cp "\$settings" "$BATS_TEST_TMPDIR/settings.json"
cp -R "\$HOME/.claude/skills" "$BATS_TEST_TMPDIR/skills-seen"
echo edited > edited.txt
EOF
  chmod +x "$bin/claude"
  HOME="$BATS_TEST_TMPDIR/home" PATH="$bin:$PATH" run "$RALPH" --model sonnet build --until-empty
  [ "$status" -eq 0 ]
  [ "$(task_status c/1)" = "done" ]
  run cat "$BATS_TEST_TMPDIR/claude.args"
  [ "${lines[0]}" = -p ]
  [[ $output == *"Task c/1 [feat, priority 2]"* ]]
  [[ $output == *$'--model\nclaude-sonnet-4-5'* ]]
  local settings="$BATS_TEST_TMPDIR/settings.json"
  [ -x "$(jq -r '.hooks.PreToolUse[0].hooks[0].command' "$settings")" ]
  [ -x "$(jq -r '.hooks.SessionEnd[0].hooks[0].command' "$settings")" ]
  [ "$(jq -r '.hooks.PreToolUse[0].matcher' "$settings")" = "Bash|Write|Edit|MultiEdit|NotebookEdit" ]
  # The skill, in the home the agent had.
  [ -f "$BATS_TEST_TMPDIR/skills-seen/ralph-build/SKILL.md" ]
  [ "$(git -C "$REMOTE" show ralph/c/1:edited.txt)" = edited ]
}

@test "build refuses to start without what it needs" {
  run env -u RALPH_REPO_URL "$RALPH" build
  [ "$status" -eq 2 ]
  [[ $output == *"RALPH_REPO_URL is not set"* ]]
  run env -u RALPH_DB_URL "$RALPH" build
  [ "$status" -eq 2 ]
  [[ $output == *"RALPH_DB_URL is not set"* ]]
  # A PATH with what ralph needs up to that check, and no claude.
  local bin="$BATS_TEST_TMPDIR/noclaude" tool
  mkdir -p "$bin"
  for tool in bash dirname readlink jq; do ln -s "$(command -v "$tool")" "$bin/$tool"; done
  run env -u RALPH_AGENT_CMD PATH="$bin" "$RALPH" build --until-empty
  [ "$status" -eq 2 ]
  [[ $output == *"claude (Claude Code) is not on PATH"* ]]
  # Refused before touching the store: not even the schema is there.
  [ "$(sql "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" -eq 0 ]
}

@test "a workspace that can't be prepared hands the task back" {
  "$TASK" add w/1 "somewhere"
  mkdir -p "$RALPH_WORKSPACE"
  echo "not a clone" >"$RALPH_WORKSPACE/stray.txt"
  export RALPH_AGENT_CMD='true'
  run "$RALPH" build --max-iterations 1
  [ "$status" -eq 0 ]
  [[ $output == *"workspace $RALPH_WORKSPACE is not empty and has no git directory in $RALPH_WORKSPACE.git"* ]]
  [ "$(task_status w/1)" = open ]
}

@test "help, version, models and the task passthrough" {
  run "$RALPH" --help
  [ "$status" -eq 0 ]
  [[ $output == *"build [--max-iterations N] [--until-empty]"* ]]
  run "$RALPH" build --help
  [ "$status" -eq 0 ]
  [[ $output == *"--until-empty"* ]]
  run "$RALPH" --version
  [ "$status" -eq 0 ]
  [ "$output" = "ralph $(bash -c "source '$REPO_ROOT/lib/version.sh'; echo \$RALPH_VERSION")" ]
  run "$RALPH" models
  [ "$status" -eq 0 ]
  [[ $output == *$'sonnet\tclaude-sonnet-4-5\t(default)'* ]]
  run "$RALPH" task add pass/1 "through ralph"
  [ "$status" -eq 0 ]
  [ "$(task_status pass/1)" = open ]
  run "$RALPH" frobnicate
  [ "$status" -eq 2 ]
  [[ $output == *"unknown command 'frobnicate'"* ]]
}
