#!/usr/bin/env bats
# The repository's credential (issue 17, part 2): a token in RALPH_REPO_URL
# reaches the remote, a real git smart-HTTP server that demands it
# (lib/git_http.py: `git http-backend` behind HTTP Basic), through git's
# store helper reading a file in the worker's state directory, and nowhere
# else: not a log line, not git's argv (a git wrapper records every
# command line), not the database, not the git directory, not the agent.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

setup() {
  fresh_db
  make_remote
  export TMPDIR=$BATS_TEST_TMPDIR RALPH_IDLE_MIN_SECONDS=1 RALPH_IDLE_MAX_SECONDS=1
  TOKEN="tok-$RANDOM$RANDOM$RANDOM"
  python3 "$BATS_TEST_DIRNAME/lib/git_http.py" "$BATS_TEST_TMPDIR/port" "$BATS_TEST_TMPDIR" git "$TOKEN" \
    >"$BATS_TEST_TMPDIR/http.log" 2>&1 &
  HTTP_PID=$!
  wait_for 10 test -s "$BATS_TEST_TMPDIR/port"
  PORT=$(<"$BATS_TEST_TMPDIR/port")
  # git's every command line, then the real git.
  SHIMS="$BATS_TEST_TMPDIR/shims"
  mkdir -p "$SHIMS"
  printf '#!/usr/bin/env bash\nprintf "%%s\\n" "git $*" >>%q\nexec %q "$@"\n' \
    "$BATS_TEST_TMPDIR/argv.log" "$(command -v git)" >"$SHIMS/git"
  chmod +x "$SHIMS/git"
}

teardown() {
  kill "$HTTP_PID" 2>/dev/null || true
  wait "$HTTP_PID" 2>/dev/null || true
}

@test "a token in RALPH_REPO_URL reaches the remote through git's store helper, and nowhere else" {
  "$TASK" add h/1 "over http"
  export RALPH_REPO_URL="http://git:$TOKEN@127.0.0.1:$PORT/remote.git"
  export RALPH_AGENT_CMD='echo over-http > h.txt; env > env.txt'
  PATH="$SHIMS:$PATH" run "$RALPH" build --max-iterations 1
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(task_status h/1)" = "done" ]
  [ "$(git -C "$REMOTE" show ralph/h/1:h.txt)" = over-http ]
  # The remote asked (401), then let the fetch and the push in.
  grep -q "401$" "$BATS_TEST_TMPDIR/http.log"
  grep -q "^GET /remote.git/info/refs ok$" "$BATS_TEST_TMPDIR/http.log"
  grep -q "^POST /remote.git/git-receive-pack ok$" "$BATS_TEST_TMPDIR/http.log"
  # The log names the URL without its user info.
  [[ $output == *"working on http://127.0.0.1:$PORT/remote.git in "* ]]
  # The token: in no log line, no git command line, no row, not in the git
  # directory or the tree, not in the agent's environment.
  [[ $output != *"$TOKEN"* ]]
  grep -q "^git .*push" "$BATS_TEST_TMPDIR/argv.log"
  run grep -cF -- "$TOKEN" "$BATS_TEST_TMPDIR/argv.log"
  [ "$output" = 0 ]
  run grep -rlF -- "$TOKEN" "$RALPH_WORKSPACE.git" "$RALPH_WORKSPACE"
  [ "$status" -eq 1 ]
  [ "$(sql "SELECT count(*) FROM tasks t WHERE t::text LIKE '%$TOKEN%'")" -eq 0 ]
  run git -C "$REMOTE" show ralph/h/1:env.txt
  [ "$status" -eq 0 ]
  [[ $output != *"$TOKEN"* && $output != *RALPH_REPO_URL* ]]
}

@test "a wrong token: the remote refuses it, the task is handed back, no attempt counted, the token shown nowhere" {
  "$TASK" add w/1 "refused"
  export RALPH_REPO_URL="http://git:not-the-token@127.0.0.1:$PORT/remote.git" RALPH_AGENT_CMD='touch ran'
  run "$RALPH" build --max-iterations 1
  echo "$output"
  [ "$status" -eq 0 ]
  [[ $output == *"task w/1: could not prepare the workspace from http://127.0.0.1:$PORT/remote.git: "*"handing it back"* ]]
  [[ $output != *not-the-token* ]]
  [ "$(sql "SELECT status || ' ' || attempts || ' ' || coalesce(last_error, '-') FROM tasks WHERE id = 'w/1'")" = "open 0 -" ]
  run grep -c " ok$" "$BATS_TEST_TMPDIR/http.log"
  [ "$output" = 0 ]
}
