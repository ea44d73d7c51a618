#!/usr/bin/env bats
# Privilege separation (issue 17): the worker started as the images start it
# (the entrypoint as root, RALPH_WORKER_USER and RALPH_AGENT_USER set) runs
# an adversarial agent (fixtures/adversary.sh) that tries every way to the
# worker's credentials, its git, its database rights and other tasks; each
# attempt must fail. The worker's role needs its password (scram), the
# remote's URL holds a token, and the agent has its own role.
# Needs root and the users scripts/setup-host.sh makes (ralph-test-worker,
# in group ralph-test-agent, and ralph-test-agent): without them each test
# is skipped, and says why.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

WORKER_USER=ralph-test-worker
AGENT_USER=ralph-test-agent

setup() {
  ((EUID == 0)) || skip "needs root (to start the entrypoint as the images do)"
  if ! id "$WORKER_USER" >/dev/null 2>&1 || ! id "$AGENT_USER" >/dev/null 2>&1; then
    skip "needs the users $WORKER_USER and $AGENT_USER: run scripts/setup-host.sh"
  fi
  command -v setpriv >/dev/null || skip "needs setpriv (util-linux)"
  fresh_db
  TRUSTED_URL=$RALPH_DB_URL
  local db=${RALPH_DB_URL##*/}
  # The agent's role, made by init, then held to its password.
  AGENT_ROLE="agent_$$_$RANDOM" AGENT_PASSWORD="agent-pw-$RANDOM$RANDOM"
  AGENT_URL="postgresql://$AGENT_ROLE@127.0.0.1:$PG_TEST_PORT/$db"
  RALPH_AGENT_DB_URL=$AGENT_URL RALPH_AGENT_DB_PASSWORD=$AGENT_PASSWORD "$TASK" init >/dev/null
  pg_require_password "$AGENT_ROLE"
  # The worker's role: a password nothing else has.
  WORKER_ROLE="worker_$$_$RANDOM" WORKER_PASSWORD="worker-secret-$RANDOM$RANDOM$RANDOM"
  pg_password_role "$WORKER_ROLE" "$WORKER_PASSWORD"
  sql "ALTER ROLE \"$WORKER_ROLE\" SUPERUSER" >/dev/null
  WORKER_URL="postgresql://$WORKER_ROLE@127.0.0.1:$PG_TEST_PORT/$db"
  TOKEN="git-token-$RANDOM$RANDOM$RANDOM"

  # Everything the two users touch, outside root's private directories:
  # ralph itself (as /opt/ralph in the images), the remote, the worker's
  # temporary directory, the workspace.
  W=$(mktemp -d "${TMPDIR:-/tmp}/privsep.XXXXXX")
  chmod 0755 "$W"
  mkdir -p "$W/ralph/docker"
  cp -R "$REPO_ROOT/ralph.sh" "$REPO_ROOT/task" "$REPO_ROOT/models.json" "$REPO_ROOT/lib" "$REPO_ROOT/db" \
    "$REPO_ROOT/hooks" "$REPO_ROOT/skills" "$W/ralph/"
  cp "$REPO_ROOT/docker/entrypoint.sh" "$W/ralph/docker/"
  cp "$BATS_TEST_DIRNAME/fixtures/adversary.sh" "$W/adversary.sh"
  chmod -R a+rX "$W/ralph" "$W/adversary.sh"
  git init -q --bare -b main "$W/remote.git"
  git -C "$BATS_TEST_TMPDIR" init -q -b main seed
  echo "# project" >"$BATS_TEST_TMPDIR/seed/README.md"
  git -C "$BATS_TEST_TMPDIR/seed" add README.md
  git -C "$BATS_TEST_TMPDIR/seed" -c user.name=t -c user.email=t@localhost commit -qm init
  git -C "$BATS_TEST_TMPDIR/seed" push -q "$W/remote.git" main
  mkdir -p "$W/tmp" "$W/work"
  chmod 1777 "$W/tmp"
  chown -R "$WORKER_USER:" "$W/remote.git" "$W/work"
  REMOTE=$W/remote.git

  export RALPH_HOME=$W/ralph RALPH_WORKER_USER=$WORKER_USER RALPH_AGENT_USER=$AGENT_USER TMPDIR=$W/tmp
  export RALPH_DB_URL=$WORKER_URL PGPASSWORD=$WORKER_PASSWORD
  export RALPH_AGENT_DB_URL=$AGENT_URL RALPH_AGENT_DB_PASSWORD=$AGENT_PASSWORD
  export RALPH_REPO_URL="file://git:$TOKEN@localhost$REMOTE" RALPH_WORKSPACE=$W/work/tree
  export RALPH_DB_WAIT_SECONDS=10 RALPH_IDLE_MIN_SECONDS=1 RALPH_IDLE_MAX_SECONDS=1
}

teardown() {
  [[ -n ${W:-} ]] || return 0
  pkill -KILL -u "$AGENT_USER" 2>/dev/null || true
  pkill -KILL -u "$WORKER_USER" 2>/dev/null || true
  rm -rf "$W"
}

# rgit ARGS…: git on the remote, which the worker's user owns.
rgit() { git -c safe.directory='*' -C "$REMOTE" "$@"; }

# tsql SQL: SQL as the trusted superuser.
tsql() { psql "$TRUSTED_URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

@test "an adversarial agent reaches none of the worker's credentials, git, database rights or other tasks" {
  # Another task, finished, with a result and an error the agent must not read.
  RALPH_DB_URL=$TRUSTED_URL "$TASK" add other/1 "someone else's" --priority 1 >/dev/null
  tsql "UPDATE tasks SET status = 'done', result = '{\"secret\": \"OTHER-RESULT\"}', last_error = 'OTHER-ERROR' WHERE id = 'other/1'" >/dev/null
  RALPH_DB_URL=$TRUSTED_URL "$TASK" add adv/1 "attack" --priority 1 >/dev/null
  export ADVERSARY_TMP=$TMPDIR ADVERSARY_WORKER_URL=$WORKER_URL ADVERSARY_OTHER=other/1
  # A renewal every 5 s (a third of the lease), each psql bounded at 3.75 s:
  # on a busy machine a shorter lease was lost before a renewal got through.
  # The agent scans other processes' environments for 6 s: a renewal's
  # psql runs meanwhile.
  export ADVERSARY_SCAN_SECONDS=6
  export RALPH_AGENT_ENV="ADVERSARY_TMP ADVERSARY_WORKER_URL ADVERSARY_OTHER ADVERSARY_SCAN_SECONDS" RALPH_LEASE_SECONDS=15
  export RALPH_AGENT_CMD="bash $W/adversary.sh"
  run timeout 120 "$RALPH_HOME/docker/entrypoint.sh" build --max-iterations 1
  echo "$output"
  [ "$status" -eq 0 ]
  local log=$output
  [[ $output != *"warning: the agent runs as this worker's user"* ]]
  [[ $output == *"(the agent runs as uid $(id -u "$AGENT_USER"))"* ]]
  [ "$(tsql "SELECT status FROM tasks WHERE id = 'adv/1'")" = "done" ]

  run rgit show ralph/adv/1:agent.txt
  [ "$status" -eq 0 ]
  local report=$output
  echo "$report"
  # Every attempt was made and refused.
  [ "$(grep -c '^refused ' <<<"$report")" -eq 18 ]
  [ "$(grep -c '^LEAK' <<<"$report")" -eq 0 ]
  # Nothing the agent read holds a secret: the worker's password, the
  # remote's token, the other task's result or error.
  local secret
  for secret in "$WORKER_PASSWORD" "$TOKEN" OTHER-RESULT OTHER-ERROR; do
    if grep -qF -- "$secret" <<<"$report"; then
      echo "the agent got $secret"
      false
    fi
  done
  # Its own environment: the model's and its own role's, nothing of the worker's.
  grep -qx "RALPH_DB_URL=$AGENT_URL" <<<"$report"
  [ "$(grep -c "^RALPH_REPO_URL=\|^RALPH_AGENT_DB_PASSWORD=\|^PGPASSWORD=$WORKER_PASSWORD" <<<"$report")" -eq 0 ]

  # The worker's git ran none of it, and was not changed.
  [ ! -e "$W/work/hook-ran" ] && [ ! -e "$W/work/fsmonitor-ran" ] && [ ! -e "$W/work/filter-ran" ]
  [ -z "$(git -c safe.directory='*' --git-dir="$W/work/tree.git" config --get core.fsmonitor)" ]
  [ -z "$(git -c safe.directory='*' --git-dir="$W/work/tree.git" config --get remote.origin.pushurl)" ]
  [ ! -e "$W/work/tree.git/hooks/post-commit" ]
  # Its own .git was neither committed nor followed.
  run rgit ls-tree -r --name-only ralph/adv/1
  [[ $output != *".git/"* ]]

  # The token: in no log, no row, not in the git directory.
  [[ $log != *"$TOKEN"* ]]
  run grep -rlF -- "$TOKEN" "$W/work/tree.git"
  [ "$status" -eq 1 ]
  [ -z "$(tsql "SELECT id FROM tasks t WHERE t::text LIKE '%$TOKEN%'")" ]

  # What it detached (setsid) and what it left behind are gone.
  local detached
  detached=$(rgit show ralph/adv/1:detached.pid)
  [[ $detached =~ ^[0-9]+$ ]]
  gone "$detached"
  local pid left=()
  for pid in $(pgrep -u "$AGENT_USER" || true); do
    alive "$pid" && left+=("$pid")
  done
  [ "${#left[@]}" -eq 0 ] || { ps -o pid,stat,args -p "${left[@]}"; false; }
  [ -z "$(find "$W/tmp" -user "$AGENT_USER")" ]
}

@test "the tree is the agent's to change and the worker's to commit, whatever modes the agent leaves" {
  RALPH_DB_URL=$TRUSTED_URL "$TASK" add m/1 "locked files" >/dev/null
  RALPH_DB_URL=$TRUSTED_URL "$TASK" add m/2 "the next task" >/dev/null
  # The first agent edits a file the worker checked out, and leaves a
  # directory and a file nobody else may read; the next task's tree is
  # clean all the same.
  # shellcheck disable=SC2016 # expanded by the agent's shell
  export RALPH_AGENT_CMD='case $RALPH_TASK_ID in
    m/1) echo changed >> README.md && mkdir -p locked/deep && echo s > locked/deep/f && chmod 000 locked/deep/f locked/deep locked ;;
    m/2) ls -A > seen.txt ;;
    esac'
  run timeout 120 "$RALPH_HOME/docker/entrypoint.sh" build --max-iterations 2
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(tsql "SELECT string_agg(status, ' ' ORDER BY id) FROM tasks")" = "done done" ]
  [ "$(rgit show ralph/m/1:locked/deep/f)" = s ]
  [ "$(rgit show ralph/m/1:README.md)" = "$(printf '# project\nchanged')" ]
  [ "$(rgit show ralph/m/2:seen.txt)" = "$(printf 'README.md\nseen.txt')" ]
}

