#!/usr/bin/env bash
# Claude Code PreToolUse hook: blocks destructive commands aimed outside the
# workspace. Reads the hook's JSON on stdin ({tool_name, tool_input, cwd});
# exit 2 with the reason on stderr blocks the call, exit 0 lets it run.
set -euo pipefail

workspace=$(realpath -m "${RALPH_WORKSPACE:-/workspace}")
input=$(cat)
tool=$(jq -r '.tool_name // empty' <<<"$input")
cwd=$(jq -r '.cwd // empty' <<<"$input")
cwd=${cwd:-$workspace}

block() {
  printf 'ralph: blocked: %s (only %s may be changed)\n' "$1" "$workspace" >&2
  exit 2
}

# inside PATH: whether PATH (relative to cwd) is the workspace or below it.
inside() {
  local path=$1 resolved
  [[ $path == /* ]] || path="$cwd/$path"
  resolved=$(realpath -m "$path")
  [[ $resolved == "$workspace" || $resolved == "$workspace"/* || $resolved == /tmp/* ]]
}

check_file_tool() {
  local path
  path=$(jq -r '.tool_input.file_path // .tool_input.notebook_path // empty' <<<"$input")
  [[ -z $path ]] || inside "$path" || block "$tool on $path"
}

# Splits a shell command into simple commands and checks each: removing or
# re-permissioning files, and the classic disk and system wreckers, must stay
# inside the workspace.
check_bash() {
  local command segment
  command=$(jq -r '.tool_input.command // empty' <<<"$input")
  while IFS= read -r segment; do
    check_segment "$segment"
  done < <(sed -E 's/(\&\&|\|\||;|\||\$\(|`)/\n/g' <<<"$command")
}

check_segment() {
  local -a words
  read -r -a words <<<"$1" || true
  ((${#words[@]})) || return 0
  # Skip leading env assignments and sudo.
  while ((${#words[@]})) && [[ ${words[0]} == *=* || ${words[0]} == sudo ]]; do
    words=("${words[@]:1}")
  done
  ((${#words[@]})) || return 0
  local cmd=${words[0]##*/} arg
  case $cmd in
    rm | shred | rmdir | chmod | chown | truncate)
      for arg in "${words[@]:1}"; do
        case $arg in
          -*) ;;
          *) inside "$arg" || block "$cmd $arg" ;;
        esac
      done
      ;;
    mkfs* | fdisk | parted | wipefs | shutdown | reboot | halt | poweroff)
      block "$cmd"
      ;;
    dd)
      for arg in "${words[@]:1}"; do
        [[ $arg != of=* ]] || inside "${arg#of=}" || block "dd $arg"
      done
      ;;
    git)
      # Rewriting the shared history of other branches is not a task's job.
      if [[ " ${words[*]} " == *" push "* && (" ${words[*]} " == *" --force "* || " ${words[*]} " == *" -f "*) ]]; then
        block "git push --force"
      fi
      ;;
  esac
}

case $tool in
  Bash) check_bash ;;
  Write | Edit | MultiEdit | NotebookEdit) check_file_tool ;;
esac
exit 0
