#!/usr/bin/env bash
# Build the catalog's images with buildah and push them to REGISTRY (`make images`).
#
#   REGISTRY=host:port   where to push (default: the running local cluster's registry; without
#                        one the images are only built into local storage)
#   IMAGES="step scan build"  which images (default: all three)
#   DIGEST_FILE=path     write "name digest" lines of the pushed images there (hack/release.py)
#   BASE_IMAGE=ref       base for the step image (default: an offline Debian bookworm + python3
#                        made with debootstrap, cached; the Containerfile's own default is the
#                        public python:3.11-slim-bookworm pinned by digest)
#   BUILD_BASE_IMAGE=ref base for the build image (default: the same offline base plus buildah)
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

# The offline bases: debootstrap's minbase of bookworm plus python3 and the tools the steps call;
# the build image's base has buildah too.
STEP_BASE_PACKAGES=python3,python3-venv,git,openssh-client,ca-certificates
# netavark: the "container-network-stack" buildah's containers-common needs (debootstrap resolves no virtual packages).
BUILD_BASE_PACKAGES=$STEP_BASE_PACKAGES,buildah,netavark,skopeo
BASE_RECIPE=1  # bump when offline_base changes what it puts in the tarball
# offline_base NAME PACKAGES: the image name of that base, made once and cached as a tarball.
offline_base() {
  local base=$1 packages=$2 key name rootfs started
  key=$(printf '%s\n' bookworm "$packages" "$BASE_RECIPE" | sha256sum | cut -c1-12)
  name="localhost/druppie/$base:$key"
  if "${BUILDAH[@]}" inspect --type image "$name" >/dev/null 2>&1; then echo "$name"; return; fi
  local tarball="$CACHE/base-images/$base-$key.tar"
  if [[ ! -f $tarball ]]; then
    log "base $base: debootstrap bookworm minbase + $packages (once, 2-6 min)"
    started=$SECONDS
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/druppie-rootfs.XXXXXX")
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" >/dev/null
    # Nothing a runtime needs: package caches, lists, docs and man pages.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    mkdir -p "$CACHE/base-images"
    chmod 755 "$rootfs"  # mktemp made it 0700: the image root would be closed to user 65532
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    log "base $base: built in $((SECONDS - started)) s"
  fi
  "${PODMAN[@]}" import --quiet --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$tarball" "$name" >/dev/null
  echo "$name"
}

PIP_TARGET=(--quiet --disable-pip-version-check --no-cache-dir --only-binary=:all: --implementation cp
  --python-version 3.11 --abi cp311 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64)

