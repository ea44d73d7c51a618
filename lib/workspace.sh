#!/usr/bin/env bash
# The git workspace a task runs in: the agent's tree (RALPH_WORKSPACE,
# default /workspace) and the worker's git directory apart from it
# (RALPH_GIT_DIR, default the tree's path with .git appended: beside it,
# never in it), a fresh branch per task, committed and pushed back to the
# remote when the agent is done.
#
# Git the agent can't steer: the tree holds no .git (an agent's own `git
# init` there is neither committed nor read), the git directory is the
# worker's only (with privilege separation the agent can't read it), and
# every git command the worker runs (wgit) reads no configuration but the
# repository's own, which only the worker writes, with hooks, fsmonitor and
# the agent's attributes' drivers off. The remote is named by its URL on
# every fetch and push, never by a remote's configuration. A URL's user
# info (a token) never reaches argv, a log, an error, the database or the
# git directory: git gets the URL without it and the credential from a
# helper that reads a file in the worker's state directory.
# Needs lib/common.sh (and lib/privsep.sh for the agent's group).

# What workspace_prepare and workspace_push return for a fault of the task
# itself (a ref that doesn't exist, a push refused because the branch
# moved): a failed attempt. Any other failure is outside the task.
readonly WORKSPACE_TASK_FAULT=3

workspace_dir() { printf '%s\n' "${RALPH_WORKSPACE:-/workspace}"; }

workspace_git_dir() {
  local ws
  ws=$(workspace_dir)
  printf '%s\n' "${RALPH_GIT_DIR:-${ws%/}.git}"
}

