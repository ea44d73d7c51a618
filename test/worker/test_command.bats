#!/usr/bin/env bats
# scripts/test.sh, the test command, on stand-in suites: it gives the
# Python tests a throwaway PostgreSQL (RALPH_TEST_DB_URL, stopped at the
# end), and counts every suite's tests as passed, failed or skipped; a
# skipped test neither fails the run nor counts as passed.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

setup() {
  REPO="$BATS_TEST_TMPDIR/repo"
  mkdir -p "$REPO/scripts" "$REPO/status/src" "$REPO/status/tests" "$REPO/test/worker/lib" "$BATS_TEST_TMPDIR/bin"
  # The script's TMPDIR, where the server's user can reach its cluster.
  SCRIPT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/ralph-test-command.XXXXXX")
  chmod 0755 "$SCRIPT_TMP"
  cp "$REPO_ROOT/scripts/test.sh" "$REPO/scripts/"
  cp "$REPO_ROOT/test/worker/lib/pg.sh" "$REPO/test/worker/lib/"
  # cargo: fmt and clippy pass; `test --bins` two tests and one ignored,
  # each `--test NAME` one test. FAIL_BINARY=NAME fails that binary;
  # MUTE_BINARY=NAME exits 101 printing no result line. `rehearsal` waits
  # for `other` to have started, and `image_smoke` for the Python tests:
  # the two lanes run side by side.
  mkdir -p "$REPO/xtask/tests" "$REPO/xtask/src"
  touch "$REPO/xtask/tests/"{rehearsal,image_smoke,other}.rs "$REPO/xtask/src/main.rs"
  cat >"$BATS_TEST_TMPDIR/bin/cargo" <<'EOF'
#!/usr/bin/env bash
if [[ -n ${CLIPPY_FAILS:-} && $1 == clippy ]]; then
  echo "error: this function has too many arguments"
  exit 101
fi
if [[ -n ${BUILD_FAILS:-} && $1 == test ]]; then
  echo "error: could not compile \`xtask\` (test \"other\") due to 1 previous error"
  exit 101
fi
[[ $1 == test && " $* " != *" --no-run "* ]] || exit 0
rc=0
result() { # NAME PASSED IGNORED
  touch "$MARK_DIR/started-$1"
  if [[ $1 == bins ]]; then
    echo "     Running unittests src/main.rs (target/debug/deps/xtask-0123)"
  else
    echo "     Running tests/$1.rs (target/debug/deps/$1-0123)"
  fi
  case $1 in
    rehearsal) partner=other ;;
    image_smoke) partner=python ;;
    *) partner="" ;;
  esac
  if [[ -n $partner ]]; then
    for _ in $(seq 600); do [[ -e $MARK_DIR/started-$partner ]] && break; sleep 0.1; done
    if [[ ! -e $MARK_DIR/started-$partner ]]; then
      echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 60s"
      rc=101
      return
    fi
  fi
  if [[ $1 == "${MUTE_BINARY:-}" ]]; then
    echo "error: test failed, to rerun pass --test $1"
    rc=101
  elif [[ $1 == "${FAIL_BINARY:-}" ]]; then
    echo "test result: FAILED. 0 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s"
    rc=101
  else
    echo "test result: ok. $2 passed; 0 failed; $3 ignored; 0 measured; 0 filtered out; finished in 0.01s"
  fi
}
prev=""
for arg; do
  [[ $arg != --bins ]] || result bins 2 1
  [[ $prev != --test ]] || result "$arg" 1 0
  prev=$arg
done
exit "$rc"
EOF
  chmod +x "$BATS_TEST_TMPDIR/bin/cargo"
  # The worker's suite: its summary line.
  echo 'echo "worker: 3 passed, 0 failed, 2 skipped"' >"$REPO/test/worker/run.sh"
  # Python: one test passes, one is skipped, one needs the database.
  cat >"$REPO/status/tests/test_standin.py" <<'EOF'
import os
import subprocess
import unittest


