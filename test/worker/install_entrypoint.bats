#!/usr/bin/env bats
# install.sh into a temporary prefix, and the container entrypoint run on
# the host (it lives at /opt/ralph/docker/entrypoint.sh in the images).
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

ENTRYPOINT="$REPO_ROOT/docker/entrypoint.sh"
LATE_PG=""

teardown() {
  if [[ -n $LATE_PG ]]; then
    pg_halt "$LATE_PG"
    rm -rf "$LATE_PG"
  fi
}

# A PATH holding only links to the tools named, in DIR.
tools_path() { # tools_path DIR TOOL…
  local dir=$1 tool
  shift
  mkdir -p "$dir"
  for tool in "$@"; do ln -sf "$(command -v "$tool")" "$dir/$tool"; done
}

@test "install.sh installs into a prefix, twice" {
  local prefix="$BATS_TEST_TMPDIR/prefix"
  run "$REPO_ROOT/install.sh" --prefix "$prefix"
  [ "$status" -eq 0 ]
  [[ $output == *"installed in $prefix/share/ralph"* ]]
  local first
  first=$(cd "$prefix" && find . | sort)
  run "$REPO_ROOT/install.sh" --prefix "$prefix"
  [ "$status" -eq 0 ]
  # The same tree the second time: nothing nested, nothing left over.
  [ "$(cd "$prefix" && find . | sort)" = "$first" ]
  local dir
  for dir in lib db skills hooks docker; do
    [ -d "$prefix/share/ralph/$dir" ]
  done
  [ -f "$prefix/share/ralph/skills/ralph-build/SKILL.md" ]
  [ -x "$prefix/share/ralph/hooks/pre-tool-use.sh" ]
  [ -x "$prefix/share/ralph/docker/entrypoint.sh" ]
  [ ! -e "$prefix/share/ralph/ralph" ]
  [ "$(find "$prefix/share" -mindepth 1 -maxdepth 1)" = "$prefix/share/ralph" ]
  run "$prefix/bin/ralph" --version
  [ "$status" -eq 0 ]
  [[ $output == "ralph "* ]]
  run "$prefix/bin/task" --help
  [ "$status" -eq 0 ]
  # The installed copy works against the store, from anywhere.
  fresh_db
  run bash -c 'cd / && "$0" add inst/1 "installed" && "$1" task --json show inst/1' "$prefix/bin/task" "$prefix/bin/ralph"
  [ "$status" -eq 0 ]
  [ "$(jq -r .id <<<"${lines[1]}")" = inst/1 ]
  # The installed install.sh reinstalls itself.
  run "$prefix/share/ralph/install.sh" --prefix "$prefix"
  [ "$status" -eq 0 ]
  [ "$(cd "$prefix" && find . | sort)" = "$first" ]
}

@test "install.sh names a missing prerequisite and installs nothing" {
  local bin="$BATS_TEST_TMPDIR/bin"
  tools_path "$bin" bash dirname readlink git
  run env PATH="$bin" bash "$REPO_ROOT/install.sh" --prefix "$BATS_TEST_TMPDIR/p2"
  [ "$status" -eq 1 ]
  [[ $output == "install.sh: missing prerequisite 'jq'"* ]]
  [ ! -e "$BATS_TEST_TMPDIR/p2" ]
  tools_path "$bin" jq
  run env PATH="$bin" bash "$REPO_ROOT/install.sh" --prefix "$BATS_TEST_TMPDIR/p2"
  [ "$status" -eq 1 ]
  [[ $output == "install.sh: missing prerequisite 'psql': install the PostgreSQL client"* ]]
  run "$REPO_ROOT/install.sh" --frobnicate
  [ "$status" -eq 1 ]
  [[ $output == *"unknown argument '--frobnicate'"* ]]
}

@test "the entrypoint answers --help and --version with no environment" {
  run env -i PATH="$PATH" "$ENTRYPOINT" --help
  [ "$status" -eq 0 ]
  [[ $output == *"usage: ralph.sh"* ]]
  run env -i PATH="$PATH" "$ENTRYPOINT" --version
  [ "$status" -eq 0 ]
  [[ $output == "ralph "* ]]
  run env -i PATH="$PATH" "$ENTRYPOINT" build --help
  [ "$status" -eq 0 ]
  [[ $output == *"--max-iterations"* ]]
}

@test "the entrypoint names a missing variable" {
  run env -i PATH="$PATH" "$ENTRYPOINT" task list
  [ "$status" -eq 2 ]
  [ "$output" = "ralph-entrypoint: RALPH_DB_URL is not set: pass -e RALPH_DB_URL=postgresql://USER@HOST:5432/DATABASE (and the password in -e PGPASSWORD)" ]
  run env -i PATH="$PATH" RALPH_DB_URL=postgresql://x@127.0.0.1:9/x RALPH_AGENT_CMD=true "$ENTRYPOINT" build
  [ "$status" -eq 2 ]
  [ "$output" = "ralph-entrypoint: RALPH_REPO_URL is not set: pass -e RALPH_REPO_URL=<the git repository the worker changes>" ]
  run env -i PATH="$PATH" RALPH_DB_URL=postgresql://x@127.0.0.1:9/x RALPH_REPO_URL=x RALPH_AGENT_CMD=true RALPH_DB_WAIT_SECONDS=soon "$ENTRYPOINT"
  [ "$status" -eq 2 ]
  [[ $output == *"RALPH_DB_WAIT_SECONDS='soon' is not a number of seconds"* ]]
}

