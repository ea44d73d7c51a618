#!/usr/bin/env bash
# The git workspace a task runs in: a clone of RALPH_REPO_URL, a branch per task.

workspace_dir() { printf '%s\n' "${RALPH_WORKSPACE:-/workspace}"; }

# task_branch ID: ralph/<id> with characters git refuses replaced.
task_branch() {
  local id=${1//[^A-Za-z0-9._\/-]/-}
  printf 'ralph/%s\n' "${id//../.}"
}

# workspace_prepare ID: clone or fetch, then a fresh branch for the task from
# the remote's default branch (or the task's ref). Prints the branch.
workspace_prepare() {
  local id=$1 ref=${2:-} dir branch base
  dir=$(workspace_dir)
  [[ -n ${RALPH_REPO_URL:-} ]] || usage_error "RALPH_REPO_URL is not set: the repository the worker changes (a git URL)"
  if [[ -d $dir/.git ]]; then
    git -C "$dir" remote set-url origin "$RALPH_REPO_URL"
    git -C "$dir" fetch --quiet --prune origin >&2
  else
    mkdir -p "$dir"
    # An emptied workspace (a tmpfs, a fresh volume) is cloned into in place.
    git clone --quiet "$RALPH_REPO_URL" "$dir" >&2
  fi
  base=${ref:-$(git -C "$dir" symbolic-ref --short refs/remotes/origin/HEAD 2>/dev/null || echo origin/main)}
  [[ $base == origin/* || -z $ref ]] || base="origin/$base"
  branch=$(task_branch "$id")
  git -C "$dir" reset --quiet --hard >&2
  git -C "$dir" clean -qfdx >&2
  git -C "$dir" checkout --quiet -B "$branch" "$base" >&2
  printf '%s\n' "$branch"
}

# workspace_commit ID BRANCH: commits whatever the agent changed (an empty
# commit when nothing changed, so the result always names a commit), pushes
# the branch, prints the commit.
workspace_commit() {
  local id=$1 branch=$2 dir
  dir=$(workspace_dir)
  git -C "$dir" add -A
  git -C "$dir" commit --quiet --allow-empty -m "ralph: $id" -m "Task $id, worked by agent ${RALPH_AGENT_ID:-?}." >&2
  git -C "$dir" push --quiet --force-with-lease origin "$branch" >&2
  git -C "$dir" rev-parse HEAD
}
