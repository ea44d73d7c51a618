#!/usr/bin/env bats
# The database password never reaches a command line (`ps` shows every
# process's to every user): psql and pg_isready get RALPH_DB_URL without it,
# psql the password (percent-decoded) in PGPASSWORD. Against a role that
# must give a password with @ : / % in it.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

ENTRYPOINT="$REPO_ROOT/docker/entrypoint.sh"

setup() {
  fresh_db
  # A role of its own per test, a superuser like the trusted one (applying
  # the schema makes roles); a password no other process has on its
  # command line (the scan looks for its tail).
  TAIL="t${RANDOM}x${RANDOM}q"
  ROLE="pw_$$_${RANDOM}"
  PASSWORD="p@ss:w/rd%25-$TAIL"
  ENCODED="p%40ss%3Aw%2Frd%2525-$TAIL"
  pg_password_role "$ROLE" "$PASSWORD"
  sql "ALTER ROLE \"$ROLE\" SUPERUSER" >/dev/null
  TRUSTED_URL=$RALPH_DB_URL
  ROLE_URL="postgresql://$ROLE@127.0.0.1:$PG_TEST_PORT/${RALPH_DB_URL##*/}"
  PASSWORD_URL="postgresql://$ROLE:$ENCODED@127.0.0.1:$PG_TEST_PORT/${RALPH_DB_URL##*/}"
  SCAN_PID=""
  WORKER_PID=""
}

teardown() {
  local pid
  for pid in $SCAN_PID $WORKER_PID; do
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}

# shims DIR: psql and pg_isready in DIR that log their command lines to
# DIR/argv, then run the real ones.
shims() {
  local dir=$1 tool
  mkdir -p "$dir"
  for tool in psql pg_isready; do
    printf '#!/usr/bin/env bash\nprintf "%%s\\n" "%s $*" >>%q\nexec %q "$@"\n' \
      "$tool" "$dir/argv" "$(command -v "$tool")" >"$dir/$tool"
    chmod +x "$dir/$tool"
  done
}

# scan_cmdlines FILE: until killed, every /proc/*/cmdline that holds the
# password's tail is appended to FILE; FILE.n counts the scans.
scan_cmdlines() {
  local out=$1 pattern="$BATS_TEST_TMPDIR/pattern" n=0 hit
  printf '%s\n' "$TAIL" >"$pattern" # a file: grep's own command line stays clean
  : >"$out"
  while :; do
    while IFS= read -r hit; do
      printf '%s: %s\n' "$hit" "$({ tr '\0' ' ' <"$hit"; } 2>/dev/null)" >>"$out"
    # Bounded: a read of a process's cmdline waits for that process's memory
    # lock, and one busy process must not stall the whole scan.
    done < <(timeout -s KILL 3 grep -s -l -a -F -f "$pattern" /proc/[0-9]*/cmdline)
    n=$((n + 1))
    echo "$n" >"$out.n.tmp" && mv -f "$out.n.tmp" "$out.n" # never read half-written
    date +%s.%N >>"$out.times"
  done
}

@test "db_url_parts: the URL without the password, the password percent-decoded" {
  # parts URL: "URL_NOPW|PASSWORD" (printf %q), or "error: …".
  parts() {
    bash -c 'source "$1/lib/common.sh"; if db_url_parts "$2"; then printf "%s|%q\n" "$DB_URL_NOPW" "$DB_PASSWORD"; else echo "error: $DB_URL_ERROR"; fi' \
      _ "$REPO_ROOT" "$1"
  }
  [ "$(parts 'postgresql://ralph:p%40ss%3A%2F%25w@db:5432/ralph')" = "postgresql://ralph@db:5432/ralph|p@ss:/%w" ]
  [ "$(parts 'postgres://:pw@h/d')" = "postgres://h/d|pw" ]
  [ "$(parts 'postgresql://u:%5C%5Cc%27%24(x)@h')" = "postgresql://u@h|\\\\\\\\c\\'\\\$\\(x\\)" ]
  [ "$(parts 'postgresql://u:%C3%A9@h')" = "postgresql://u@h|$(printf '%q' $'\xc3\xa9')" ]
  # The user stays encoded (psql decodes it); several hosts; a password parameter.
  [ "$(parts 'postgresql://us%40er:pw@h1:5432,h2:5433/d')" = "postgresql://us%40er@h1:5432,h2:5433/d|pw" ]
  [ "$(parts 'postgresql://u@h/d?sslmode=require&password=a%26b&application_name=x')" = "postgresql://u@h/d?sslmode=require&application_name=x|a\\&b" ]
  # No password: PGPASSWORD from the environment applies.
  [ "$(parts 'postgresql://u@h/d')" = "postgresql://u@h/d|''" ]
  [ "$(parts 'postgresql://u:@h/d')" = "postgresql://u@h/d|''" ]
  [ "$(parts 'host=h dbname=password_db')" = "host=h dbname=password_db|''" ]
  [[ $(parts 'host=h password=x') == "error: a key=value connection string with password= would put it on psql's command line: "* ]]
  # Broken percent-encoding is refused, not guessed at.
  local bad
  for bad in 'postgresql://u:a%4@h' 'postgresql://u:a%zz@h' 'postgresql://u:a%00@h' 'postgresql://u:50%@h'; do
    [[ $(parts "$bad") == "error: the password's percent-encoding is broken: write @ as %40"* ]] || { parts "$bad"; return 1; }
  done
}

