#!/usr/bin/env bash
# Build the catalog's images with buildah and push them to REGISTRY (`make images`).
#
#   REGISTRY=host:port   where to push (default: the running local cluster's registry; without
#                        one the images are only built into local storage)
#   IMAGES="step scan build"  which images (default: all three)
#   PLATFORMS="linux/amd64 linux/arm64"  which platforms (default: linux/amd64, what the local
#                        cluster pulls; `make release` builds both). With more than one, each image
#                        is pushed as one manifest list of them (buildah manifest push --all) and
#                        DIGEST_FILE gets the list's digest. linux/arm64 is built on this amd64
#                        machine without emulation: its offline base is unpacked, not installed
#                        (hack/unpacked-base.sh), the build stages run on amd64 and cross-compile or
#                        pick aarch64 wheels, and the final stage only copies.
#   DIGEST_FILE=path     write "name digest" lines of the pushed images there (hack/release.py)
#   BASE_IMAGE=ref       base of the step and scan images (default: an offline Debian bookworm +
#                        python3 made with debootstrap, cached; the Containerfiles' own default is
#                        the public python:3.11-slim-bookworm pinned by digest). With linux/arm64 in
#                        PLATFORMS, a base of your own must be a manifest list of both platforms.
#   BUILD_BASE_IMAGE=ref base of the build image (default: the same offline base plus buildah)
#   GOPROXY, PIP_INDEX_URL  passed to the builds' go and python stages (a mirror; defaults: the
#                        Containerfiles', https://proxy.golang.org and https://pypi.org/simple)
#   CA_BUNDLE=path       CA certificates the go and python stages trust for their downloads (default:
#                        /etc/ssl/certs/ca-certificates.crt, this machine's), as the secret ca-certificates
#
# Each image is images/druppie-<name>/Containerfile built with the repository root as its context,
# as anyone builds it (`podman build -f images/druppie-step/Containerfile .`): nothing is staged
# here. Everything is keyed by the hash of its inputs: a second run with unchanged inputs only checks.
# (A mirror is not an input: what it serves is checked against the pins.)
#
#   hack/images.sh base|build-base   only makes the offline base (once) and prints its name
#                        (with PLATFORMS=linux/arm64: the arm64 one)
set -euo pipefail
shopt -s inherit_errexit
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CACHE=${DRUPPIE_CACHE:-/var/cache/druppie}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
BUILDAH=(buildah --storage-driver vfs)
PODMAN=(podman --storage-driver vfs --runtime /usr/sbin/runc)
# The machine's hard limits are below podman's defaults (nofile 1048576): ask for what is allowed.
RUN_LIMITS=(--ulimit nofile=20000:20000 --ulimit nproc=1000:1000)
VERSION=$(sed -nE 's/^version = "([^"]+)"/\1/p' steps/pyproject.toml)
log() { printf '[images %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
case $(uname -m) in x86_64) NATIVE=amd64 ;; aarch64) NATIVE=arm64 ;; *) log "no offline base for machine $(uname -m)"; exit 2 ;; esac
# PLATFORMS: each one once, each one known.
read -r -a platforms <<<"${PLATFORMS:-linux/amd64}"
[[ ${#platforms[@]} -gt 0 ]] || { log "PLATFORMS is empty (linux/amd64, linux/arm64)"; exit 2; }
declare -A seen=()
for platform in "${platforms[@]}"; do
  case $platform in
    linux/amd64|linux/arm64) ;;
    *) log "unknown platform '$platform' in PLATFORMS (linux/amd64, linux/arm64)"; exit 2 ;;
  esac
  [[ -z ${seen[$platform]:-} ]] || { log "platform '$platform' twice in PLATFORMS"; exit 2; }
  seen[$platform]=1
done

hash_files() { find "$@" -type f -not -path '*/__pycache__/*' -not -path '*.egg-info/*' -print0 | sort -z |
  xargs -0 sha256sum | sha256sum | cut -c1-16; }

# The offline bases: debootstrap's minbase of bookworm plus python3 and the tools the steps call;
# the build image's base has buildah too.
STEP_BASE_PACKAGES=python3,python3-venv,git,openssh-client,ca-certificates
# netavark: the "container-network-stack" buildah's containers-common needs (debootstrap resolves no virtual packages).
BUILD_BASE_PACKAGES=$STEP_BASE_PACKAGES,buildah,netavark,skopeo
BASE_RECIPE=1  # bump when offline_base changes what it puts in the tarball
# offline_base NAME PACKAGES [ARCH]: the image name of that base, made once and cached as a tarball.
# This machine's architecture is installed by debootstrap; another (arm64 here) is unpacked by
# hack/unpacked-base.sh, which runs none of its code.
offline_base() {
  local base=$1 packages=$2 arch=${3:-$NATIVE} key name rootfs started
  if [[ $arch == "$NATIVE" ]]; then
    key=$(printf '%s\n' bookworm "$packages" "$BASE_RECIPE" | sha256sum | cut -c1-12)
  else
    key=$(printf '%s\n' bookworm "$packages" "$BASE_RECIPE" "$arch" "$(hash_files hack/unpacked-base.sh hack/deb-unpack.sh hack/ca-bundle.sh)" |
      sha256sum | cut -c1-12)
    base=$base-$arch
  fi
  name="localhost/druppie/$base:$key"
  if "${BUILDAH[@]}" inspect --type image "$name" >/dev/null 2>&1; then echo "$name"; return; fi
  local tarball="$CACHE/base-images/$base-$key.tar"
  if [[ ! -f $tarball ]]; then
    started=$SECONDS
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/druppie-rootfs.XXXXXX")
    if [[ $arch == "$NATIVE" ]]; then
      log "base $base: debootstrap bookworm minbase + $packages (once, 2-6 min)"
      debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" >/dev/null
    else
      log "base $base: bookworm minbase + $packages for $arch, unpacked (once, about a minute)"
      "$root/hack/unpacked-base.sh" "$arch" "$packages" "$rootfs"
    fi
    # Nothing a runtime needs: package caches, lists, docs and man pages.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/*
    mkdir -p "$CACHE/base-images"
    chmod 755 "$rootfs"  # mktemp made it 0700: the image root would be closed to user 65532
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
    log "base $base: built in $((SECONDS - started)) s"
  fi
  # arm64 images say variant v8 (as Docker Hub's): buildah looks for linux/arm64/v8 and pulls otherwise.
  local variant=()
  [[ $arch != arm64 ]] || variant=(--variant v8)
  "${PODMAN[@]}" import --quiet --arch "$arch" --os linux "${variant[@]}" --change 'CMD ["/bin/bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$tarball" "$name" >/dev/null
  echo "$name"
}

inputs_hash() {  # what decides an image's content, besides its base: what its stages copy
  local kind=$1
  local files=(.dockerignore "images/druppie-$kind" hack/image-python.sh hack/image-runtime.sh
    hack/deb-unpack.sh hack/ca-bundle.sh steps/druppie_steps
    steps/pyproject.toml steps/requirements.lock)
  case $kind in
    step) files+=(steps/requirements-test-tools.txt) ;;
    scan) files+=(steps/requirements-scan.txt hack/toolchain.env hack/go_toolchain.py hack/go-tools.sh) ;;
    build) files+=(hack/toolchain.env hack/go_toolchain.py hack/go-tools.sh) ;;
  esac
  hash_files "${files[@]}"
}

