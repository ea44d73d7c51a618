#!/usr/bin/env bash
# Installs ralph into PREFIX (default /usr/local): the files in
# PREFIX/share/ralph, `ralph` and `task` in PREFIX/bin. Idempotent: running
# it again replaces the installed copy.
set -euo pipefail

src=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)

fail() {
  printf 'install.sh: %s\n' "$*" >&2
  exit 1
}

prefix=/usr/local
while (($#)); do
  case $1 in
    --prefix) [[ -n ${2:-} ]] || fail "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    -h | --help) echo "usage: install.sh [--prefix DIR]   (default /usr/local)"; exit 0 ;;
    *) fail "unknown argument '$1': usage: install.sh [--prefix DIR]" ;;
  esac
done

((BASH_VERSINFO[0] >= 4)) || fail "bash >= 4 is required (this is $BASH_VERSION): install a newer bash"
for tool in git jq psql; do
  command -v "$tool" >/dev/null || fail "missing prerequisite '$tool': install it (Debian: apt-get install ${tool/psql/postgresql-client})"
done

share="$prefix/share/ralph"
staging="$prefix/share/.ralph.new.$$"
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/docker" "$prefix/bin"
cp "$src/ralph.sh" "$src/task" "$src/install.sh" "$src/models.json" "$src/.env.example" "$staging/"
cp -R "$src/lib" "$src/db" "$src/skills" "$src/hooks" "$staging/"
cp "$src/docker/entrypoint.sh" "$staging/docker/"
# Swap in the new copy whole, so a failed install leaves the old one.
rm -rf "$share.old"
[[ ! -d $share ]] || mv "$share" "$share.old"
mv "$staging" "$share"
rm -rf "$share.old"
ln -sfn "../share/ralph/ralph.sh" "$prefix/bin/ralph"
ln -sfn "../share/ralph/task" "$prefix/bin/task"
echo "ralph installed in $share (ralph and task in $prefix/bin)"
