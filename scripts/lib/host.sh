#!/usr/bin/env bash
# Helpers for scripts/setup-host.sh: logging, checks, and apt with private
# package lists (to fetch packages of another Debian release or architecture
# without touching the system's sources).

log() { printf '[setup-host] %s\n' "$*" >&2; }

die() {
  printf '[setup-host] error: %s\n' "$*" >&2
  exit 1
}

require_root_on_debian_12() {
  ((EUID == 0)) || die "must run as root (it installs packages and starts dockerd): sudo bash $0"
  local id version
  id=$(. /etc/os-release && echo "${ID:-}")
  version=$(. /etc/os-release && echo "${VERSION_ID:-}")
  [[ $id == debian && $version == 12 ]] \
    || die "this script supports Debian 12 only (found ${id:-unknown} ${version:-?}): install Docker Engine >= 26 with buildx and the tools in README.md by hand"
}

dpkg_installed() {
  [[ $(dpkg-query -W -f '${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

dpkg_version() {
  dpkg_installed "$1" && dpkg-query -W -f '${Version}' "$1"
  return 0
}

# apt_private DIR ARCH ARGS…: apt-cache with DIR's own sources and lists.
apt_private() {
  local dir=$1 arch=$2
  shift 2
  apt-cache "${apt_private_opts[@]/@DIR@/$dir}" -o "APT::Architectures::=$arch" "$@"
}

apt_private_opts=(
  -o Dir::Etc::SourceParts=/dev/null
  -o Dir::Etc::sourcelist=@DIR@/private.sources
  -o Dir::State::Lists=@DIR@/lists
  -o Dir::Cache=@DIR@/cache
)

# apt_private_update DIR SUITE ARCH: a deb822 source for SUITE/ARCH in DIR,
# verified with Debian's archive keyring, and its package lists.
apt_private_update() {
  local dir=$1 suite=$2 arch=$3
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  cat >"$dir/private.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: $suite
Components: main
Architectures: $arch
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  apt-get "${apt_private_opts[@]/@DIR@/$dir}" -o "APT::Architectures::=$arch" update -qq
}

# apt_private_download DIR ARCH PKG[=VERSION]: into the current directory.
apt_private_download() {
  local dir=$1 arch=$2 pkg=$3
  apt-get "${apt_private_opts[@]/@DIR@/$dir}" -o "APT::Architectures::=$arch" download -qq "$pkg" 2>&1 \
    | grep -v 'Download is performed unsandboxed' >&2 || true
  compgen -G "./${pkg%%[:=]*}_*.deb" >/dev/null || die "could not download $pkg from Debian"
}

# wait_for WHAT SECONDS CMD…: until CMD succeeds, or fail naming WHAT.
wait_for() {
  local what=$1 seconds=$2
  shift 2
  local i
  for ((i = 0; i < seconds; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  die "$what did not come up within ${seconds}s: see $LOG_DIR"
}