# build_image KIND BASE ARCH [FINAL_BASE]: localhost/druppie/druppie-KIND:<version>-<inputs>
# (-<arch> for another architecture than this machine's), built unless present. BASE is what the
# Containerfile's stages start from: for another architecture a manifest list of this machine's
# base (the build stages) and that architecture's, FINAL_BASE (the final stage; for its size).
build_image() {
  local kind=$1 base=$2 arch=$3 final_base=${4:-$2} key name started
  if [[ $arch == "$NATIVE" ]]; then
    key=$(printf '%s\n' "$base" "$(inputs_hash "$kind")" | sha256sum | cut -c1-16)
    name="localhost/druppie/druppie-$kind:$VERSION-$key"
  else
    key=$(printf '%s\n' "$base" "$(inputs_hash "$kind")" "$arch" | sha256sum | cut -c1-16)
    name="localhost/druppie/druppie-$kind:$VERSION-$key-$arch"
  fi
  if ! "${BUILDAH[@]}" inspect --type image "$name" >/dev/null 2>&1; then
    started=$SECONDS
    log "druppie-$kind: building $name (linux/$arch)"
    local args=(--build-arg BASE_IMAGE="$base")
    # buildah 1.28 (Debian bookworm's) leaves $BUILDPLATFORM and $TARGETPLATFORM in `FROM --platform=`
    # unexpanded unless they are build arguments: the build stages would get the target's base and
    # the final stage, after them, the build platform's (with the target's name in its config).
    [[ $arch == "$NATIVE" ]] ||
      args+=(--platform "linux/$arch" --build-arg "BUILDPLATFORM=linux/$NATIVE" --build-arg "TARGETPLATFORM=linux/$arch")
    # Behind a TLS-inspecting proxy the stages need this machine's CA bundle (an optional secret:
    # it reaches their RUNs, never a layer).
    [[ ! -s $CA_BUNDLE ]] || args+=(--secret "id=ca-certificates,src=$CA_BUNDLE")
    [[ -z ${GOPROXY:-} ]] || args+=(--build-arg GOPROXY="$GOPROXY")
    [[ -z ${PIP_INDEX_URL:-} ]] || args+=(--build-arg PIP_INDEX_URL="$PIP_INDEX_URL")
    "${BUILDAH[@]}" bud --quiet --isolation chroot "${RUN_LIMITS[@]}" --layers=false "${args[@]}" \
      --label "org.opencontainers.image.version=$VERSION" --label "io.druppie.inputs=$key" \
      -f "images/druppie-$kind/Containerfile" -t "$name" . >/dev/null
    log "druppie-$kind: built in $((SECONDS - started)) s"
    if [[ $arch == "$NATIVE" ]]; then
      smoke_test "$kind" "$name"
    else
      # Nothing of it can run here (no emulation); make test-slow checks every ELF file is $arch.
      local said
      said=$("${BUILDAH[@]}" inspect --type image --format '{{.OCIv1.OS}}/{{.OCIv1.Architecture}}' "$name")
      [[ $said == "linux/$arch" ]] || { log "druppie-$kind: $name says $said, not linux/$arch"; exit 1; }
      log "druppie-$kind: linux/$arch, not smoke-tested (no emulation here)"
    fi
  else
    log "druppie-$kind: $name is up to date"
  fi
  local size base_size
  size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$name")
  base_size=$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$final_base")
  log "druppie-$kind: $((size / 1048576)) MiB, base $((base_size / 1048576)) MiB (+$(((size - base_size) / 1048576)) MiB)"
  echo "$name"
}

