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

teardown() {
  if [[ -n $WORKER_PID ]]; then
    kill -KILL "$WORKER_PID" 2>/dev/null || true
    wait "$WORKER_PID" 2>/dev/null || true
  fi
  local pid
  if [[ -s $AGENT_PID_FILE ]]; then
    pid=$(<"$AGENT_PID_FILE")
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
}

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
  [ -z "$(find "$BATS_TEST_TMPDIR" -maxdepth 1 -name 'ralph.*')" ]
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

@test "an agent that commits on its own still gets its work pushed and recorded" {
  "$TASK" add own/1 "commits itself"
  export RALPH_AGENT_CMD='echo mine > mine.txt && git add mine.txt && git commit -qm "agent commit"'
  run "$RALPH" build --until-empty
  [ "$status" -eq 0 ]
  [ "$(task_status own/1)" = "done" ]
  [ "$(task_result own/1 changed)" = true ]
  [ "$(git -C "$REMOTE" show ralph/own/1:mine.txt)" = mine ]
  [ "$(git -C "$REMOTE" log --format=%s main..ralph/own/1)" = "$(printf 'ralph: own/1\nagent commit')" ]
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

@test "a failing agent hands the task back" {
  "$TASK" add f/1 "fails"
  export RALPH_AGENT_CMD='echo partial > partial.txt; exit 7'
  run "$RALPH" build --max-iterations 1
  [ "$status" -eq 0 ]
  [[ $output == *"task f/1: the agent failed (exit 7); releasing it"* ]]
  [ "$(sql "SELECT status || ' ' || coalesce(assignee, '-') FROM tasks WHERE id = 'f/1'")" = "open -" ]
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
  [ "$rc" -eq 0 ]
  [ "$(git -C "$REMOTE" show ralph/late/1:late.txt)" = late ]
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
  [ "$(sql "SELECT status || ' ' || coalesce(assignee, '-') || ' ' || retry_count FROM tasks WHERE id = 's/1'")" = "open - 0" ]
  [ "$(sql "SELECT status FROM agents")" = stopped ]
  # The agent went with it, and the worker's scratch directory too.
  run alive "$agent"
  [ "$status" -eq 1 ]
  [ -z "$(find "$BATS_TEST_TMPDIR" -maxdepth 1 -name 'ralph.*')" ]
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

@test "SIGKILL mid-task loses nothing: reclaimable after the lease, retry_count 1" {
  export RALPH_LEASE_SECONDS=2
  "$TASK" add k/1 "killed"
  export RALPH_AGENT_CMD
  RALPH_AGENT_CMD=$(slow_agent)
  start_worker
  wait_for 20 test -e "$BATS_TEST_TMPDIR/started"
  kill -KILL "$WORKER_PID"
  wait "$WORKER_PID" || true
  WORKER_PID=""
  # The orphaned agent would finish on its own; stop it for the test.
  kill -KILL "$(<"$AGENT_PID_FILE")"
  [ "$(task_status k/1)" = active ]
  run "$TASK" claim --agent rescuer
  [ "$status" -eq 3 ]
  # Nobody renews the lease now: it runs out.
  sleep 2.5
  run "$TASK" --json claim --agent rescuer
  [ "$status" -eq 0 ]
  [ "$(jq -r .id <<<"$output")" = k/1 ]
  [ "$(jq -r .retry_count <<<"$output")" -eq 1 ]
  # A new worker finishes it.
  "$TASK" release k/1 >/dev/null
  RALPH_AGENT_CMD='echo rescued > r.txt' run "$RALPH" build --until-empty
  [ "$status" -eq 0 ]
  [ "$(task_status k/1)" = "done" ]
  [ "$(git -C "$REMOTE" show ralph/k/1:r.txt)" = rescued ]
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
  [ "$(sql "SELECT retry_count FROM tasks WHERE id = 'n/1'")" -eq 0 ]
}

@test "the agent gets the task, the prompt, the model and the tools" {
  "$TASK" add env/1 "check the environment" --step "look around"
  export RALPH_AGENT_CMD='{ echo "$RALPH_TASK_ID"; echo "$RALPH_MODEL_ID"; echo "$PWD"; task --json show "$RALPH_TASK_ID" | jq -r .status; ralph --version; cat "$RALPH_PROMPT_FILE"; } > env.txt'
  run "$RALPH" --model opus build --until-empty
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
  [ -f "$BATS_TEST_TMPDIR/home/.claude/skills/ralph-build/SKILL.md" ]
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
  [[ $output == *"workspace $RALPH_WORKSPACE is not empty and not a git repository"* ]]
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