# url_parts URL: URL_PUBLIC is URL without its user info (what logs,
# errors, argv and git's configuration may show), URL_CREDENTIAL the
# scheme://userinfo@host line git's store helper reads ("" when the URL
# has no password or token in it). scp-like (user@host:path) and local
# URLs hold no secret and are kept as they are.
url_parts() {
  local url=$1 scheme rest authority path userinfo
  URL_PUBLIC=$url URL_CREDENTIAL=""
  [[ $url =~ ^([A-Za-z][A-Za-z0-9+.-]*)://([^/]*)(.*)$ ]] || return 0
  scheme=${BASH_REMATCH[1]} authority=${BASH_REMATCH[2]} path=${BASH_REMATCH[3]}
  [[ $authority == *@* ]] || return 0
  userinfo=${authority%@*}
  rest=${authority##*@}
  URL_PUBLIC="$scheme://$rest$path"
  URL_CREDENTIAL="$scheme://$userinfo@$rest"
}
URL_PUBLIC="" URL_CREDENTIAL=""

# workspace_public_url: RALPH_REPO_URL without its user info.
workspace_public_url() {
  url_parts "${RALPH_REPO_URL:-}"
  printf '%s\n' "$URL_PUBLIC"
}

# workspace_credentials STATE_DIR: the credential of RALPH_REPO_URL (its
# user info), if any, in STATE_DIR/git-credentials (0600) for git's store
# helper; RALPH_GIT_CREDENTIALS_FILE, a file in the same format, is used
# as it is.
workspace_credentials() {
  url_parts "${RALPH_REPO_URL:-}"
  [[ -n $URL_CREDENTIAL ]] || return 0
  (umask 077 && printf '%s\n' "$URL_CREDENTIAL" >"$1/git-credentials")
}

# wgit ARGS…: git on the workspace, for the worker: the git directory and
# the tree apart, no global or system configuration, no hooks, no
# fsmonitor, no prompt, and the credential only from the store file.
wgit() {
  wgit_cmd
  "${WGIT[@]}" "$@"
}

# wgit_remote [--outside] SECONDS ARGS…: wgit for a command that talks to
# the remote, stopped after SECONDS (a remote that stops answering must not
# hold the task: its lease is renewed meanwhile). Exit 124 (or 137) when
# stopped. --outside: without the git directory (ls-remote before there is
# one), from / (so no repository an agent made in the tree is found).
wgit_remote() {
  local outside=false secs arg run=()
  [[ $1 != --outside ]] || { outside=true; shift; }
  secs=$1
  shift
  wgit_cmd
  for arg in "${WGIT[@]}"; do
    [[ $outside == true && ($arg == GIT_DIR=* || $arg == GIT_WORK_TREE=*) ]] || run+=("$arg")
  done
  if [[ $outside == true ]]; then
    (cd / && timeout --foreground --kill-after=2 "$secs" "${run[@]}" "$@")
  else
    timeout --foreground --kill-after=2 "$secs" "${run[@]}" "$@"
  fi
}

# wgit_cmd: WGIT, the command wgit runs.
wgit_cmd() {
  local credentials=${RALPH_GIT_CREDENTIALS_FILE:-}
  [[ -n $credentials || -z ${RALPH_STATE_DIR:-} || ! -s $RALPH_STATE_DIR/git-credentials ]] \
    || credentials=$RALPH_STATE_DIR/git-credentials
  WGIT=(env "GIT_DIR=$(workspace_git_dir)" "GIT_WORK_TREE=$(workspace_dir)" GIT_CONFIG_GLOBAL=/dev/null
    GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0 GIT_ASKPASS=true SSH_ASKPASS=true
    git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c core.untrackedCache=false
    -c core.attributesFile=/dev/null -c credential.helper= -c protocol.ext.allow=never)
  [[ -z $credentials ]] || WGIT+=(-c "credential.helper=store --file=$credentials")
}
WGIT=()

# workspace_unlock_stale: the locks git leaves when it is killed (index.lock,
# a ref's .lock): stale, since this worker alone runs git on its git
# directory (workspace_lock) and none runs now.
workspace_unlock_stale() {
  local gitdir
  gitdir=$(workspace_git_dir)
  [[ -d $gitdir ]] || return 0
  find "$gitdir" -name '*.lock' -type f -delete 2>/dev/null || true
}

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

# workspace_lock: this worker alone uses its tree (two workers on one tree
# would commit each other's work): a lock on it, held open until the worker
# exits (in WORKSPACE_LOCK_FDS: the locks no child of the worker keeps,
# workspace_lock_close). Exits 2 when another worker holds it.
workspace_lock() {
  local dir fd
  command -v flock >/dev/null || { log "flock is not installed: nothing keeps two workers off one workspace"; return 0; }
  dir=$(workspace_dir)
  mkdir -p "$dir" || die "$EXIT_USAGE" "cannot create $dir: point RALPH_WORKSPACE at a writable place"
  exec {fd}<"$dir"
  flock -n "$fd" || die "$EXIT_USAGE" "another worker uses $dir: give each worker its own RALPH_WORKSPACE"
  WORKSPACE_LOCK_FDS+=("$fd")
}
WORKSPACE_LOCK_FDS=()

# workspace_lock_close: first thing in each process the worker starts in
# the background (the agent, its watchdog, the renewer, every step of
# worker_run): the worker's locks close there. A lock goes when the last
# descriptor of it closes; one inherited by a process that outlives the
# worker (after a SIGKILL: the renewer until its next check, a step until
# its bound) would refuse the worker restarted on that workspace.
workspace_lock_close() {
  local fd
  for fd in "${WORKSPACE_LOCK_FDS[@]}"; do exec {fd}<&-; done
}

# workspace_tree_access: with privilege separation, the tree belongs to the
# worker and is open to the agent's group (setgid: what either makes in it
# stays in that group); the git directory is the worker's alone.
workspace_tree_access() {
  chmod 0700 "$(workspace_git_dir)" || return 1
  ((PRIVSEP)) || return 0
  chgrp "$AGENT_GID" "$(workspace_dir)" && chmod 2775 "$(workspace_dir)"
}

# workspace_prepare ID [REF]: clone or fetch, then a fresh branch for the
# task from REF (a branch, tag or commit of the remote) or the remote's
# default branch, with a clean tree. Prints the branch, then the commit the
# remote's branch of that name is at now ("" when it has none): the push
# of this attempt may replace that, and nothing else.
workspace_prepare() {
  local id=$1 ref=${2:-} dir gitdir branch base url head
  dir=$(workspace_dir)
  gitdir=$(workspace_git_dir)
  [[ -n ${RALPH_REPO_URL:-} ]] || usage_error "RALPH_REPO_URL is not set: the repository the worker changes (a git URL)"
  url=$(workspace_public_url)
  env_uint RALPH_GIT_TIMEOUT_SECONDS 300 1 86400
  local secs=$ENV_UINT
  # The remote first (and its default branch, which may have changed): one
  # out of reach leaves nothing behind on disk.
  local remote
  remote=$(wgit_remote --outside "$secs" ls-remote --symref "$url" HEAD) || return 1
  head=$(sed -n 's|^ref: refs/heads/\([^[:space:]]*\)[[:space:]]*HEAD$|\1|p' <<<"$remote")
  # Files the worker checks out stay writable for the agent's group.
  umask 0002
  mkdir -p "$dir" "$gitdir" || return 1
  workspace_unlock_stale
  if [[ ! -f $gitdir/HEAD ]]; then
    # An empty tree (a fresh volume, a tmpfs) only: anything else may be
    # somebody's work.
    if [[ -n $(ls -A "$dir") ]]; then
      log "workspace $dir is not empty and has no git directory in $gitdir: empty it or point RALPH_WORKSPACE elsewhere"
      return 1
    fi
    GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1 git init --quiet --bare --template= "$gitdir" >&2 || return 1
    wgit config core.bare false || return 1
  fi
  workspace_tree_access || return 1
  wgit_remote "$secs" fetch --quiet --prune --tags "$url" "+refs/heads/*:refs/remotes/origin/*" >&2 || return 1
  if [[ -n $head ]]; then
    wgit symbolic-ref refs/remotes/origin/HEAD "refs/remotes/origin/$head" || return 1
  fi
  if [[ -n $ref ]]; then
    if wgit rev-parse --verify --quiet "refs/remotes/origin/$ref^{commit}" >/dev/null; then
      base="refs/remotes/origin/$ref"
    elif wgit rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
      base=$ref
    else
      log "ref '$ref' is not a branch, tag or commit of $url"
      return "$WORKSPACE_TASK_FAULT"
    fi
  else
    base=$(wgit symbolic-ref --quiet refs/remotes/origin/HEAD) || base=HEAD
  fi
  branch=$(task_branch "$id")
  if wgit rev-parse --verify --quiet "$base^{commit}" >/dev/null; then
    wgit checkout --quiet --force --no-track -B "$branch" "$base" >&2 || return 1
  else
    # A repository without commits yet: the task's branch starts it.
    wgit checkout --quiet --orphan "$branch" >&2 || return 1
    wgit rm -r --quiet --cached --ignore-unmatch . >&2 || return 1
  fi
  wgit reset --quiet --hard >&2 || return 1
  wgit clean -qffdx >&2 || return 1
  printf '%s\n%s\n' "$branch" "$(wgit rev-parse --verify --quiet "refs/remotes/origin/$branch" || true)"
}

# workspace_commit ID MESSAGE: commits whatever the agent changed (an
# empty commit when nothing changed, so the result always names the commit
# that records the task); prints the commit.
workspace_commit() {
  local id=$1 message=$2
  wgit add -A >&2 || return 1
  wgit commit --quiet --allow-empty --no-verify -m "ralph: $id" -m "$message" >&2 || return 1
  wgit rev-parse HEAD
}

# workspace_push BRANCH REMOTE_HEAD SECONDS: pushes the branch to the
# remote, stopped after SECONDS. It replaces the remote branch only if it is
# still at REMOTE_HEAD (absent when ""): a retried task replaces what an
# earlier attempt pushed, never what another worker pushed meanwhile; that
# refusal returns WORKSPACE_TASK_FAULT, any other failure 1.
workspace_push() {
  local branch=$1 remote_head=${2:-} secs=$3 url file errors rc=0
  url=$(workspace_public_url)
  # Its messages through a file, not a pipe: a pipe would wait for the
  # remote's side (its receive-pack, its hook) when the push is stopped.
  file=$(mktemp "${TMPDIR:-/tmp}/ralph-push.XXXXXX") || return 1
  wgit_remote "$secs" push --quiet --force-with-lease="refs/heads/$branch:$remote_head" "$url" \
    "HEAD:refs/heads/$branch" >/dev/null 2>"$file" || rc=$?
  errors=$(<"$file")
  rm -f "$file"
  [[ -z $errors ]] || printf '%s\n' "$errors" >&2
  ((rc)) || return 0
  ((rc != 124 && rc != 137)) || { log "the push did not finish within ${secs}s"; return 1; }
  [[ $errors != *"[rejected]"* && $errors != *"stale info"* && $errors != *"fetch first"* ]] || return "$WORKSPACE_TASK_FAULT"
  return 1
}
