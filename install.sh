#!/usr/bin/env bash
# Installs ralph on a host: the files in PREFIX/share/ralph, `ralph` and
# `task` linked into PREFIX/bin. Checks the prerequisites first (bash >= 4,
# git, jq, psql). Idempotent: running it again replaces the installed copy
# (swapped in whole, so a failed install leaves the previous one).
set -euo pipefail

src=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)

fail() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

usage() {
  cat <<'USAGE'
usage: install.sh [--prefix DIR]

Installs ralph into DIR/share/ralph and links DIR/bin/ralph and DIR/bin/task
(default DIR: /usr/local). Needs bash >= 4, git, jq and psql.
USAGE
}

prefix=/usr/local
while (($#)); do
  case $1 in
    --prefix) [[ -n ${2:-} ]] || fail "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; [[ -n $prefix ]] || fail "--prefix needs a directory"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) fail "unknown argument '$1': usage: install.sh [--prefix DIR]" ;;
  esac
done

((BASH_VERSINFO[0] >= 4)) || fail "bash >= 4 is required, this is bash $BASH_VERSION: install a newer bash first"
for tool in git jq psql; do
  if ! command -v "$tool" >/dev/null; then
    case $tool in
      psql) fail "missing prerequisite 'psql': install the PostgreSQL client (Debian: apt-get install postgresql-client)" ;;
      *) fail "missing prerequisite '$tool': install it (Debian: apt-get install $tool)" ;;
    esac
  fi
done

share="$prefix/share/ralph"
mkdir -p "$prefix/bin" "$prefix/share" || fail "cannot create $prefix/bin and $prefix/share: choose a writable --prefix"
staging=$(mktemp -d "$prefix/share/.ralph.new.XXXXXX")
trap 'rm -rf "$staging" "$share.old.$$"' EXIT
mkdir -p "$staging/docker"
cp "$src/ralph.sh" "$src/task" "$src/install.sh" "$src/models.json" "$src/.env.example" "$staging/"
cp -R "$src/lib" "$src/db" "$src/skills" "$src/hooks" "$staging/"
cp "$src/docker/entrypoint.sh" "$staging/docker/"
chmod 0755 "$staging"

# Swap the new copy in whole.
[[ ! -e $share ]] || mv "$share" "$share.old.$$"
mv "$staging" "$share"
ln -sfn "../share/ralph/ralph.sh" "$prefix/bin/ralph"
ln -sfn "../share/ralph/task" "$prefix/bin/task"
echo "ralph $(. "$share/lib/version.sh" && echo "$RALPH_VERSION") installed in $share; ralph and task are in $prefix/bin"