# The smoke test of each image: it starts as its user, knows its version, loads what the steps
# import, shows its steps' --help, and every tool it carries answers with the version it was
# built at (hack/toolchain.env, steps/requirements-scan.txt).
smoke_test() {
  local kind=$1 name=$2 run=("${PODMAN[@]}" run --rm "${RUN_LIMITS[@]}" --network none) cmd
  "${run[@]}" "$name" --version >&2
  "${run[@]}" --entrypoint python3 "$name" -c 'import kubernetes.client, kubernetes.config, yaml, click, semver' >&2
  # shellcheck source=toolchain.env
  source "$root/hack/toolchain.env"
  case $kind in
    step) for cmd in tag-commit flux-wait test; do "${run[@]}" "$name" "$cmd" --help >/dev/null; done ;;
    scan) "${run[@]}" "$name" scan --help >/dev/null
          tool_version "$name" "$GITLEAKS_VERSION" gitleaks version
          tool_version "$name" "$OSV_SCANNER_VERSION" osv-scanner --version
          tool_version "$name" "$TRIVY_VERSION" trivy --version
          tool_version "$name" "v$(sed -nE 's/^bandit==//p' steps/requirements-scan.txt)" bandit --version ;;
    build) "${run[@]}" "$name" build --help >/dev/null
           "${run[@]}" --entrypoint buildah "$name" --version >&2
           tool_version "$name" "$SYFT_VERSION" syft version ;;
  esac
}

