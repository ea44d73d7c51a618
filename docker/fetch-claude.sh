#!/bin/sh
# Fetches the native Claude Code binary for one architecture from the npm
# registry, verifies the tarball's pinned sha512, and installs it under DEST as
#   DEST/usr/local/share/claude/VERSION/claude
#   DEST/usr/local/bin/claude -> /usr/local/share/claude/VERSION/claude
# Used by the build stage of every worker Dockerfile (POSIX sh and POSIX
# tools only: it runs on Alpine's busybox as well as on bash and coreutils).
# Downloads with curl where there is one (the glibc builders, the host), else
# with wget: Alpine's base image has busybox wget (HTTPS through its
# ssl_client) and no curl. Whatever fetched it, the tarball is installed only
# if it matches the pinned sha512. xtask/tests/standins.rs runs both paths.
#
# usage: fetch-claude.sh musl|glibc TARGETARCH DEST
# env:   CLAUDE_VERSION, CLAUDE_SHA512_<MUSL|GLIBC>_<AMD64|ARM64> (docker/claude-code.pins)
#        CLAUDE_TARBALL_DIR  a directory already holding the tarball (hermetic builds)
#        CLAUDE_CACHE_DIR    where downloads are kept between builds (a cache mount)
#        CLAUDE_NPM_REGISTRY the npm registry or a mirror of it
#                            (default https://registry.npmjs.org)
set -eu

die() {
  echo "fetch-claude: $*" >&2
  exit 1
}

[ $# -eq 3 ] || die "usage: fetch-claude.sh musl|glibc TARGETARCH DEST"
variant=$1
target_arch=$2
dest=$3
: "${CLAUDE_VERSION:?CLAUDE_VERSION is not set: pass the build args from docker/claude-code.pins}"

case "$target_arch" in
  amd64) npm_arch=x64 ;;
  arm64) npm_arch=arm64 ;;
  *) die "unsupported TARGETARCH '$target_arch': Claude Code ships for amd64 and arm64 only; build with --platform linux/amd64 or linux/arm64" ;;
esac
case "$variant" in
  musl) suffix=-musl pin_var=CLAUDE_SHA512_MUSL_ ;;
  glibc) suffix='' pin_var=CLAUDE_SHA512_GLIBC_ ;;
  *) die "unknown variant '$variant': use musl or glibc" ;;
esac
pin_var="$pin_var$(echo "$target_arch" | tr '[:lower:]' '[:upper:]')"
eval "sha512=\${$pin_var:-}"
# shellcheck disable=SC2154 # set by the eval above
[ -n "$sha512" ] || die "$pin_var is not set: pass the build args from docker/claude-code.pins"

package="claude-code-linux-$npm_arch$suffix"
tarball="$package-$CLAUDE_VERSION.tgz"
registry=${CLAUDE_NPM_REGISTRY:-https://registry.npmjs.org}
url="${registry%/}/@anthropic-ai/$package/-/$tarball"
cache=${CLAUDE_CACHE_DIR:-/tmp/claude-cache}

verified() {
  [ -f "$1" ] && echo "$sha512  $1" | sha512sum -c - >/dev/null 2>&1
}

# download URL FILE: with curl if installed (it retries), else with wget
# (three attempts).
download() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 3 -o "$2" "$1"
  elif command -v wget >/dev/null 2>&1; then
    attempt=1
    until wget -q -O "$2" "$1"; do
      [ "$attempt" -lt 3 ] || return 1
      echo "fetch-claude: wget failed (attempt $attempt of 3), retrying" >&2
      attempt=$((attempt + 1))
      sleep "$attempt"
    done
  else
    die "neither curl nor wget is installed: add one to the build stage, or set CLAUDE_TARBALL_DIR to a directory holding $tarball"
  fi
}

# A tarball at hand is read where it is: a copy would stay in the build
# stage's layer (165 MB for each image and architecture in the build cache).
if [ -n "${CLAUDE_TARBALL_DIR:-}" ] && [ -f "$CLAUDE_TARBALL_DIR/$tarball" ]; then
  source=$CLAUDE_TARBALL_DIR/$tarball
else
  source=$cache/$tarball
  mkdir -p "$cache"
  if ! verified "$source"; then
    echo "fetch-claude: downloading $url" >&2
    rm -f "$source.part"
    download "$url" "$source.part" || die "downloading $url failed"
    mv "$source.part" "$source"
  fi
fi
verified "$source" || die "$tarball does not match the pinned sha512 ($pin_var): refusing to install it"

work=$(mktemp -d)
tar -xzf "$source" -C "$work" package/claude
mkdir -p "$dest/usr/local/share/claude/$CLAUDE_VERSION" "$dest/usr/local/bin"
cp "$work/package/claude" "$dest/usr/local/share/claude/$CLAUDE_VERSION/claude"
chmod 0755 "$dest/usr/local/share/claude/$CLAUDE_VERSION/claude"
ln -sf "/usr/local/share/claude/$CLAUDE_VERSION/claude" "$dest/usr/local/bin/claude"
rm -rf "$work"
echo "fetch-claude: Claude Code $CLAUDE_VERSION ($package) verified and installed" >&2