# unreachable_url: a database URL nothing answers at (the entrypoint would
# wait for it).
unreachable_url() {
  local port=$((PG_TEST_PORT + 1))
  while pg_port_in_use "$port"; do port=$((port + 1)); done
  printf 'postgresql://x@127.0.0.1:%s/x\n' "$port"
}

@test "build without model credentials: exit 2 at once, naming where the entrypoint looked" {
  local url home="$BATS_TEST_TMPDIR/home"
  url=$(unreachable_url)
  mkdir -p "$home"
  run env -i PATH="$PATH" HOME="$home" RALPH_DB_URL="$url" RALPH_REPO_URL=x "$ENTRYPOINT" build
  [ "$status" -eq 2 ]
  [ "$output" = "ralph-entrypoint: no credentials for Claude Code: ANTHROPIC_API_KEY and CLAUDE_CODE_OAUTH_TOKEN are unset and there is no readable $home/.claude/.credentials.json: pass -e ANTHROPIC_API_KEY (or -e CLAUDE_CODE_OAUTH_TOKEN, or mount the credentials file), or set RALPH_AGENT_CMD to another agent" ]
  # CLAUDE_CONFIG_DIR is where Claude Code looks then; no HOME at all is said so.
  run env -i PATH="$PATH" HOME="$home" CLAUDE_CONFIG_DIR="$BATS_TEST_TMPDIR/conf" RALPH_DB_URL="$url" RALPH_REPO_URL=x "$ENTRYPOINT" build
  [ "$status" -eq 2 ]
  [[ $output == *"there is no readable $BATS_TEST_TMPDIR/conf/.credentials.json:"* ]]
  run env -i PATH="$PATH" RALPH_DB_URL="$url" RALPH_REPO_URL=x "$ENTRYPOINT" build
  [ "$status" -eq 2 ]
  [[ $output == *"there is no credentials file (HOME and CLAUDE_CONFIG_DIR are unset)"* ]]
  # Each credential gets past the check, to the wait for the database.
  local cred
  for cred in ANTHROPIC_API_KEY=k CLAUDE_CODE_OAUTH_TOKEN=t; do
    run env -i PATH="$PATH" HOME="$home" RALPH_DB_URL="$url" RALPH_REPO_URL=x RALPH_DB_WAIT_SECONDS=1 "$cred" "$ENTRYPOINT" build
    [ "$status" -eq 1 ]
    [[ $output == *"PostgreSQL did not answer within 1s"* ]]
  done
  mkdir -p "$home/.claude"
  echo '{}' >"$home/.claude/.credentials.json"
  run env -i PATH="$PATH" HOME="$home" RALPH_DB_URL="$url" RALPH_REPO_URL=x RALPH_DB_WAIT_SECONDS=1 "$ENTRYPOINT" build
  [ "$status" -eq 1 ]
  [[ $output == *"PostgreSQL did not answer within 1s"* ]]
}

@test "RALPH_AGENT_CMD replaces the agent: no model credentials needed (nor for task)" {
  local url
  url=$(unreachable_url)
  run env -i PATH="$PATH" HOME="$BATS_TEST_TMPDIR" RALPH_DB_URL="$url" RALPH_REPO_URL=x RALPH_AGENT_CMD=true RALPH_DB_WAIT_SECONDS=1 "$ENTRYPOINT" build
  [ "$status" -eq 1 ]
  [[ $output == *"PostgreSQL did not answer within 1s"* ]]
  run env -i PATH="$PATH" HOME="$BATS_TEST_TMPDIR" RALPH_DB_URL="$url" RALPH_DB_WAIT_SECONDS=1 "$ENTRYPOINT" task list
  [ "$status" -eq 1 ]
  [[ $output == *"PostgreSQL did not answer within 1s"* ]]
}

