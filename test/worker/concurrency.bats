#!/usr/bin/env bats
# Many claimers and writers, one store: every task claimed exactly once, and
# no blocker cycle slips through concurrent writes.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

setup() {
  fresh_db
  "$TASK" init >/dev/null
}

# first_writer_sleeping: the other session has inserted and now sleeps.
first_writer_sleeping() {
  [ "$(sql "SELECT count(*) FROM pg_stat_activity
            WHERE pid <> pg_backend_pid() AND state = 'active' AND wait_event = 'PgSleep'")" -ge 1 ]
}

# claimer N DIR: claims until nothing is left, one id per line in DIR/N.
claimer() {
  local out rc
  while :; do
    rc=0
    out=$("$TASK" --json claim --agent "claimer-$1" 2>"$2/$1.err") || rc=$?
    case $rc in
      0) jq -r .id <<<"$out" >>"$2/$1" ;;
      3) return 0 ;;
      *) echo "claimer $1: exit $rc: $(cat "$2/$1.err")" >>"$2/errors"; return 1 ;;
    esac
  done
}

@test "8 claimers in parallel drain 200 tasks, each exactly once" {
  sql "INSERT INTO tasks (id, description, priority)
       SELECT 'p/' || lpad(i::text, 3, '0'), 'task ' || i, i % 4 FROM generate_series(1, 200) i" >/dev/null
  local dir="$BATS_TEST_TMPDIR/claims" n pids=()
  mkdir -p "$dir"
  for n in 1 2 3 4 5 6 7 8; do
    touch "$dir/$n"
    claimer "$n" "$dir" &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n"; done
  [ ! -e "$dir/errors" ] || { cat "$dir/errors"; false; }
  local claimed unique
  claimed=$(cat "$dir"/[1-8] | wc -l)
  unique=$(cat "$dir"/[1-8] | sort -u | wc -l)
  [ "$claimed" -eq 200 ]
  [ "$unique" -eq 200 ]
  # What the claimers saw is what the store says: each task active, held by
  # the claimer that printed it.
  local expected actual
  expected=$(for n in 1 2 3 4 5 6 7 8; do sed "s/\$/ claimer-$n/" "$dir/$n"; done | LC_ALL=C sort)
  actual=$(sql "SELECT id || ' ' || assignee FROM tasks WHERE status = 'active' AND attempts = 1 ORDER BY (id || ' ' || assignee) COLLATE \"C\"")
  [ "$actual" = "$expected" ]
  # The claims really ran in parallel: more than one claimer got work.
  [ "$(find "$dir" -name '[1-8]' -size +0 | wc -l)" -gt 1 ]
}

@test "concurrent opposite blocks: the second waits for the first, then sees the cycle" {
  "$TASK" add x/1 "x" >/dev/null
  "$TASK" add y/1 "y" >/dev/null
  # A writer that blocks x/1 by y/1 and holds its transaction open a while.
  psql "$RALPH_DB_URL" -X -q -v ON_ERROR_STOP=1 \
    -c "BEGIN; INSERT INTO task_dependencies (task_id, blocked_by) VALUES ('x/1', 'y/1'); SELECT pg_sleep(1.5); COMMIT;" \
    >"$BATS_TEST_TMPDIR/first.out" 2>&1 &
  local first=$!
  wait_for 10 first_writer_sleeping
  # The opposite block, meanwhile: it can't see the uncommitted row, so it
  # must wait for the first writer (or it would make a cycle), then refuse.
  run "$TASK" block y/1 --by x/1
  wait "$first"
  [ "$status" -eq 1 ]
  [[ $output == *"blocking y/1 by x/1 would make a cycle"* ]]
  [ "$(sql "SELECT string_agg(task_id || '>' || blocked_by, ',') FROM task_dependencies")" = "x/1>y/1" ]
}
