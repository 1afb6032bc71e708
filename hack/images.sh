#!/usr/bin/env bash
# Build the catalog's images with buildah and push them to REGISTRY (`make images`).
#
#   REGISTRY=host:port   where to push (default: the running local cluster's registry; without
#                        one the images are only built into local storage)
#   DIGEST_FILE=path     write the pushed digest there (hack/release.py pins it)
#   BASE_IMAGE=ref       base for the step image (default: an offline Debian bookworm + python3
#                        made with debootstrap, cached; the Containerfile's own default is the
#                        public python:3.11-slim-bookworm pinned by digest)
#
# Everything is keyed by the hash of its inputs: a second run with unchanged inputs only checks.
set -euo pipefail
shopt -s inherit_errexit
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CACHE=${DRUPPIE_CACHE:-/var/cache/druppie}
BUILDAH=(buildah --storage-driver vfs)
PODMAN=(podman --storage-driver vfs --runtime /usr/sbin/runc)
# The machine's hard limits are below podman's defaults (nofile 1048576): ask for what is allowed.
RUN_LIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=1000:1000)
VERSION=$(sed -nE 's/^version = "([^"]+)"/\1/p' steps/pyproject.toml)
log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

hash_files() { find "$@" -type f -not -path '*/__pycache__/*' -not -path '*.egg-info/*' -print0 | sort -z |
  xargs -0 sha256sum | sha256sum | cut -c1-16; }

# The offline base: debootstrap's minbase of bookworm plus python3 and the tools the steps call.
BASE_PACKAGES=python3,git,openssh-client,ca-certificates
BASE_RECIPE=1  # bump when offline_base changes what it puts in the tarball
offline_base() {
  local key name rootfs started
  key=$(printf '%s\n' bookworm "$BASE_PACKAGES" "$BASE_RECIPE" | sha256sum | cut -c1-12)
  name="localhost/druppie/bookworm-python3:$key"
  if "${BUILDAH[@]}" inspect --type image "$name" >/dev/null 2>&1; then echo "$name"; return; fi
  local tarball="$CACHE/base-images/bookworm-python3-$key.tar"
  if [[ ! -f $tarball ]]; then
    log "base: debootstrap bookworm minbase + $BASE_PACKAGES (once, about a minute)"
    started=$SECONDS
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/druppie-rootfs.XXXXXX")
    debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" >/dev/null
    # Nothing a runtime needs: package caches, lists, docs and man pages.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    mkdir -p "$CACHE/base-images"
    chmod 755 "$rootfs"  # mktemp made it 0700: the image root would be closed to user 65532
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    log "base: built in $((SECONDS - started)) s"
  fi
  "${PODMAN[@]}" import --quiet --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$tarball" "$name" >/dev/null
  echo "$name"
}

# The build context of the step image: druppie-step installed from its wheel with the pinned
# runtime dependencies (the lock as constraints), for CPython 3.11 on x86_64 glibc.
stage_step_context() {
  local ctx=$1 wheels
  wheels=$(mktemp -d "${TMPDIR:-/tmp}/druppie-wheels.XXXXXX")
  cp images/druppie-step/Containerfile "$ctx/"
  # Built from a copy: setuptools would leave build/ and *.egg-info in the work tree.
  cp -r steps "$wheels/src"; rm -rf "$wheels/src/build" "$wheels"/src/*.egg-info
  .venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$wheels" "$wheels/src"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir \
    --target "$ctx/site-packages" --only-binary=:all: --implementation cp --python-version 3.11 \
    --abi cp311 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -c steps/requirements.lock "$wheels"/druppie_steps-*.whl
  # kubernetes >= 35 ships an asyncio twin of its client (about 70 MB with aiohttp and friends)
  # that no step imports; the smoke test below imports what the steps do use.
  (cd "$ctx/site-packages" && rm -rf bin kubernetes/aio aiohttp aiohttp_retry aiohappyeyeballs aiosignal \
    frozenlist multidict propcache yarl)
  rm -rf "$wheels"
  printf '#!/usr/bin/env python3\nimport sys\nfrom druppie_steps.cli import main\nsys.exit(main())\n' > "$ctx/druppie-step"
  chmod 755 "$ctx/druppie-step"
}

default_registry() {
  [[ -n ${REGISTRY:-} ]] && { echo "$REGISTRY"; return; }
  .venv/bin/python - <<'EOF' 2>/dev/null || true
from localcluster.cluster import LocalCluster, default_state_dir
from localcluster.process import alive
cluster = LocalCluster.load(default_state_dir())
if alive(cluster.pids.get("registry", 0)):
    print(cluster.registry)
EOF
}

build_step_image() {
  local base=$1 key name ctx started
  key=$(printf '%s\n' "$base" "$(hash_files steps/druppie_steps steps/pyproject.toml steps/requirements.lock images/druppie-step)" |
    sha256sum | cut -c1-16)
  name="localhost/druppie/druppie-step:$VERSION-$key"
  if ! "${BUILDAH[@]}" inspect --type image "$name" >/dev/null 2>&1; then
    started=$SECONDS
    log "druppie-step: building $name"
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/druppie-step-ctx.XXXXXX")
    stage_step_context "$ctx"
    "${BUILDAH[@]}" bud --quiet --isolation chroot "${RUN_LIMITS[@]}" --layers=false \
      --build-arg BASE_IMAGE="$base" --label "org.opencontainers.image.version=$VERSION" \
      --label "io.druppie.inputs=$key" -t "$name" "$ctx" >/dev/null
    rm -rf "$ctx"
    log "druppie-step: built in $((SECONDS - started)) s"
    # The image's smoke test: the program starts as user 65532, knows its version, and can load
    # what the steps import.
    "${PODMAN[@]}" run --rm "${RUN_LIMITS[@]}" --network none "$name" --version >&2
    "${PODMAN[@]}" run --rm "${RUN_LIMITS[@]}" --network none --entrypoint python3 "$name" \
      -c 'import kubernetes.client, kubernetes.config, kubernetes.watch, yaml, click, semver' >&2
  else
    log "druppie-step: $name is up to date"
  fi
  local size base_size
  size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$name")
  base_size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$base")
  log "druppie-step: $((size / 1048576)) MiB, base $((base_size / 1048576)) MiB (+$(((size - base_size) / 1048576)) MiB)"
  echo "$name"
}

push() {
  local name=$1 target=$2 digestfile
  digestfile=$(mktemp)
  "${BUILDAH[@]}" push --quiet --tls-verify=false --digestfile "$digestfile" "$name" "docker://$target" >/dev/null
  # Check what we hand over: the registry serves exactly the digest we pushed.
  local served
  served=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$target")
  [[ $served == "$(cat "$digestfile")" ]] || { log "push check failed: $target serves $served"; exit 1; }
  log "pushed $target@$served"
  [[ -z ${DIGEST_FILE:-} ]] || printf '%s' "$served" > "$DIGEST_FILE"  # for hack/release.py
  rm -f "$digestfile"
}

base=${BASE_IMAGE:-$(offline_base)}
step_image=$(build_step_image "$base")
registry=$(default_registry)
if [[ -n $registry ]]; then
  push "$step_image" "$registry/waterschap/druppie-step:$VERSION"
else
  log "no REGISTRY and no local cluster running: built $step_image, nothing pushed"
fi
