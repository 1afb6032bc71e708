#!/usr/bin/env bash
# Build, once, the Go binaries of the local test cluster into a cache outside the repo, keyed by
# version (see hack/toolchain.env). A component whose cache entry is complete is not touched, so a
# second run with a full cache returns in seconds. Usage: hack/cluster-build.sh [component...]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=toolchain.env
source "$here/toolchain.env"
CACHE=${DRUPPIE_CACHE:-/var/cache/druppie}
mkdir -p "$CACHE"
export GOFLAGS=-buildvcs=false CGO_ENABLED=0

log() { printf '[cluster-build %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# run_build NAME VERSION FUNCTION: FUNCTION builds into $out; the entry counts only once .complete exists.
run_build() {
  local name=$1 version=$2 fn=$3
  out="$CACHE/$name-$version"
  if [[ -f $out/.complete ]]; then log "$name $version: cached in $out"; return; fi
  # Two runs at once (a test fixture beside `make cluster-build`) would clear each other's $out.tmp:
  # the second waits for the first and then finds the entry complete.
  local lock
  exec {lock}>"$CACHE/.$name-$version.lock"
  if ! flock -n "$lock"; then
    log "$name $version: another build of it is running; waiting for it"
    flock "$lock"
  fi
  if [[ -f $out/.complete ]]; then log "$name $version: cached in $out"; exec {lock}>&-; return; fi
  rm -rf "$out.tmp"; mkdir -p "$out.tmp"
  local started=$SECONDS
  log "$name $version: building (takes minutes on 2 cores)..."
  out="$out.tmp" "$fn" "$version"
  touch "$out.tmp/.complete"
  rm -rf "$CACHE/$name-$version"; mv "$out.tmp" "$CACHE/$name-$version"
  log "$name $version: built in $((SECONDS - started)) s"
  exec {lock}>&-
}

# module_copy MOD@VER: a writable copy of a module's source, so its own go.mod (with replaces) applies.
module_copy() {
  local dir; dir=$(go mod download -json "$1" | jq -r '.Dir // empty')
  [[ -n $dir ]] || { go mod download -json "$1" | jq -r .Error >&2; return 1; }
  local work; work=$(mktemp -d "${TMPDIR:-/tmp}/druppie-build.XXXXXX")
  cp -r "$dir/." "$work/"; chmod -R u+w "$work"
  echo "$work"
}

build_etcd() {
  local v=$1 work; work=$(mktemp -d "${TMPDIR:-/tmp}/druppie-build.XXXXXX")
  (cd "$work" && go mod init druppie.local/etcd-build >/dev/null 2>&1 &&
    go get "go.etcd.io/etcd/server/v3@$v" >/dev/null 2>&1 &&
    go build -o "$out/etcd" \
      -ldflags "-X go.etcd.io/etcd/api/v3/version.GitSHA=druppie" go.etcd.io/etcd/server/v3)
  rm -rf "$work"
}

# build_kubernetes VERSION CMD...: the named k8s.io/kubernetes/cmd/* binaries, version-stamped.
build_kubernetes() {
  local v=$1 minor patch work gomod staging; shift
  local cmds=("$@")
  minor=$(cut -d. -f2 <<<"$v"); patch=$(cut -d. -f3 <<<"$v")
  work=$(mktemp -d "${TMPDIR:-/tmp}/druppie-build.XXXXXX")
  gomod=$(go mod download -json "k8s.io/kubernetes@$v" | jq -r .GoMod)
  {
    echo "module druppie.local/kubernetes-build"
    grep -E '^go ' "$gomod"
    echo "require k8s.io/kubernetes $v"
    # k8s.io/kubernetes replaces every staging module with ./staging; map each to its published twin.
    for staging in $(grep -oE '^\s*k8s.io/[a-z0-9-]+ => ./staging' "$gomod" | awk '{print $1}'); do
      if go mod download "$staging@v0.$minor.$patch" >/dev/null 2>&1; then
        echo "replace $staging => $staging v0.$minor.$patch"
      fi
    done
  } > "$work/go.mod"
  # A tools file keeps the commands in the module graph, so `go mod tidy` resolves exactly $v.
  { echo "//go:build tools"; echo "package tools"; echo "import ("
    for cmd in "${cmds[@]}"; do echo "  _ \"k8s.io/kubernetes/cmd/$cmd\""; done
    echo ")"; } > "$work/tools.go"
  local pkg="k8s.io/client-go/pkg/version" base="k8s.io/component-base/version" ld=""
  for p in $pkg $base; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z -X $p.gitCommit=druppie-module-build"
  done
  (cd "$work" && go mod tidy
   for cmd in "${cmds[@]}"; do
     log "  kubernetes: $cmd"
     go build -o "$out/$cmd" -ldflags "$ld" "k8s.io/kubernetes/cmd/$cmd"
   done)
  rm -rf "$work"
}

# build_flux_controller NAME VERSION: binary plus the CRDs from config/crd/bases.
build_flux_controller() {
  local name=$1 v=$2 work
  work=$(module_copy "github.com/fluxcd/$name@$v")
  # Nested modules replaced by a local folder (./api) are not in the module zip: fetch each at the
  # same version and put it where the replace points.
  local mod dir
  while read -r mod dir; do
    rm -rf "${work:?}/$dir"; cp -r "$(go mod download -json "$mod@$v" | jq -r .Dir)" "$work/$dir"
    chmod -R u+w "$work/$dir"
  done < <(sed -nE 's#^replace[[:space:]]+([^[:space:]]+)[[:space:]]+=>[[:space:]]+\./([^[:space:]]+)$#\1 \2#p' "$work/go.mod")
  (cd "$work" && go build -o "$out/$name" .)
  mkdir -p "$out/crds"; cp "$work"/config/crd/bases/*.yaml "$out/crds/"
  rm -rf "$work"
}
build_source_controller() { build_flux_controller source-controller "$1"; }
build_kustomize_controller() { build_flux_controller kustomize-controller "$1"; }

build_flux_cli() {
  local v=$1 work; work=$(module_copy "github.com/fluxcd/flux2/v2@$v")
  # The CLI embeds cmd/flux/manifests, which the module zip lacks; `flux install` from this build
  # is therefore unusable, and we never call it (only `flux reconcile` for the benchmark).
  mkdir -p "$work/cmd/flux/manifests"; echo "# placeholder" > "$work/cmd/flux/manifests/placeholder.yaml"
  (cd "$work" && go build -o "$out/flux" -ldflags "-X main.VERSION=${v#v}" ./cmd/flux)
  rm -rf "$work"
}

build_control_plane() { build_kubernetes "$1" kube-apiserver kube-controller-manager kube-scheduler kubelet; }
build_kubectl() { build_kubernetes "$1" kubectl; }
# Service routing for pods (the kubernetes Service, Tekton's webhook Service): iptables mode.
build_kube_proxy() { build_kubernetes "$1" kube-proxy; }

build_notification_crds() {
  local v=$1 work; work=$(module_copy "github.com/fluxcd/notification-controller/api@$v")
  GOBIN="$work/bin" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_TOOLS_VERSION"
  (cd "$work" && ./bin/controller-gen crd paths=./... output:crd:dir="$out/crds")
  rm -rf "$work"
}

build_spo_crds() {  # only the CRD: the operator's daemon is not built (see install/seccomp-operator)
  local v=$1 dir; dir=$(go mod download -json "sigs.k8s.io/security-profiles-operator@$v" | jq -r .Dir)
  mkdir -p "$out/crds"
  cp "$dir/bundle/manifests/security-profiles-operator.x-k8s.io_seccompprofiles.yaml" "$out/crds/"
}

# OpenShift's SecurityContextConstraints CRD, to check install/openshift against (no cluster; a test).
build_openshift_crds() {
  local v=$1 dir; dir=$(go mod download -json "github.com/openshift/api@$v" | jq -r .Dir)
  mkdir -p "$out/crds"
  cp "$dir/security/v1/zz_generated.crd-manifests/0000_03_config-operator_01_securitycontextconstraints.crd.yaml" "$out/crds/"
}

build_kwok() {
  local v=$1 stages
  GOBIN="$out" go install "sigs.k8s.io/kwok/cmd/kwok@$v"
  # kwok acts only through Stages: nodes become Ready (heartbeat), pods Ready, completed, deleted.
  stages="$(go mod download -json "sigs.k8s.io/kwok@$v" | jq -r .Dir)/kustomize/stage"
  for f in node/fast/node-initialize.yaml node/heartbeat/node-heartbeat.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    echo "---"; cat "$stages/$f"
  done > "$out/stages.yaml"
}

# Tekton Pipelines: the binaries of its release images (each becomes a FROM-scratch image at
# cluster-up) and its release manifests (config/), whose ko:// references cluster-up replaces.
TEKTON_COMMANDS=(controller webhook entrypoint nop workingdirinit sidecarlogresults resolvers)
build_tekton() {
  local v=$1 work cmd; work=$(module_copy "github.com/tektoncd/pipeline@$v")
  mkdir -p "$out/bin"
  for cmd in "${TEKTON_COMMANDS[@]}"; do
    log "  tekton: $cmd"
    # -mod=mod: an older release's go.mod sits beside a vendor/ folder the module zip leaves empty.
    (cd "$work" && go build -mod=mod -trimpath -ldflags "-s -w" \
      -o "$out/bin/$cmd" "./cmd/$cmd")
  done
  cp -r "$work/config" "$out/config"
  rm -rf "$work"
}

build_tkn() {
  local v=$1 work; work=$(module_copy "github.com/tektoncd/cli@$v")
  # `tkn hub` needs github.com/tektoncd/hub, whose replace target the proxy refuses: drop it.
  sed -i -E '/github.com\/tektoncd\/hub\/|hub\.Root\(hubApp\.New\(\)\)/d' "$work/pkg/cmd/root.go"
  (cd "$work" && go mod edit -droprequire github.com/tektoncd/hub -dropreplace github.com/tektoncd/hub &&
    go build -mod=mod -trimpath -ldflags "-s -w -X github.com/tektoncd/cli/pkg/cmd/version.clientVersion=${v#v}" \
      -o "$out/tkn" ./cmd/tkn)
  rm -rf "$work"
}

# tekton-validate: the repo's own checker (hack/tekton-validate/main.go), Tekton's SetDefaults and
# Validate as the webhook runs them; its cache key carries a hash of the folder's sources.
build_tekton_validate() {
  (cd "$here/tekton-validate" && go build -ldflags "-s -w" -o "$out/tekton-validate" .)
}

# build_module_cmd VERSION MODULE PKG BIN: one command built from a writable copy of its module, so
# the module's own go.mod (with its replaces) applies; -mod=mod lets go fill a missing go.sum line.
# Further arguments go to go build (e.g. -tags).
build_module_cmd() {
  local v=$1 mod=$2 pkg=$3 bin=$4 work; shift 4; work=$(module_copy "$mod@$v")
  (cd "$work" && go build -mod=mod -trimpath -ldflags "-s -w ${LDFLAGS_EXTRA:-}" "$@" -o "$out/$bin" "$pkg")
  rm -rf "$work"
}
# Scanners of druppie-scan and the SBOM tool of druppie-build (issue 9): the images' own recipe
# (hack/go-tools.sh, which their go stage runs too), here for the host copies the tests use.
build_go_tool() { "$here/go-tools.sh" "$out" "$1"; }
build_gitleaks() { build_go_tool gitleaks; }
build_osv_scanner() { build_go_tool osv-scanner; }
build_trivy() { build_go_tool trivy; }
build_syft() { build_go_tool syft; }

# Tekton Triggers: controller, webhook, EventListener sink and core interceptors, plus config/.
build_triggers() {
  local v=$1 work cmd; work=$(module_copy "github.com/tektoncd/triggers@$v")
  mkdir -p "$out/bin"
  for cmd in controller webhook eventlistenersink interceptors; do
    log "  triggers: $cmd"
    (cd "$work" && go build -mod=mod -trimpath -ldflags "-s -w" -o "$out/bin/$cmd" "./cmd/$cmd")
  done
  cp -r "$work/config" "$out/config"
  rm -rf "$work"
}
# CoreDNS: cluster DNS for Service names (the EventListener calls interceptors by name).
build_coredns() { build_module_cmd "$1" github.com/coredns/coredns . coredns; }
# local-path-provisioner: PersistentVolumes on demand (Tekton workspaces from volumeClaimTemplate),
# as kind and k3s ship it; its manifest comes from the module's deploy/.
build_local_path() {
  local v=$1 work; work=$(module_copy "github.com/rancher/local-path-provisioner@$v")
  (cd "$work" && rm -rf vendor && go build -mod=mod -trimpath -ldflags "-s -w -X main.VERSION=$v" -o "$out/local-path-provisioner" .)
  cp "$work/deploy/local-path-storage.yaml" "$out/"
  rm -rf "$work"
}
# kube-router: only its NetworkPolicy controller runs (iptables + ipset), enforcing the catalog's policies.
build_kube_router() { build_module_cmd "$1" github.com/cloudnativelabs/kube-router/v2 ./cmd/kube-router kube-router; }
# Gitea: the local forge. Three of its dependencies are refused by the proxy; these twins work.
build_gitea() {
  local v=$1 work; work=$(module_copy "code.gitea.io/gitea@$v")
  (cd "$work" &&
    go mod edit -replace gitea.dev/actions-proto-go=code.gitea.io/actions-proto-go@v0.6.0 \
      -replace gitea.dev/sdk=code.gitea.io/sdk@v1.2.0 \
      -replace gitlab.com/gitlab-org/api/client-go/v2=gitlab.com/gitlab-org/api/client-go/v2@v2.43.0 &&
    go build -mod=mod -trimpath -ldflags "-s -w -X main.Version=${v#v}" -o "$out/gitea" .)
  # Headless: no frontend build; templates and options are read from disk (STATIC_ROOT_PATH).
  cp -r "$work/templates" "$work/options" "$work/public" "$out/"
  rm -rf "$work"
}

# runc and containerd as a node with user-namespaced pods (`hostUsers: false`) has them: containerd v2
# and runc >= 1.2 (idmapped mounts). The local cluster's node runs them with DRUPPIE_CONTAINERD=2
# (localcluster/containerd2.py, `make test-e2e-userns`); testbed/userns.py measures with them.
# runc: cgo with libseccomp (Debian's libseccomp-dev), without libpathrs (a Rust library).
build_runc2() {
  CGO_ENABLED=1 LDFLAGS_EXTRA="-X main.gitCommit=druppie-module-build" \
    build_module_cmd "$1" github.com/opencontainers/runc . runc -tags "seccomp urfave_cli_no_docs"
}
# containerd, its runc shim and ctr (no btrfs snapshotter: it needs btrfs headers; the native one
# is what the measurement uses).
build_containerd2() {
  local v=$1 work cmd; work=$(module_copy "github.com/containerd/containerd/v2@$v")
  local ld="-s -w -X github.com/containerd/containerd/v2/version.Version=$v -X github.com/containerd/containerd/v2/version.Revision=druppie-module-build"
  for cmd in containerd containerd-shim-runc-v2 ctr; do
    log "  containerd: $cmd"
    (cd "$work" && go build -mod=mod -trimpath -tags no_btrfs -ldflags "$ld" -o "$out/$cmd" "./cmd/$cmd")
  done
  rm -rf "$work"
}

# Sourced (tests/unit/test_cluster_build.py): the functions only.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

components=("$@")
[[ ${#components[@]} -gt 0 ]] || components=(etcd kubernetes kubectl kube-proxy source-controller kustomize-controller
  notification-crds spo-crds kwok flux tekton tekton-lts tkn tekton-validate local-path triggers coredns gitea
  kube-router gitleaks osv-scanner trivy syft runc2 containerd2)
for c in "${components[@]}"; do
  case $c in
    etcd) run_build etcd "$ETCD_VERSION" build_etcd ;;
    kubernetes) run_build kubernetes "$KUBERNETES_VERSION" build_control_plane ;;
    kubectl) run_build kubectl "$KUBERNETES_VERSION" build_kubectl ;;
    kube-proxy) run_build kube-proxy "$KUBERNETES_VERSION" build_kube_proxy ;;
    source-controller) run_build source-controller "$SOURCE_CONTROLLER_VERSION" build_source_controller ;;
    kustomize-controller) run_build kustomize-controller "$KUSTOMIZE_CONTROLLER_VERSION" build_kustomize_controller ;;
    kwok) run_build kwok "$KWOK_VERSION" build_kwok ;;
    notification-crds) run_build notification-crds "$NOTIFICATION_API_VERSION" build_notification_crds ;;
    spo-crds) run_build spo-crds "$SPO_VERSION" build_spo_crds ;;
    openshift-crds) run_build openshift-crds "$OPENSHIFT_API_VERSION" build_openshift_crds ;;
    flux) run_build flux-cli "$FLUX_CLI_VERSION" build_flux_cli ;;
    tekton) run_build tekton-pipeline "$TEKTON_PIPELINE_VERSION" build_tekton ;;
    tekton-lts) run_build tekton-pipeline "$TEKTON_LTS_VERSION" build_tekton ;;
    tkn) run_build tkn "$TKN_VERSION" build_tkn ;;
    tekton-validate) run_build tekton-validate "$TEKTON_PIPELINE_VERSION-$(cd "$here/tekton-validate" && cat go.mod go.sum *.go | sha256sum | cut -c1-12)" build_tekton_validate ;;
    gitleaks) run_build gitleaks "$GITLEAKS_VERSION" build_gitleaks ;;
    osv-scanner) run_build osv-scanner "$OSV_SCANNER_VERSION" build_osv_scanner ;;
    trivy) run_build trivy "$TRIVY_VERSION" build_trivy ;;
    syft) run_build syft "$SYFT_VERSION" build_syft ;;
    scanners) "$0" gitleaks osv-scanner trivy syft ;;
    triggers) run_build tekton-triggers "$TEKTON_TRIGGERS_VERSION" build_triggers ;;
    local-path) run_build local-path-provisioner "$LOCAL_PATH_VERSION" build_local_path ;;
    coredns) run_build coredns "$COREDNS_VERSION" build_coredns ;;
    gitea) run_build gitea "$GITEA_VERSION" build_gitea ;;
    kube-router) run_build kube-router "$KUBE_ROUTER_VERSION" build_kube_router ;;
    runc2) run_build runc "$RUNC2_VERSION" build_runc2 ;;
    containerd2) run_build containerd "$CONTAINERD2_VERSION" build_containerd2 ;;
    userns) "$0" runc2 containerd2 ;;
    *) echo "cluster-build: unknown component '$c'" >&2; exit 2 ;;
  esac
done
log "all components ready in $CACHE"
