#!/usr/bin/env bash
# The Go-built tools of the images, at the versions of hack/toolchain.env: the scanners of
# druppie-scan (gitleaks, osv-scanner, trivy) and the SBOM tool of druppie-build (syft). One recipe
# for both users: the images' go stage (images/*/Containerfile) and hack/cluster-build.sh (the host
# copies the tests run).
#
#   hack/go-tools.sh OUTDIR TOOL...   builds each TOOL into OUTDIR/TOOL
#
# Needs `go` on PATH and the Go module proxy (GOPROXY); GOOS/GOARCH cross-compile (CGO is off, so
# no C toolchain is needed). Every tool is built from a writable copy of its module, so the
# module's own go.mod applies; -mod=mod lets go fill a missing go.sum line; -trimpath and -s -w as
# the projects' releases; the version is stamped where each tool reads it, so `trivy --version`
# and the others report the pinned version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=toolchain.env
source "$here/toolchain.env"
export GOFLAGS=-buildvcs=false CGO_ENABLED=0
# This Go (where the go command is another, it fetches this one from the proxy); osv-scanner's
# go.mod asks for 1.27: GO127_TOOLCHAIN, which the go command fetches and checks (GOSUMDB).
export GOTOOLCHAIN=$GO_TOOLCHAIN

out=${1:?usage: hack/go-tools.sh OUTDIR TOOL...}
shift
mkdir -p "$out"

# module_dir MOD@VER: where `go mod download` put the module's source (read-only).
module_dir() {
  local json dir
  json=$(go mod download -json "$1")
  dir=$(sed -nE 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p' <<<"$json")
  [[ -n $dir ]] || { printf 'go-tools: %s: %s\n' "$1" "$json" >&2; return 1; }
  echo "$dir"
}

# build VERSION MODULE PKG BIN [LDFLAGS]
build() {
  local v=$1 mod=$2 pkg=$3 bin=$4 ldflags=${5:-} src work
  src=$(module_dir "$mod@$v")
  work=$(mktemp -d "${TMPDIR:-/tmp}/druppie-go-tool.XXXXXX")
  cp -r "$src/." "$work/"
  chmod -R u+w "$work"
  (cd "$work" && go build -mod=mod -trimpath -ldflags "-s -w $ldflags" -o "$out/$bin" "$pkg")
  rm -rf "$work"
}

for tool in "$@"; do
  case $tool in
    gitleaks) build "$GITLEAKS_VERSION" github.com/zricethezav/gitleaks/v8 . gitleaks \
      "-X github.com/zricethezav/gitleaks/v8/version.Version=$GITLEAKS_VERSION" ;;
    osv-scanner) GOTOOLCHAIN=$GO127_TOOLCHAIN build "$OSV_SCANNER_VERSION" github.com/google/osv-scanner/v2 ./cmd/osv-scanner osv-scanner ;;
    # trivy uses encoding/json/v2, behind GOEXPERIMENT=jsonv2 (as its goreleaser.yml sets it).
    trivy) GOEXPERIMENT=jsonv2 build "$TRIVY_VERSION" github.com/aquasecurity/trivy ./cmd/trivy trivy \
      "-X github.com/aquasecurity/trivy/pkg/version/app.ver=${TRIVY_VERSION#v}" ;;
    syft) build "$SYFT_VERSION" github.com/anchore/syft ./cmd/syft syft "-X main.version=${SYFT_VERSION#v}" ;;
    *) echo "go-tools: unknown tool '$tool' (gitleaks, osv-scanner, trivy, syft)" >&2; exit 2 ;;
  esac
done
