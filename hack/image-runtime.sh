#!/bin/sh
# What the images' final stage adds to a base that lacks what the steps call at run time (git, ssh,
# CA certificates; buildah and skopeo for druppie-build), run in their `runtime` stage on the build
# platform: the packages of TARGETARCH are downloaded with apt and unpacked into OUTDIR/root
# (hack/deb-unpack.sh), which the final stage copies onto the same base; nothing of the target
# platform runs, so an arm64 image builds without emulation. The public python:3.11-slim base lacks
# git and ssh; the offline bases of `make images` lack nothing, and OUTDIR/root stays empty.
#
#   hack/image-runtime.sh OUTDIR TARGETARCH PACKAGE...
#
# The stage's base is BASE_IMAGE for the build platform, the same image as the final stage's for the
# target (one manifest list), so its dpkg status, with the architecture renamed, is the target
# base's: apt resolves against it and downloads only what the target base does not have. The
# merged status goes to OUTDIR/root/var/lib/dpkg/status. No maintainer script runs: the CA bundle is
# made by hack/ca-bundle.sh when it was missing.
set -eu
out=${1:?usage: hack/image-runtime.sh OUTDIR TARGETARCH PACKAGE...}
arch=${2:?usage: hack/image-runtime.sh OUTDIR TARGETARCH PACKAGE...}
shift 2
case $arch in
  amd64|arm64) ;;
  *) echo "image-runtime: no packages for TARGETARCH=$arch (amd64, arm64)" >&2; exit 2 ;;
esac
mkdir -p "$out/root"
[ $# -gt 0 ] || exit 0
echo "image-runtime: adding $* for $arch" >&2
native=$(dpkg --print-architecture)
[ "$arch" = "$native" ] || dpkg --add-architecture "$arch"
apt-get update -qq
work=$(mktemp -d)
sed "s/^Architecture: $native\$/Architecture: $arch/" /var/lib/dpkg/status >"$work/status"
mkdir -p "$work/debs/partial"
apt-get install -qq -y --download-only --no-install-recommends \
  -o Dir::State::status="$work/status" -o APT::Architecture="$arch" -o APT::Architectures="$arch" \
  -o Dir::Cache::archives="$work/debs" "$@" >/dev/null
# The base's merged /usr (bin -> usr/bin, ...) as links here too, so the packages' /bin and /lib
# files land under usr/ and the final stage's copy keeps the base's links.
for dir in bin sbin lib lib32 lib64 libx32; do
  [ ! -L "/$dir" ] || ln -s "$(readlink "/$dir")" "$out/root/$dir"
done
mkdir -p "$out/root/var/lib/dpkg"
cp "$work/status" "$out/root/var/lib/dpkg/status"
"$(dirname "$0")/deb-unpack.sh" "$out/root" "$arch" "$work"/debs/*.deb
if [ -d "$out/root/usr/share/ca-certificates" ]; then
  "$(dirname "$0")/ca-bundle.sh" "$out/root"
fi
rm -rf "$work" /var/lib/apt/lists/*