# The program shared by the step and build images: druppie-step installed from its wheel with the
# pinned runtime dependencies (the lock as constraints), for CPython 3.11 on x86_64 glibc.
stage_program() {
  local ctx=$1 wheels
  wheels=$(mktemp -d "${TMPDIR:-/tmp}/druppie-wheels.XXXXXX")
  # Built from a copy: setuptools would leave build/ and *.egg-info in the work tree.
  cp -r steps "$wheels/src"; rm -rf "$wheels/src/build" "$wheels"/src/*.egg-info
  .venv/bin/python -m pip wheel --quiet --disable-pip-version-check --no-deps -w "$wheels" "$wheels/src"
  .venv/bin/python -m pip install "${PIP_TARGET[@]}" --target "$ctx/site-packages" \
    -c steps/requirements.lock "$wheels"/druppie_steps-*.whl
  # kubernetes >= 35 ships an asyncio twin of its client (about 70 MB with aiohttp and friends)
  # that no step imports; the smoke test below imports what the steps do use.
  (cd "$ctx/site-packages" && rm -rf bin kubernetes/aio aiohttp aiohttp_retry aiohappyeyeballs aiosignal \
    frozenlist multidict propcache yarl)
  rm -rf "$wheels"
  launcher "$ctx/druppie-step" druppie_steps.cli main
}

# launcher PATH MODULE FUNCTION: a small program that runs MODULE.FUNCTION() from PYTHONPATH.
launcher() {
  printf '#!/usr/bin/env python3\nimport sys\nfrom %s import %s\nsys.exit(%s())\n' "$2" "$3" "$3" > "$1"
  chmod 755 "$1"
}

cached_tool() {  # the Go-built tool NAME from the cache (hack/cluster-build.sh builds it once)
  local name=$1 var; var=$(tr 'a-z-' 'A-Z_' <<<"$name")_VERSION
  # shellcheck source=toolchain.env
  source "$root/hack/toolchain.env"
  local path="$CACHE/$name-${!var}/$name"
  [[ -x $path ]] || "$root/hack/cluster-build.sh" "$name" >&2
  echo "$path"
}

# stage_context KIND DIR: everything images/druppie-KIND/Containerfile copies.
stage_context() {
  local kind=$1 ctx=$2 tool
  cp "images/druppie-$kind/Containerfile" "$ctx/"
  case $kind in
    step)
      stage_program "$ctx"
      # pytest and pytest-cov for `druppie-step test`, so that an app whose only test dependency
      # is pytest installs offline (pip --find-links).
      mkdir -p "$ctx/wheels"
      if [[ -f steps/requirements-test-tools.txt ]]; then
        .venv/bin/python -m pip download "${PIP_TARGET[@]}" --no-deps -d "$ctx/wheels" -r steps/requirements-test-tools.txt
      fi ;;
    scan)
      mkdir -p "$ctx/bin" "$ctx/scan-packages"
      for tool in gitleaks osv-scanner trivy; do cp "$(cached_tool "$tool")" "$ctx/bin/"; done
      .venv/bin/python -m pip install "${PIP_TARGET[@]}" --target "$ctx/scan-packages" -r steps/requirements-scan.txt
      rm -rf "$ctx/scan-packages/bin"
      launcher "$ctx/bin/bandit" bandit.cli.main main ;;
    build)
      stage_program "$ctx"
      mkdir -p "$ctx/bin"; cp "$(cached_tool syft)" "$ctx/bin/"
      cp -r images/druppie-build/containers "$ctx/containers" ;;
  esac
}

inputs_hash() {  # what decides an image's content, besides its base
  local kind=$1 extra=()
  case $kind in
    step) extra=(steps/druppie_steps steps/pyproject.toml steps/requirements.lock)
          [[ ! -f steps/requirements-test-tools.txt ]] || extra+=(steps/requirements-test-tools.txt) ;;
    scan) extra=(steps/requirements-scan.txt hack/toolchain.env) ;;
    build) extra=(steps/druppie_steps steps/pyproject.toml steps/requirements.lock hack/toolchain.env) ;;
  esac
  hash_files "images/druppie-$kind" "${extra[@]}"
}

# build_image KIND BASE: localhost/druppie/druppie-KIND:<version>-<inputs>, built unless present.
build_image() {
  local kind=$1 base=$2 key name ctx started
  key=$(printf '%s\n' "$base" "$(inputs_hash "$kind")" | sha256sum | cut -c1-16)
  name="localhost/druppie/druppie-$kind:$VERSION-$key"
  if ! "${BUILDAH[@]}" inspect --type image "$name" >/dev/null 2>&1; then
    started=$SECONDS
    log "druppie-$kind: building $name"
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/druppie-$kind-ctx.XXXXXX")
    stage_context "$kind" "$ctx"
    "${BUILDAH[@]}" bud --quiet --isolation chroot "${RUN_LIMITS[@]}" --layers=false \
      --build-arg BASE_IMAGE="$base" --label "org.opencontainers.image.version=$VERSION" \
      --label "io.druppie.inputs=$key" -t "$name" "$ctx" >/dev/null
    rm -rf "$ctx"
    log "druppie-$kind: built in $((SECONDS - started)) s"
    smoke_test "$kind" "$name"
  else
    log "druppie-$kind: $name is up to date"
  fi
  local size base_size
  size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$name")
  base_size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$base")
  log "druppie-$kind: $((size / 1048576)) MiB, base $((base_size / 1048576)) MiB (+$(((size - base_size) / 1048576)) MiB)"
  echo "$name"
}

# The smoke test of each image: it starts as its user, knows its version, loads what the steps
# import, shows its steps' --help, and every tool it carries answers.
smoke_test() {
  local kind=$1 name=$2 run=("${PODMAN[@]}" run --rm "${RUN_LIMITS[@]}" --network none) cmd
  "${run[@]}" "$name" --version >&2
  "${run[@]}" --entrypoint python3 "$name" -c 'import kubernetes.client, kubernetes.config, yaml, click, semver' >&2
  case $kind in
    step) for cmd in tag-commit flux-wait test; do "${run[@]}" "$name" "$cmd" --help >/dev/null; done ;;
    scan) "${run[@]}" "$name" scan --help >/dev/null
          for cmd in "gitleaks version" "osv-scanner --version" "trivy --version" "bandit --version"; do
            # shellcheck disable=SC2086
            "${run[@]}" --entrypoint "${cmd%% *}" "$name" ${cmd#* } >/dev/null
          done ;;
    build) "${run[@]}" "$name" build --help >/dev/null
           "${run[@]}" --entrypoint buildah "$name" --version >&2
           "${run[@]}" --entrypoint syft "$name" version >/dev/null ;;
  esac
}

default_registry() {
  [[ -n ${REGISTRY:-} ]] && { echo "$REGISTRY"; return; }
  .venv/bin/python - <<'PY' 2>/dev/null || true
from localcluster.cluster import LocalCluster, default_state_dir
cluster = LocalCluster.load(default_state_dir())
if cluster.running("registry"):
    print(cluster.registry)
PY
}

push() {  # push NAME TARGET: prints the digest the registry serves, after checking it is ours
  local name=$1 target=$2 digestfile served
  digestfile=$(mktemp)
  "${BUILDAH[@]}" push --quiet --tls-verify=false --digestfile "$digestfile" "$name" "docker://$target" >/dev/null
  served=$(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$target")
  [[ $served == "$(cat "$digestfile")" ]] || { log "push check failed: $target serves $served"; exit 1; }
  log "pushed $target@$served"
  rm -f "$digestfile"
  echo "$served"
}

# IMAGES="step scan build" (default: all) picks what to build; the scan image is the step image
# plus the scanners, so it builds the step image too.
read -r -a kinds <<<"${IMAGES:-step scan build}"
declare -A built
step_base() { echo "${BASE_IMAGE:-$(offline_base bookworm-python3 "$STEP_BASE_PACKAGES")}"; }
for kind in "${kinds[@]}"; do
  case $kind in
    step) built[step]=$(build_image step "$(step_base)") ;;
    scan) [[ -n ${built[step]:-} ]] || built[step]=$(build_image step "$(step_base)")
          built[scan]=$(build_image scan "${built[step]}") ;;
    build) built[build]=$(build_image build "${BUILD_BASE_IMAGE:-$(offline_base druppie-build-base "$BUILD_BASE_PACKAGES")}") ;;
    *) log "unknown image '$kind' in IMAGES (step, scan, build)"; exit 2 ;;
  esac
done
registry=$(default_registry)
[[ -z ${DIGEST_FILE:-} ]] || : > "$DIGEST_FILE"
if [[ -n $registry ]]; then
  for kind in "${kinds[@]}"; do
    digest=$(push "${built[$kind]}" "$registry/waterschap/druppie-$kind:$VERSION")
    # For hack/release.py: one "name digest" line per image.
    [[ -z ${DIGEST_FILE:-} ]] || printf 'ghcr.io/waterschap/druppie-%s %s\n' "$kind" "$digest" >> "$DIGEST_FILE"
  done
else
  log "no REGISTRY and no local cluster running: built ${built[*]}, nothing pushed"
fi
