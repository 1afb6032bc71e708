#!/usr/bin/env bash
# Install everything the steps, tests and demo need, idempotently: Debian packages that are
# missing, a Python virtual environment at .venv/ with pinned dependencies and `druppie-step`.
# With everything in place it only checks and returns in about a second.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Debian packages: git's http-backend and sshd serve test repos; docker-registry, openssl, containerd,
# runc, the CNI plugins and gcc (a static pause image) serve the e2e cluster.
DEBIAN_PACKAGES=(git ca-certificates openssh-client openssh-server openssl docker-registry
  containerd runc containernetworking-plugins iptables iproute2 gcc libc6-dev)
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