class Standin(unittest.TestCase):
    def test_passes(self):
        open(os.path.join(os.environ["MARK_DIR"], "started-python"), "w").close()

    @unittest.skip("on purpose")
    def test_skipped(self):
        pass

    def test_database(self):
        url = os.environ.get("RALPH_TEST_DB_URL")
        self.assertTrue(url, "RALPH_TEST_DB_URL is set")
        with open(os.path.join(os.environ["MARK_DIR"], "db_url"), "w") as f:
            f.write(url)
        out = subprocess.run(["psql", url, "-XAtc", "SELECT 1"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.stdout.strip(), "1", out.stderr)

    def test_fails_when_asked(self):
        self.assertFalse(os.environ.get("FAIL_ONE"), "asked to fail")
EOF
  export PATH="$BATS_TEST_TMPDIR/bin:$PATH" TMPDIR=$SCRIPT_TMP MARK_DIR=$BATS_TEST_TMPDIR
}

teardown() {
  rm -rf "$SCRIPT_TMP"
}

@test "scripts/test.sh counts skipped tests apart and gives the Python tests a PostgreSQL" {
  run bash "$REPO/scripts/test.sh"
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  # cargo: 1 (fmt, clippy: the engine lane's last step) + 5 passed, 1 ignored; Python: 3 passed, 1
  # skipped; worker: 3 passed, 2 skipped.
  [ "${lines[-1]}" = "all: 12 passed, 0 failed, 4 skipped" ]
  # Each lane said how it ended, and its output came prefixed with its name.
  [[ $output == *"==> lane engine: exit 0"* && $output == *"==> lane rehearsal: exit 0"* ]]
  [[ $output == *"[rehearsal] worker: 3 passed, 0 failed, 2 skipped"* ]]
  [[ $output == *"[rehearsal] test result: ok. 1 passed"* && $output == *"[engine] test result: ok. 2 passed"* ]]
  # The database was a real one, and is gone.
  [[ $(<"$BATS_TEST_TMPDIR/db_url") == postgresql://ralph@127.0.0.1:*/ralph_status ]]
  [ -z "$(find "$TMPDIR" -mindepth 1 -maxdepth 1)" ]
  run psql "$(<"$BATS_TEST_TMPDIR/db_url")" -XAtc "SELECT 1"
  [ "$status" -ne 0 ]
  # The PostgreSQL of the suite this test runs in is not the script's to stop.
  [ "$(psql "$PG_TEST_URL/postgres" -XAtc "SELECT 1")" = 1 ]
}

@test "scripts/test.sh: a failed Python test fails the run and is counted" {
  run env FAIL_ONE=1 bash "$REPO/scripts/test.sh"
  [ "$status" -eq 1 ]
  [ "${lines[-1]}" = "all: 11 passed, 1 failed, 4 skipped" ]
}

@test "scripts/test.sh: a failing test binary fails the run, and every other one still runs and counts" {
  run env FAIL_BINARY=rehearsal bash "$REPO/scripts/test.sh"
  [ "$status" -eq 1 ]
  [[ $output == *"==> lane rehearsal: exit 1"* ]]
  [ "${lines[-1]}" = "all: 11 passed, 1 failed, 4 skipped" ]
}

@test "scripts/test.sh: a test binary that ends with no result line is a failure" {
  run env MUTE_BINARY=image_smoke bash "$REPO/scripts/test.sh"
  [ "$status" -eq 1 ]
  [[ $output == *"==> lane engine: exit 1"* ]]
  [[ $output == *"not ok tests/image_smoke.rs: it printed no result (it crashed or was cut short)"* ]]
  [ "${lines[-1]}" = "all: 11 passed, 1 failed, 4 skipped" ]
  # With another failure beside it, it still counts.
  run env MUTE_BINARY=image_smoke FAIL_BINARY=rehearsal bash "$REPO/scripts/test.sh"
  [ "${lines[-1]}" = "all: 10 passed, 2 failed, 4 skipped" ]
}

@test "scripts/test.sh: a test binary that never ran is a failure" {
  touch "$REPO/xtask/tests/forgotten.rs"
  # cargo runs only the binaries it is given; this one is not among them.
  sed -i 's/\[\[ \$prev != --test \]\] || result "\$arg" 1 0/[[ $prev != --test || $arg == forgotten ]] || result "$arg" 1 0/' "$BATS_TEST_TMPDIR/bin/cargo"
  run bash "$REPO/scripts/test.sh"
  [ "$status" -eq 1 ]
  [[ $output == *"not ok tests/forgotten.rs: it did not run"* ]]
  [ "${lines[-1]}" = "all: 12 passed, 1 failed, 4 skipped" ]
}

@test "scripts/test.sh: a build that fails fails the run, and names every binary that did not run" {
  run env BUILD_FAILS=1 bash "$REPO/scripts/test.sh"
  [ "$status" -eq 1 ]
  for binary in src/main.rs tests/rehearsal.rs tests/image_smoke.rs tests/other.rs; do
    [[ $output == *"not ok $binary: it did not run"* ]] || { echo "$binary: $output"; return 1; }
  done
  # fmt and clippy, Python and the worker's suite still ran and counted.
  [ "${lines[-1]}" = "all: 7 passed, 4 failed, 3 skipped" ]
}

@test "scripts/test.sh: a clippy finding fails the run and is counted, at the end of the engine lane" {
  run env CLIPPY_FAILS=1 bash "$REPO/scripts/test.sh"
  [ "$status" -eq 1 ]
  [[ $output == *"[engine] error: this function has too many arguments"* ]]
  [[ $output == *"[engine] xtask lints: 0 passed, 1 failed, 0 skipped"* && $output == *"==> lane engine: exit 1"* ]]
  [ "${lines[-1]}" = "all: 11 passed, 1 failed, 4 skipped" ]
}

@test "scripts/test.sh: a missing worker suite is a failure, not a suite left out" {
  rm "$REPO/test/worker/run.sh"
  run bash "$REPO/scripts/test.sh"
  [ "$status" -eq 1 ]
  [[ $output == *"not ok the worker's suite: test/worker/run.sh is missing"* ]]
  [ "${lines[-1]}" = "all: 9 passed, 1 failed, 2 skipped" ]
}

# run_sh_with_bats SCRIPT [VAR=VALUE…]: test/worker/run.sh in the stand-in
# repository, with the environment given, on three bats files (chaos,
# alpha, beta), with a bats that runs SCRIPT ("$2" is the file) and a
# stand-in shellcheck that passes everything (its "ok shellcheck" lines
# count as passed: $SHELLCHECKED of them). Its TMPDIR is short: PostgreSQL's socket
# path has a limit.
run_sh_with_bats() {
  cp "$REPO_ROOT/test/worker/run.sh" "$REPO/test/worker/run.sh"
  touch "$REPO/test/worker/"{alpha,beta,chaos}.bats
  printf '#!/usr/bin/env bash\n%s\n' "$1" >"$BATS_TEST_TMPDIR/bin/bats"
  printf '#!/bin/sh\nexit 0\n' >"$BATS_TEST_TMPDIR/bin/shellcheck"
  chmod +x "$BATS_TEST_TMPDIR/bin/bats" "$BATS_TEST_TMPDIR/bin/shellcheck"
  run env TMPDIR=/tmp "${@:2}" bash "$REPO/test/worker/run.sh"
  SHELLCHECKED=$(grep -c '^ok shellcheck ' <<<"$output" || true)
  # It stopped its own PostgreSQL, not the one of the suite this runs in.
  [ "$(psql "$PG_TEST_URL/postgres" -XAtc "SELECT 1")" = 1 ]
}

@test "test/worker/run.sh: a bats run cut short fails every test that never ran" {
  run_sh_with_bats '[[ $2 == *alpha* ]] || { echo 1..1; echo "ok 1 one"; exit; }; echo 1..3; echo "ok 1 one"; exit 1'
  [ "$status" -eq 1 ]
  [[ $output == *"not ok alpha.bats: bats ran 1 of the 3 tests it planned: the run was cut short"* ]]
  [ "${lines[-1]}" = "worker: $((SHELLCHECKED + 3)) passed, 2 failed, 0 skipped" ]
}

@test "test/worker/run.sh: the whole plan run passes; no plan at all fails" {
  run_sh_with_bats 'echo 1..2; echo "ok 1 one"; echo "ok 2 two # skip on purpose"'
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  [ "${lines[-1]}" = "worker: $((SHELLCHECKED + 3)) passed, 0 failed, 3 skipped" ]
  # Each file's lines come with its name.
  [[ $output == *"[alpha] ok 1 one"* && $output == *"[chaos] ok 2 two # skip on purpose"* ]]
  run_sh_with_bats '[[ $2 == *beta* ]] || { echo 1..1; echo "ok 1 one"; exit; }; echo "bats: cannot read the suite" >&2; exit 1'
  [ "$status" -eq 1 ]
  [[ $output == *"not ok beta.bats: bats printed no plan (1..N): the run did not start"* ]]
  [ "${lines[-1]}" = "worker: $((SHELLCHECKED + 2)) passed, 1 failed, 0 skipped" ]
}

@test "test/worker/run.sh: files run two at a time, each job with a PostgreSQL of its own; one job takes them in order" {
  local marks=$BATS_TEST_TMPDIR/marks
  mkdir "$marks"
  # Each file notes its server, and alpha waits for beta to have started
  # (they can only meet if two run at once).
  # shellcheck disable=SC2016 # the stand-in bats expands them
  local script='name=$(basename "$2" .bats); echo "$PG_TEST_URL" >"$MARKS/$name"; echo "$name" >>"$MARKS/order"
    psql "$PG_TEST_URL/postgres" -XAtc "SELECT 1" >/dev/null || exit 1
    if [[ $name == alpha ]]; then for _ in $(seq 100); do [[ -e $MARKS/beta ]] && break; sleep 0.1; done; fi
    echo 1..1; if [[ $name != alpha || -e $MARKS/beta ]]; then echo "ok 1 $name"; else echo "not ok 1 alone"; fi'
  run_sh_with_bats "$script" MARKS="$marks"
  [ "$status" -eq 0 ] || { echo "$output"; return 1; }
  [[ $output == *"--- bats (2 at a time)"* ]]
  [ "${lines[-1]}" = "worker: $((SHELLCHECKED + 3)) passed, 0 failed, 0 skipped" ]
  # Two servers, neither the one of the suite this runs in, both gone.
  local servers
  servers=$(cat "$marks"/{alpha,beta,chaos} | sort -u)
  [ "$(grep -c . <<<"$servers")" -eq 2 ]
  [[ $'\n'$servers$'\n' != *$'\n'$PG_TEST_URL$'\n'* ]]
  local url
  for url in $servers; do
    run psql "$url/postgres" -XAtc "SELECT 1"
    [ "$status" -ne 0 ]
  done
  # One at a time: the slowest first (chaos), then the others in order.
  rm -r "$marks" && mkdir "$marks"
  run_sh_with_bats "$script" MARKS="$marks" RALPH_TEST_JOBS=1
  [ "$status" -eq 1 ]
  [[ $output == *"[alpha] not ok 1 alone"* ]]
  [ "$(tr '\n' ' ' <"$marks/order")" = "chaos alpha beta " ]
}

@test "test/worker/run.sh: the run's time bounds every file: one cut short fails, one never started fails" {
  # 20 s: room for run.sh's own start (shellcheck, a PostgreSQL) on a
  # loaded machine (with 3 s, that start could outlast the run's time).
  run_sh_with_bats 'echo 1..1; sleep 90; echo "ok 1 late"' RALPH_TEST_TIMEOUT=20 RALPH_TEST_JOBS=1
  [ "$status" -eq 1 ]
  [[ $output == *"not ok chaos.bats: bats ran 0 of the 1 tests it planned: the run was cut short"* ]]
  [[ $output == *"not ok alpha.bats: it did not run (the run's time ran out"* ]]
  [[ $output == *"not ok beta.bats: it did not run"* ]]
  [ "${lines[-1]}" = "worker: $SHELLCHECKED passed, 3 failed, 0 skipped" ]
}

@test "test/worker/run.sh: a wrong RALPH_TEST_JOBS or a missing file is named, and nothing runs" {
  run_sh_with_bats 'echo 1..1; echo "ok 1 one"' RALPH_TEST_JOBS=0
  [ "$status" -eq 1 ]
  [[ $output == *"not ok RALPH_TEST_JOBS=0: give how many bats files run at a time, 1 to 99"* ]]
  [[ $output != *"[alpha]"* ]]
  [ "${lines[-1]}" = "worker: $SHELLCHECKED passed, 1 failed, 0 skipped" ]
  cp "$REPO_ROOT/test/worker/run.sh" "$REPO/test/worker/run.sh"
  run env TMPDIR=/tmp bash "$REPO/test/worker/run.sh" test/worker/alpha.bats test/worker/gone.bats
  [ "$status" -eq 1 ]
  [[ $output == *"not ok test/worker/gone.bats: no such bats file"* ]]
  [[ $output != *"[alpha]"* ]]
}
