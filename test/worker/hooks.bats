#!/usr/bin/env bats
# The Claude Code hooks, fed the JSON Claude Code sends them on stdin.
# Each @test runs in a subshell: exports are per test on purpose.
# shellcheck disable=SC2030,SC2031

load lib/helpers

# pre_tool TOOL TOOL_INPUT_JSON: runs the pre-tool-use hook as Claude Code
# would, from /workspace/app.
pre_tool() {
  jq -nc --arg tool "$1" --argjson input "$2" \
    '{session_id: "s", hook_event_name: "PreToolUse", cwd: "/workspace/app", tool_name: $tool, tool_input: $input}' \
    | RALPH_WORKSPACE=/workspace "$REPO_ROOT/hooks/pre-tool-use.sh"
}

bash_input() { jq -nc --arg c "$1" '{command: $c}'; }

@test "pre-tool-use blocks destructive commands outside the workspace" {
  local cmd
  for cmd in 'rm -rf /etc' 'rm -rf "/etc"' "rm -rf '/'" 'rm -rf ~' 'rm -rf $HOME/.ssh' \
    'cd x && rm -rf ../../../etc' 'true; sudo -u root rm -r /var/lib' 'ls | xargs rm -rf /opt' \
    'echo $(rm -rf /usr)' 'rm -rf /workspace/../etc' 'rm -rf /workspace2' 'mkfs.ext4 /dev/sda' \
    'dd if=/dev/zero of=/dev/sda' 'chmod -R 777 /usr' 'chown -R me /' 'find / -name x -delete' \
    'mv /etc/passwd /tmp/x' 'shred -u /root/.bash_history' 'git push --force origin main' \
    'git push origin +main' 'git push origin --delete main'; do
    run pre_tool Bash "$(bash_input "$cmd")"
    [ "$status" -eq 2 ] || { echo "not blocked: $cmd"; false; }
    [[ $output == "ralph: blocked: "* ]] || { echo "no reason for: $cmd: $output"; false; }
  done
}

@test "pre-tool-use lets work inside the workspace through" {
  local cmd
  for cmd in 'rm -rf build/' 'rm -rf /workspace/app/target' 'rm -f /tmp/x' 'rm -rf ./node_modules' \
    'ls -la /' 'cat /etc/os-release' 'cargo test' 'git push origin ralph/x' 'git rm -r src/old' \
    'find . -name "*.o" -delete' 'chmod +x scripts/run.sh' 'mv a.txt b.txt' 'make clean && make'; do
    run pre_tool Bash "$(bash_input "$cmd")"
    [ "$status" -eq 0 ] || { echo "blocked: $cmd: $output"; false; }
  done
}

@test "pre-tool-use checks the file tools' paths" {
  run pre_tool Write '{"file_path": "/workspace/app/src/main.rs", "content": "x"}'
  [ "$status" -eq 0 ]
  run pre_tool Edit '{"file_path": "src/lib.rs", "old_string": "a", "new_string": "b"}'
  [ "$status" -eq 0 ]
  run pre_tool Edit '{"file_path": "/etc/passwd", "old_string": "a", "new_string": "b"}'
  [ "$status" -eq 2 ]
  [[ $output == *"Edit on /etc/passwd"* ]]
  run pre_tool Write '{"file_path": "/workspace/../root/.bashrc", "content": "x"}'
  [ "$status" -eq 2 ]
  # Reading is not guarded.
  run pre_tool Read '{"file_path": "/etc/passwd"}'
  [ "$status" -eq 0 ]
}

@test "session-end releases the task when the worker is gone" {
  fresh_db
  "$TASK" add h/1 "orphaned"
  "$TASK" claim --agent lost-worker >/dev/null
  local dead
  sleep 0 &
  dead=$!
  wait "$dead"
  run bash -c 'echo "{\"session_id\": \"s\", \"hook_event_name\": \"SessionEnd\", \"reason\": \"other\"}" | "$0"' \
    "$REPO_ROOT/hooks/session-end.sh"
  [ "$status" -eq 0 ]
  [ "$(task_status h/1)" = active ]
  echo '{"session_id": "s", "hook_event_name": "SessionEnd", "reason": "other"}' \
    | RALPH_TASK_ID=h/1 RALPH_AGENT_ID=lost-worker RALPH_WORKER_PID=$dead "$REPO_ROOT/hooks/session-end.sh"
  [ "$(task_status h/1)" = open ]
}

@test "session-end leaves the task to a live worker and records why the session ended" {
  fresh_db
  "$TASK" add h/2 "held"
  "$TASK" claim --agent live-worker >/dev/null
  mkdir -p "$BATS_TEST_TMPDIR/state"
  echo '{"session_id": "s", "hook_event_name": "SessionEnd", "reason": "prompt_input_exit"}' \
    | RALPH_TASK_ID=h/2 RALPH_AGENT_ID=live-worker RALPH_WORKER_PID=$$ RALPH_STATE_DIR="$BATS_TEST_TMPDIR/state" \
      "$REPO_ROOT/hooks/session-end.sh"
  [ "$(task_status h/2)" = active ]
  [ "$(jq -r '.reason + " " + .task' "$BATS_TEST_TMPDIR/state/session-end.json")" = "prompt_input_exit h/2" ]
}
