#!/usr/bin/env bash
# Install everything the steps, tests and demo need, idempotently: Debian packages that are
# missing, a Python virtual environment at .venv/ with pinned dependencies and `druppie-step`.
# With everything in place it only checks and returns in about a second.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Debian packages: git's http-backend and sshd serve test repos; docker-registry, openssl, containerd,
# runc, the CNI plugins, ipset (kube-router's NetworkPolicies) and gcc (a static pause image) serve
# the e2e cluster; buildah, podman, skopeo and debootstrap build the images offline (make images);
# strace and musl-tools measure the build step's syscalls (hack/seccomp_measure.py); shellcheck checks
# the release workflow's scripts (actionlint runs it, make lint); libseccomp-dev builds runc v1.5.3 (cgo) for
# the user-namespace measurement of druppie-build, and apparmor's parser checks its AppArmor profile.
DEBIAN_PACKAGES=(git ca-certificates openssh-client openssh-server openssl docker-registry
  containerd runc containernetworking-plugins iptables iproute2 gcc libc6-dev
  buildah podman skopeo debootstrap busybox-static ipset strace musl-tools shellcheck
  libseccomp-dev apparmor)
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python >= 3.11 for the virtual environment.
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: $PYTHON is older than 3.11 (or missing); set PYTHON=/path/to/python3.11+" >&2
  exit 1
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi

# Reinstall only when the pins or the package metadata changed.
stamp=.venv/.druppie-setup-stamp
want=$(cat steps/requirements.lock steps/pyproject.toml | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" || ! -x .venv/bin/druppie-step ]]; then
  echo "setup: installing Python dependencies into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r steps/requirements.lock
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e steps
  echo "$want" > "$stamp"
fi

# bandit, the code scanner of `druppie-step scan` (steps/requirements-scan.txt), when its pins change.
scan_stamp=.venv/.druppie-scan-stamp
scan_want=$(sha256sum steps/requirements-scan.txt | cut -d' ' -f1)
if [[ ! -f $scan_stamp || $(cat "$scan_stamp") != "$scan_want" || ! -x .venv/bin/bandit ]]; then
  echo "setup: installing the scanners' Python dependencies (bandit) into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r steps/requirements-scan.txt
  echo "$scan_want" > "$scan_stamp"
fi

# The developers' tools (ruff, mypy, pre-commit, pytest-repeat, pytest-xdist), when their pins change.
dev_stamp=.venv/.druppie-dev-stamp
dev_want=$(sha256sum steps/requirements-dev.txt | cut -d' ' -f1)
if [[ ! -f $dev_stamp || $(cat "$dev_stamp") != "$dev_want" || ! -x .venv/bin/ruff ]]; then
  echo "setup: installing the developers' tools (ruff, mypy, pre-commit) into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r steps/requirements-dev.txt
  echo "$dev_want" > "$dev_stamp"
fi

# Go tools the tests and make lint run, each built from its Go module into the shared cache
# (keyed by hack/toolchain.env): kustomize, the oracle the tests compare tag-commit's edits with,
# and actionlint, which checks the release workflow. GOBIN is a temporary folder renamed into
# place, so an interrupted build never leaves a binary that looks complete.
go_tool() {  # go_tool NAME VERSION_VARIABLE MODULE_PATH
  local name=$1 version module=$3 dir build_log
  version=$(sed -n "s/^$2=//p" hack/toolchain.env)
  [[ -n $version ]] || { echo "setup: $2 missing in hack/toolchain.env" >&2; exit 1; }
  dir=${DRUPPIE_CACHE:-/var/cache/druppie}/$name-$version
  [[ -x $dir/$name ]] && return
  echo "setup: building $name $version into $dir (about a minute)"
  command -v go >/dev/null || { echo "setup: building $name needs Go (go not on PATH)" >&2; exit 1; }
  mkdir -p "$(dirname "$dir")"
  rm -rf "$dir.tmp"
  # go's download chatter is shown only when the build fails.
  if ! build_log=$(GOFLAGS=-buildvcs=false CGO_ENABLED=0 GOBIN="$dir.tmp" go install "$module@$version" 2>&1); then
    echo "$build_log" >&2; exit 1
  fi
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
}
go_tool kustomize KUSTOMIZE_VERSION sigs.k8s.io/kustomize/kustomize/v5
go_tool actionlint ACTIONLINT_VERSION github.com/rhysd/actionlint/cmd/actionlint

# The scanners and the SBOM tool the scan and build tests run for real (gitleaks, osv-scanner,
# trivy, syft), built from their Go modules into the same cache; about 10 min once on 2 cores,
# a check of four files after that. Their output is shown only when a build fails.
source hack/toolchain.env
cache=${DRUPPIE_CACHE:-/var/cache/druppie}
missing_tools=()
for tool in gitleaks:$GITLEAKS_VERSION osv-scanner:$OSV_SCANNER_VERSION trivy:$TRIVY_VERSION syft:$SYFT_VERSION; do
  [[ -f $cache/${tool%%:*}-${tool#*:}/.complete ]] || missing_tools+=("${tool%%:*}")
done
if ((${#missing_tools[@]})); then
  echo "setup: building ${missing_tools[*]} into $cache (once; about 10 min on 2 cores for all four)"
  if ! build_log=$(hack/cluster-build.sh "${missing_tools[@]}" 2>&1); then
    echo "$build_log" | tail -30 >&2; exit 1
  fi
fi

# Linked into .venv/bin, so `druppie-step scan` and `build` run here as they do in the images (the
# steps look their tools up on PATH; the venv's bin is on it when the venv is active or the step is
# started as .venv/bin/druppie-step: the steps look on PATH, then beside their interpreter; core/tools.py).
for tool in gitleaks:$GITLEAKS_VERSION osv-scanner:$OSV_SCANNER_VERSION trivy:$TRIVY_VERSION syft:$SYFT_VERSION; do
  name=${tool%%:*}; target=$cache/$name-${tool#*:}/$name
  [[ $(readlink ".venv/bin/$name" 2>/dev/null) == "$target" ]] || ln -sfn "$target" ".venv/bin/$name"
done
