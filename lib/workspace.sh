#!/usr/bin/env bash
# The git workspace a task runs in: a clone of RALPH_REPO_URL (in
# RALPH_WORKSPACE, default /workspace), a fresh branch per task, committed
# and pushed back to the remote when the agent is done.
# Needs lib/common.sh.

workspace_dir() { printf '%s\n' "${RALPH_WORKSPACE:-/workspace}"; }

# task_branch ID: ralph/<id>, with what git refuses in a branch name replaced
# (task ids are already restricted to letters, digits and . _ / -).
task_branch() {
  local id=${1//[^A-Za-z0-9._\/-]/-}
  while [[ $id == *..* ]]; do id=${id//../.}; done
  while [[ $id == *//* ]]; do id=${id//\/\//\/}; done
  id=${id%.lock}
  id=${id%/}
  id=${id%.}
  printf 'ralph/%s\n' "$id"
}

# workspace_prepare ID [REF]: clone or fetch, then a fresh branch for the
# task from REF (a branch, tag or commit of the remote) or the remote's
# default branch, with a clean tree. Prints the branch, then the commit the
# remote's branch of that name is at now ("" when it has none): the push
# of this attempt may replace that, and nothing else.
workspace_prepare() {
  local id=$1 ref=${2:-} dir branch base
  dir=$(workspace_dir)
  [[ -n ${RALPH_REPO_URL:-} ]] || usage_error "RALPH_REPO_URL is not set: the repository the worker changes (a git URL)"
  if [[ -d $dir/.git ]]; then
    git -C "$dir" remote set-url origin "$RALPH_REPO_URL" >&2 || return 1
    git -C "$dir" fetch --quiet --prune --tags origin >&2 || return 1
    # The remote's default branch may have changed since the clone.
    git -C "$dir" remote set-head origin --auto >/dev/null 2>&1 || true
  else
    mkdir -p "$dir" || return 1
    # An empty workspace (a fresh volume, a tmpfs) is cloned into in place.
    if [[ -n $(ls -A "$dir") ]]; then
      log "workspace $dir is not empty and not a git repository: empty it or point RALPH_WORKSPACE elsewhere"
      return 1
    fi
    git clone --quiet "$RALPH_REPO_URL" "$dir" >&2 || return 1
  fi
  if [[ -n $ref ]]; then
    if git -C "$dir" rev-parse --verify --quiet "refs/remotes/origin/$ref^{commit}" >/dev/null; then
      base="refs/remotes/origin/$ref"
    elif git -C "$dir" rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
      base=$ref
    else
      log "task $id: ref '$ref' is not a branch, tag or commit of $RALPH_REPO_URL"
      return 1
    fi
  else
    base=$(git -C "$dir" symbolic-ref --quiet refs/remotes/origin/HEAD) || base=HEAD
  fi
  branch=$(task_branch "$id")
  git -C "$dir" reset --quiet --hard >&2 || return 1
  git -C "$dir" clean -qffdx >&2 || return 1
  if git -C "$dir" rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
    git -C "$dir" checkout --quiet --no-track -B "$branch" "$base" >&2 || return 1
  else
    # A repository without commits yet: the task's branch starts it.
    git -C "$dir" checkout --quiet --orphan "$branch" >&2 || return 1
  fi
  printf '%s\n%s\n' "$branch" "$(git -C "$dir" rev-parse --verify --quiet "refs/remotes/origin/$branch" || true)"
}

# workspace_commit ID BRANCH MESSAGE REMOTE_HEAD: commits whatever the agent
# changed (an empty commit when nothing changed, so the result always names
# the commit that records the task), pushes the branch to the remote, prints
# the commit. The push replaces the remote branch only if it is still at
# REMOTE_HEAD (absent when ""): a retried task replaces what an earlier
# attempt pushed, never what another worker pushed meanwhile.
workspace_commit() {
  local id=$1 branch=$2 message=$3 remote_head=${4:-} dir
  dir=$(workspace_dir)
  git -C "$dir" add -A >&2 || return 1
  git -C "$dir" commit --quiet --allow-empty --no-verify -m "ralph: $id" -m "$message" >&2 || return 1
  git -C "$dir" push --quiet --force-with-lease="refs/heads/$branch:$remote_head" origin "HEAD:refs/heads/$branch" >&2 \
    || return 1
  git -C "$dir" rev-parse HEAD
}