@test "without the privilege to switch, the worker starts with the one-line warning" {
  RALPH_DB_URL=$TRUSTED_URL "$TASK" add p/1 "plain" >/dev/null
  export RALPH_AGENT_CMD='id -u > uid.txt'
  # As the worker's user itself, without capabilities: no separation.
  run timeout 60 setpriv --reuid="$WORKER_USER" --regid="$WORKER_USER" --init-groups --inh-caps=-all \
    --bounding-set=-all -- env HOME=/nonexistent "$RALPH_HOME/docker/entrypoint.sh" build --max-iterations 1
  echo "$output"
  [ "$status" -eq 0 ]
  [ "$(grep -c "warning: the agent runs as this worker's user (uid $(id -u "$WORKER_USER")) and can read the worker's credentials" <<<"$output")" -eq 1 ]
  [ "$(rgit show ralph/p/1:uid.txt)" = "$(id -u "$WORKER_USER")" ]
}

@test "root without the capabilities to switch is refused with what to add" {
  run timeout 30 setpriv --inh-caps=-all --bounding-set=-all -- "$RALPH_HOME/docker/entrypoint.sh" build
  [ "$status" -eq 2 ]
  [ "${#lines[@]}" -eq 1 ]
  [[ $output == *"started as root without CAP_SETUID, CAP_SETGID and CAP_KILL: add --cap-add SETUID --cap-add SETGID --cap-add KILL"* ]]
}

@test "two workers with one agent user: the second is refused (each stops every process of that user)" {
  RALPH_DB_URL=$TRUSTED_URL "$TASK" add two/1 "holds the agent user" >/dev/null
  export RALPH_AGENT_CMD='sleep 300'
  set -m
  "$RALPH_HOME/docker/entrypoint.sh" build --max-iterations 1 2>"$W/first.log" &
  local first=$!
  set +m
  wait_for 30 grep -q "agent running" "$W/first.log" || { cat "$W/first.log"; false; }
  # Another tree, the same agent user.
  RALPH_WORKSPACE=$W/work/other run timeout 60 "$RALPH_HOME/docker/entrypoint.sh" build --max-iterations 1
  echo "$output"
  kill -TERM "$first"
  wait_for 15 gone "$first"
  [ "$status" -eq 2 ]
  [[ ${lines[-1]} == "ralph: another worker runs its agents as $AGENT_USER: give each worker its own RALPH_AGENT_USER (after each attempt every process of that user is stopped)" ]]
}
