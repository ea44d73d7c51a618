#!/usr/bin/env bash
# Claude Code PreToolUse hook: blocks destructive commands aimed outside the
# workspace (RALPH_WORKSPACE, default /workspace; /tmp is allowed too).
# Reads the hook's JSON on stdin ({tool_name, tool_input, cwd, …}); exit 2
# with the reason on stderr blocks the call, exit 0 lets it run.
# Conservative: a path it cannot resolve (a variable, a command
# substitution) counts as outside.
set -euo pipefail

# normalize PATH: an absolute path without . and .. parts (like realpath -m,
# which busybox lacks), relative paths taken from $cwd.
normalize() {
  local path=$1 part out=""
  [[ $path == /* ]] || path="$cwd/$path"
  local -a parts stack=()
  IFS=/ read -r -a parts <<<"$path"
  for part in "${parts[@]}"; do
    case $part in
      "" | .) ;;
      ..) ((${#stack[@]} == 0)) || unset 'stack[-1]' ;;
      *) stack+=("$part") ;;
    esac
  done
  for part in "${stack[@]}"; do out+="/$part"; done
  printf '%s\n' "${out:-/}"
}

workspace=${RALPH_WORKSPACE:-/workspace}
cwd=/
workspace=$(normalize "$workspace")
input=$(cat)
tool=$(jq -r '.tool_name // empty' <<<"$input")
cwd=$(jq -r '.cwd // empty' <<<"$input")
[[ $cwd == /* ]] || cwd=$workspace
cwd=$(normalize "$cwd")

block() {
  printf 'ralph: blocked: %s: only %s (and /tmp) may be changed; work inside the workspace\n' "$1" "$workspace" >&2
  exit 2
}

# inside PATH: whether PATH is the workspace or below it, or below /tmp.
inside() {
  local path=$1 resolved
  local tilde='~'
  case $path in
    *'$'* | *'`'*) return 1 ;; # unknown until the shell expands it
    "$tilde" | "$tilde"/*) path=${HOME:-/root}${path:1} ;;
    "$tilde"*) return 1 ;;
  esac
  resolved=$(normalize "$path")
  [[ $resolved == "$workspace" || $resolved == "$workspace"/* || $resolved == /tmp/* ]]
}

check_file_tool() {
  local path
  path=$(jq -r '.tool_input.file_path // .tool_input.notebook_path // .tool_input.path // empty' <<<"$input")
  [[ -z $path ]] || inside "$path" || block "$tool on $path"
}

# Splits a shell command into simple commands and checks each.
check_bash() {
  local command segment
  command=$(jq -r '.tool_input.command // empty' <<<"$input")
  while IFS= read -r segment; do
    check_segment "$segment"
  done < <(sed -E 's/(&&|\|\||;|\||&|\$\(|`|\(|\)|\{|\})/\n/g' <<<"$command")
}

# check_segment WORDS: removing, truncating or re-permissioning files must
# stay inside the workspace; disk and system wreckers are never allowed.
check_segment() {
  local -a words
  # Quotes and backslashes only group words here; drop them.
  local text=${1//[\"\'\\]/}
  read -r -a words <<<"$text" || true
  # Skip what only wraps a command: env assignments, sudo, env, xargs, …
  # and their options.
  local wrapped=false
  while ((${#words[@]})); do
    case ${words[0]} in
      *=* | sudo | doas | env | command | exec | nohup | time | nice | xargs | then | do | else | !)
        words=("${words[@]:1}")
        wrapped=true
        ;;
      -u | -g | -n | -I | -P | -L | -C)
        $wrapped || break
        words=("${words[@]:2}")
        ;;
      -*)
        $wrapped || break
        words=("${words[@]:1}")
        ;;
      *) break ;;
    esac
  done
  ((${#words[@]})) || return 0
  local cmd=${words[0]##*/} arg
  case $cmd in
    rm | rmdir | shred | unlink | truncate | chmod | chown | chgrp | chattr)
      for arg in "${words[@]:1}"; do
        case $arg in
          -*) ;;
          *) inside "$arg" || block "$cmd $arg" ;;
        esac
      done
      ;;
    mv)
      for arg in "${words[@]:1}"; do
        [[ $arg == -* ]] || inside "$arg" || block "mv $arg"
      done
      ;;
    find)
      if [[ " ${words[*]} " == *" -delete "* || " ${words[*]} " == *" -exec rm "* || " ${words[*]} " == *" -execdir rm "* ]]; then
        for arg in "${words[@]:1}"; do
          [[ $arg != -* ]] || break
          inside "$arg" || block "find $arg … -delete"
        done
      fi
      ;;
    dd)
      for arg in "${words[@]:1}"; do
        [[ $arg != of=* ]] || inside "${arg#of=}" || block "dd $arg"
      done
      ;;
    mkfs | mkfs.* | mke2fs | fdisk | sfdisk | parted | wipefs | mkswap | shutdown | reboot | halt | poweroff | init | kill)
      [[ $cmd != kill ]] || [[ " ${words[*]} " == *" -1 "* || " ${words[*]} " == *" 1 "* ]] || return 0
      block "$cmd"
      ;;
    git)
      # Rewriting the remote's history is not a task's job.
      if [[ " ${words[*]} " == *" push "* ]] && [[ " ${words[*]} " =~ \ (--force|-f|--force-with-lease[^ ]*|--mirror|--delete|-d)\  || " ${words[*]} " == *" +"* ]]; then
        block "git push that rewrites or deletes remote branches"
      fi
      ;;
  esac
  return 0
}

case $tool in
  Bash) check_bash ;;
  Write | Edit | MultiEdit | NotebookEdit) check_file_tool ;;
esac
exit 0