@test "several problems at once: one message naming every one, exit 2 at once" {
  local url
  url=$(unreachable_url)
  run env -i PATH="$PATH" HOME="$BATS_TEST_TMPDIR" RALPH_LEASE_SECONDS=0 RALPH_MAX_ATTEMPTS=many \
    RALPH_DB_WAIT_SECONDS=-5 RALPH_AGENT_STOP_SECONDS=9999 "$ENTRYPOINT"
  [ "$status" -eq 2 ]
  [ "${#lines[@]}" -eq 7 ]
  [[ ${lines[0]} == "ralph-entrypoint: RALPH_DB_URL is not set: "* ]]
  [[ ${lines[1]} == "ralph-entrypoint: RALPH_REPO_URL is not set: "* ]]
  [[ ${lines[2]} == "ralph-entrypoint: no credentials for Claude Code: "* ]]
  [ "${lines[3]}" = "ralph-entrypoint: RALPH_DB_WAIT_SECONDS='-5' is not a number of seconds between 0 and 86400: set RALPH_DB_WAIT_SECONDS to one, or unset it for the default 60" ]
  [[ ${lines[4]} == "ralph-entrypoint: RALPH_LEASE_SECONDS='0' is not a number of seconds between 1 and 86400: "* ]]
  [[ ${lines[5]} == "ralph-entrypoint: RALPH_MAX_ATTEMPTS='many' is not a whole number between 1 and 1000: "* ]]
  [[ ${lines[6]} == "ralph-entrypoint: RALPH_AGENT_STOP_SECONDS='9999' is not a number of seconds between 0 and 3600: "* ]]
  # A broken percent-encoding in RALPH_DB_URL is named with the rest.
  run env -i PATH="$PATH" RALPH_DB_URL="${url/x@/x:50%@}" RALPH_IDLE_MAX_SECONDS=x "$ENTRYPOINT" task list
  [ "$status" -eq 2 ]
  [ "${#lines[@]}" -eq 2 ]
  [ "${lines[0]}" = "ralph-entrypoint: RALPH_DB_URL: the password's percent-encoding is broken: write @ as %40, : as %3A, / as %2F, % as %25" ]
  [[ ${lines[1]} == "ralph-entrypoint: RALPH_IDLE_MAX_SECONDS='x' is not a number of seconds between 0 and 86400: "* ]]
}

@test "the entrypoint gives up on an unreachable database, in bounded time" {
  local port t0=$SECONDS
  port=$((PG_TEST_PORT + 1))
  while pg_port_in_use "$port"; do port=$((port + 1)); done
  run env -i PATH="$PATH" RALPH_DB_URL="postgresql://x@127.0.0.1:$port/x" RALPH_REPO_URL=x RALPH_AGENT_CMD=true RALPH_DB_WAIT_SECONDS=2 "$ENTRYPOINT"
  [ "$status" -eq 1 ]
  [[ $output == *"PostgreSQL did not answer within 2s (RALPH_DB_URL)"* ]]
  [ $((SECONDS - t0)) -le 8 ]
}

# late_database WAIT_SECONDS: a second PostgreSQL, started two seconds after
# the entrypoint; the entrypoint must wait for it and go on.
late_database() {
  LATE_PG=$(mktemp -d "${TMPDIR:-/tmp}/ralph-late-pg.XXXXXX")
  pg_init "$LATE_PG"
  local port
  port=$(pg_free_port)
  env -i PATH="$PATH" RALPH_DB_URL="postgresql://ralph@127.0.0.1:$port/postgres" RALPH_DB_WAIT_SECONDS="$1" \
    "$ENTRYPOINT" task add late/1 "after the wait" >"$LATE_PG/out" 2>&1 &
  local entrypoint=$! t0=$SECONDS
  sleep 2
  alive "$entrypoint"
  pg_run "$LATE_PG" "$port"
  local rc=0
  wait "$entrypoint" || rc=$?
  cat "$LATE_PG/out"
  [ "$rc" -eq 0 ]
  [ $((SECONDS - t0)) -ge 2 ]
  [ "$(psql "postgresql://ralph@127.0.0.1:$port/postgres" -X -A -t -c "SELECT status FROM tasks WHERE id = 'late/1'")" = open ]
}

@test "the entrypoint waits for a database that comes up late" {
  late_database 30
}

@test "RALPH_DB_WAIT_SECONDS=0 waits without a bound (the status-server images)" {
  late_database 0
}

@test "the entrypoint applies the schema, sets the git identity and execs ralph.sh" {
  fresh_db
  make_remote
  [ "$(sql "SELECT count(*) FROM pg_tables WHERE tablename = 'tasks'")" -eq 0 ]
  run env -i PATH="$PATH" HOME="$BATS_TEST_TMPDIR" RALPH_DB_URL="$RALPH_DB_URL" "$ENTRYPOINT" task add ep/1 "via the entrypoint"
  [ "$status" -eq 0 ]
  [ "$(task_status ep/1)" = open ]
  # A whole build through the entrypoint, with a read-only HOME.
  mkdir -p "$BATS_TEST_TMPDIR/ro-home"
  chmod 0555 "$BATS_TEST_TMPDIR/ro-home"
  run env -i PATH="$PATH" HOME="$BATS_TEST_TMPDIR/ro-home" TMPDIR="$BATS_TEST_TMPDIR" \
    RALPH_DB_URL="$RALPH_DB_URL" RALPH_REPO_URL="$REMOTE" RALPH_WORKSPACE="$RALPH_WORKSPACE" \
    RALPH_GIT_NAME="Ralph Worker" RALPH_GIT_EMAIL=worker@example.org RALPH_AGENT_CMD='echo x > x.txt' \
    "$ENTRYPOINT" build --until-empty
  [ "$status" -eq 0 ]
  [ "$(task_status ep/1)" = "done" ]
  [ "$(git -C "$REMOTE" log -1 --format='%an <%ae>|%cn <%ce>' ralph/ep/1)" = "Ralph Worker <worker@example.org>|Ralph Worker <worker@example.org>" ]
}
