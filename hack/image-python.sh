#!/bin/sh
# The Python half of the images, run in their python stage (images/*/Containerfile) from the
# repository root: pip installs wheels for the target platform into OUTDIR, which the final stage
# copies; the image itself gets no pip, no cache and no compiler from this.
#
#   hack/image-python.sh OUTDIR TARGETARCH PART...
#
#   program     druppie-step (its wheel, built from steps/) with the pins of steps/requirements.lock
#               as constraints (so only runtime dependencies come in): OUTDIR/site-packages, and
#               OUTDIR/bin/druppie-step, a launcher that imports it from PYTHONPATH
#   test-tools  the wheels of steps/requirements-test-tools.txt, for `druppie-step test` to install
#               offline: OUTDIR/wheels
#   scan        bandit and its pins (steps/requirements-scan.txt): OUTDIR/scan-packages and the
#               launcher OUTDIR/bin/bandit
#
# Wheels only (--only-binary=:all:), chosen for TARGETARCH (amd64 or arm64: manylinux x86_64 or
# aarch64) and the python3 of this stage, which is the final stage's base on the build platform:
# nothing here runs target code, so an arm64 image builds without emulation. PIP_INDEX_URL (and
# the rest of pip's environment) picks a mirror.
set -eu
out=${1:?usage: hack/image-python.sh OUTDIR TARGETARCH PART...}
arch=${2:?usage: hack/image-python.sh OUTDIR TARGETARCH PART...}
shift 2
case $arch in
  amd64) machine=x86_64 ;;
  arm64) machine=aarch64 ;;
  *) echo "image-python: no wheels platform for TARGETARCH=$arch (amd64, arm64)" >&2; exit 2 ;;
esac
pyver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
abi=cp$(echo "$pyver" | tr -d .)

# pip itself lives in a throwaway virtual environment of this stage (ensurepip: no download).
venv=${TMPDIR:-/tmp}/druppie-pip
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
pip() { "$venv/bin/python" -m pip --disable-pip-version-check "$@"; }
target() {
  pip "$@" --only-binary=:all: --implementation cp --python-version "$pyver" --abi "$abi" \
    --platform "manylinux2014_$machine" --platform "manylinux_2_17_$machine"
}
launcher() {  # launcher PATH MODULE FUNCTION: runs MODULE.FUNCTION() from PYTHONPATH
  mkdir -p "$(dirname "$1")"
  printf '#!/usr/bin/env python3\nimport sys\nfrom %s import %s\nsys.exit(%s())\n' "$2" "$3" "$3" >"$1"
  chmod 755 "$1"
}

for part in "$@"; do
  case $part in
    program)
      wheels=$(mktemp -d)
      # From a copy: setuptools leaves build/ and *.egg-info beside the source.
      cp -r steps "$wheels/src"
      rm -rf "$wheels/src/build" "$wheels"/src/*.egg-info
      pip wheel --quiet --no-deps -w "$wheels" "$wheels/src"
      target install --quiet --target "$out/site-packages" -c steps/requirements.lock "$wheels"/druppie_steps-*.whl
      # kubernetes >= 35 ships an asyncio twin of its client (about 70 MB with aiohttp and friends)
      # that no step imports; the smoke test of `make images` imports what the steps do use.
      (cd "$out/site-packages" && rm -rf bin kubernetes/aio aiohttp aiohttp_retry aiohappyeyeballs aiosignal \
        frozenlist multidict propcache yarl)
      rm -rf "$wheels"
      launcher "$out/bin/druppie-step" druppie_steps.cli main ;;
    test-tools)
      target download --quiet --no-deps -d "$out/wheels" -r steps/requirements-test-tools.txt ;;
    scan)
      target install --quiet --target "$out/scan-packages" -r steps/requirements-scan.txt
      rm -rf "$out/scan-packages/bin"
      launcher "$out/bin/bandit" bandit.cli.main main ;;
    *) echo "image-python: unknown part '$part' (program, test-tools, scan)" >&2; exit 2 ;;
  esac
done