# tool_version IMAGE VERSION TOOL ARGS...: TOOL in IMAGE says VERSION (with or without its v).
tool_version() {
  local name=$1 want=${2#v} tool=$3 said; shift 3
  said=$("${PODMAN[@]}" run --rm "${RUN_LIMITS[@]}" --network none --entrypoint "$tool" "$name" "$@" 2>&1)
  grep -qE -- "(^|[^0-9.])${want//./\\.}([^0-9.]|$)" <<<"$said" || { log "smoke test: $tool in $name says '$said', not $want"; return 1; }
  log "smoke test: $tool $want"
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

# base_list NATIVE_BASE OTHER_BASE ARCH: a local manifest list of both, so that the Containerfiles'
# build stages (FROM --platform=$BUILDPLATFORM) take this machine's and the final stage ARCH's.
base_list() {
  local list key
  key=$(printf '%s\n' "$1" "$2" | sha256sum | cut -c1-12)
  list="localhost/druppie/base-list-$3:$key"
  if ! "${BUILDAH[@]}" manifest inspect "$list" >/dev/null 2>&1; then
    "${BUILDAH[@]}" manifest create "$list" >/dev/null
    "${BUILDAH[@]}" manifest add "$list" "containers-storage:$1" >/dev/null
    "${BUILDAH[@]}" manifest add "$list" "containers-storage:$2" >/dev/null
  fi
  echo "$list"
}
step_base() { echo "${BASE_IMAGE:-$(offline_base bookworm-python3 "$STEP_BASE_PACKAGES" "${1:-$NATIVE}")}"; }
build_base() { echo "${BUILD_BASE_IMAGE:-$(offline_base druppie-build-base "$BUILD_BASE_PACKAGES" "${1:-$NATIVE}")}"; }
# `hack/images.sh base` / `hack/images.sh build-base`: only the offline base (made once), its name
# on stdout, for a plain `podman build --build-arg BASE_IMAGE=...` on a machine without a registry;
# of the one platform in PLATFORMS.
case ${1:-} in
  base|build-base)
    [[ ${#platforms[@]} -eq 1 ]] || { log "hack/images.sh $1 makes one base: PLATFORMS names ${#platforms[@]}"; exit 2; }
    if [[ $1 == base ]]; then step_base "${platforms[0]#linux/}"; else build_base "${platforms[0]#linux/}"; fi
    exit ;;
  '') ;;
  *) log "usage: hack/images.sh [base|build-base]"; exit 2 ;;
esac

# push_list TARGET IMAGE...: one manifest list of the IMAGEs, pushed with them (--all); prints the
# list's digest the registry serves, after checking it is ours and names each image's platform once.
push_list() {
  local target=$1 list digestfile served raw want have; shift
  list="localhost/druppie/push-list-$(printf '%s\n' "$target" "$@" | sha256sum | cut -c1-12)"
  "${BUILDAH[@]}" manifest rm "$list" >/dev/null 2>&1 || true
  "${BUILDAH[@]}" manifest create "$list" >/dev/null
  for name in "$@"; do "${BUILDAH[@]}" manifest add "$list" "containers-storage:$name" >/dev/null; done
  digestfile=$(mktemp)
  raw=$(mktemp)
  "${BUILDAH[@]}" manifest push --all --quiet --tls-verify=false --digestfile "$digestfile" "$list" "docker://$target" >/dev/null
  "${BUILDAH[@]}" manifest rm "$list" >/dev/null
  skopeo inspect --raw --tls-verify=false "docker://$target" >"$raw"
  served="sha256:$(sha256sum <"$raw" | cut -d' ' -f1)"
  [[ $served == "$(cat "$digestfile")" ]] || { log "push check failed: $target serves $served"; exit 1; }
  want=$(printf '%s\n' "${platforms[@]}" | sort | paste -sd' ')
  have=$(jq -r '.manifests[].platform | "\(.os)/\(.architecture)"' "$raw" | sort | paste -sd' ')
  [[ $have == "$want" ]] || { log "push check failed: $target lists '$have', not '$want'"; exit 1; }
  log "pushed $target@$served ($have)"
  rm -f "$digestfile" "$raw"
  echo "$served"
}

# IMAGES="step scan build" (default: all) picks what to build, for each of PLATFORMS.
read -r -a kinds <<<"${IMAGES:-step scan build}"
for kind in "${kinds[@]}"; do
  case $kind in step|scan|build) ;; *) log "unknown image '$kind' in IMAGES (step, scan, build)"; exit 2 ;; esac
done
declare -A built
for kind in "${kinds[@]}"; do
  for platform in "${platforms[@]}"; do
    arch=${platform#linux/}
    base_of=step_base
    [[ $kind != build ]] || base_of=build_base
    if [[ $arch == "$NATIVE" ]]; then
      image=$(build_image "$kind" "$($base_of)" "$arch")
    elif [[ $kind == build && -n ${BUILD_BASE_IMAGE:-} ]] || [[ $kind != build && -n ${BASE_IMAGE:-} ]]; then
      image=$(build_image "$kind" "$($base_of)" "$arch")  # a base of your own: a manifest list of both
    else
      other=$($base_of "$arch")
      image=$(build_image "$kind" "$(base_list "$($base_of)" "$other" "$arch")" "$arch" "$other")
    fi
    built[$kind]="${built[$kind]:-}${built[$kind]:+ }$image"
  done
done
registry=$(default_registry)
[[ -z ${DIGEST_FILE:-} ]] || : > "$DIGEST_FILE"
if [[ -n $registry ]]; then
  for kind in "${kinds[@]}"; do
    read -r -a images <<<"${built[$kind]}"
    if [[ ${#platforms[@]} -eq 1 ]]; then
      digest=$(push "${images[0]}" "$registry/waterschap/druppie-$kind:$VERSION")
    else
      digest=$(push_list "$registry/waterschap/druppie-$kind:$VERSION" "${images[@]}")
    fi
    # For hack/release.py: one "name digest" line per image.
    [[ -z ${DIGEST_FILE:-} ]] || printf 'ghcr.io/waterschap/druppie-%s %s\n' "$kind" "$digest" >> "$DIGEST_FILE"
  done
else
  log "no REGISTRY and no local cluster running: built ${built[*]}, nothing pushed"
fi