@test "a password in RALPH_DB_URL reaches psql in PGPASSWORD, a broken one is named" {
  export RALPH_DB_URL=$PASSWORD_URL
  run "$TASK" add pw/1 "with the password from the URL"
  [ "$status" -eq 0 ]
  # Without a password in the URL: PGPASSWORD from the environment.
  run env RALPH_DB_URL="$ROLE_URL" PGPASSWORD="$PASSWORD" "$TASK" list
  [ "$status" -eq 0 ]
  [[ $output == *pw/1* ]]
  # A password in the URL wins over PGPASSWORD.
  run env PGPASSWORD=wrong "$TASK" list
  [ "$status" -eq 0 ]
  run env RALPH_DB_URL="${PASSWORD_URL/$TAIL/nope}" "$TASK" list
  [ "$status" -eq 1 ]
  [ "$output" = "task: the database refused the credentials (the user in RALPH_DB_URL, the password in it or in PGPASSWORD): fix the user or password" ]
  run env -u PGPASSWORD RALPH_DB_URL="$ROLE_URL" "$TASK" list
  [ "$status" -eq 1 ]
  [[ $output == "task: the database wants a password: "* ]] || { echo "$output"; return 1; }
  run env RALPH_DB_URL="postgresql://$ROLE:50%@127.0.0.1:$PG_TEST_PORT/x" "$TASK" list
  [ "$status" -eq 2 ]
  [ "$output" = "task: RALPH_DB_URL: the password's percent-encoding is broken: write @ as %40, : as %3A, / as %2F, % as %25" ]
}

@test "no command line holds the database password while a worker runs (through the entrypoint)" {
  make_remote
  local shim="$BATS_TEST_TMPDIR/shim" hits="$BATS_TEST_TMPDIR/hits"
  shims "$shim"
  # Exported, not passed to env(1): its command line would hold them.
  export RALPH_DB_URL=$PASSWORD_URL PATH="$shim:$PATH" TMPDIR=$BATS_TEST_TMPDIR HOME=$BATS_TEST_TMPDIR
  export RALPH_AGENT_CMD='sleep 2; echo "$RALPH_TASK_ID" > done.txt' RALPH_LEASE_SECONDS=3
  export RALPH_IDLE_MIN_SECONDS=0 RALPH_IDLE_MAX_SECONDS=0
  "$TASK" add cred/1 "one"
  "$TASK" add cred/2 "two"
  scan_cmdlines "$hits" &
  SCAN_PID=$!
  # The scanner works before the worker starts (a scan that never ran would
  # prove nothing).
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s $hits.n ]] && break
    sleep 0.1
  done
  [[ -s $hits.n ]] || { echo "the scanner did not complete a pass in 10 s"; return 1; }
  "$ENTRYPOINT" build --until-empty 2>"$BATS_TEST_TMPDIR/worker.log" &
  WORKER_PID=$!
  local rc=0
  wait "$WORKER_PID" || rc=$?
  WORKER_PID=""
  kill "$SCAN_PID"
  wait "$SCAN_PID" || true
  SCAN_PID=""
  cat "$BATS_TEST_TMPDIR/worker.log"
  [ "$rc" -eq 0 ]
  # The worker got in with the password: both tasks are done.
  [ "$(psql "$TRUSTED_URL" -X -A -t -c "SELECT string_agg(status, ',' ORDER BY id) FROM tasks")" = "done,done" ]
  # No process's command line held it, at any of the scans.
  echo "scans: $(<"$hits.n") (pass ends: $(tr '\n' ' ' <"$hits.times"))"
  [ "$(<"$hits.n")" -ge 10 ]
  cat "$hits"
  [ ! -s "$hits" ]
  # Every psql and pg_isready was run, and got the URL without the password.
  grep -q "^pg_isready -q -d postgresql://$ROLE@127.0.0.1:$PG_TEST_PORT/" "$shim/argv"
  [ "$(grep -c "^psql postgresql://$ROLE@127.0.0.1:$PG_TEST_PORT/" "$shim/argv")" -ge 6 ]
  run grep -F -e "$TAIL" -e ":$ENCODED@" "$shim/argv"
  [ "$status" -eq 1 ] || { echo "on a command line: $output"; return 1; }
}
