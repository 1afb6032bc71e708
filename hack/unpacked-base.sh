#!/usr/bin/env bash
# A Debian bookworm rootfs for another architecture (arm64 on this amd64 machine) made without
# running any of its code: no emulation (binfmt/qemu), no debootstrap second stage, no maintainer
# script. hack/images.sh makes the arm64 offline bases with it.
#
#   hack/unpacked-base.sh ARCH PACKAGES ROOTFS
#
#   ARCH      a Debian architecture (arm64, amd64, ...)
#   PACKAGES  comma-separated, as debootstrap's --include (the same resolver as the amd64 base)
#   ROOTFS    an empty folder to fill
#
# 1. `debootstrap --foreign --variant=minbase --include=PACKAGES`: resolves and downloads the package
#    set and unpacks the required packages, with the merged /usr of bookworm; it runs nothing of ARCH.
# 2. Every other downloaded package is unpacked the same way and all are recorded in the dpkg
#    database as installed (hack/deb-unpack.sh), so dpkg, apt and scanners (syft, trivy) see them.
# 3. What the second stage's maintainer scripts would leave, done here with this machine's tools,
#    since their results do not depend on the architecture:
#    - /etc/passwd and /etc/group from base-passwd's masters (base-passwd's postinst);
#    - /etc/ca-certificates.conf and /etc/ssl/certs (the bundle and hash links), by
#      hack/ca-bundle.sh (ca-certificates' postinst);
#    - the alternatives the postinsts of mawk, debianutils, util-linux and tar install (awk, nawk,
#      which, pager, rmt), by update-alternatives --root.
#    Not done: ld.so.cache (Debian's ld.so searches /lib/<triplet> and /usr/lib/<triplet> without
#    it), byte-compiled Python (compiled on first import; the images set PYTHONDONTWRITEBYTECODE),
#    /etc/shadow (no password in an image) and anything of a package this base does not have.
set -euo pipefail
shopt -s inherit_errexit nullglob
arch=${1:?usage: hack/unpacked-base.sh ARCH PACKAGES ROOTFS}
packages=${2:?usage: hack/unpacked-base.sh ARCH PACKAGES ROOTFS}
rootfs=${3:?usage: hack/unpacked-base.sh ARCH PACKAGES ROOTFS}
[[ -d $rootfs && -z $(ls -A "$rootfs") ]] || { echo "unpacked-base: ROOTFS '$rootfs' is not an empty folder" >&2; exit 2; }

debootstrap --foreign --arch="$arch" --variant=minbase --include="$packages" bookworm "$rootfs" >/dev/null

# 2 and 3a. Every downloaded package (those the first stage unpacked too: the same files again),
# unpacked and recorded in the dpkg database (hack/deb-unpack.sh).
debs=("$rootfs"/var/cache/apt/archives/*.deb)
[[ ${#debs[@]} -gt 0 ]] || { echo "unpacked-base: debootstrap downloaded nothing into $rootfs" >&2; exit 1; }
: >"$rootfs/var/lib/dpkg/status"
"$(dirname "$0")/deb-unpack.sh" "$rootfs" "$arch" "${debs[@]}"

# 3b-d. base-passwd, ca-certificates and the alternatives.
cp "$rootfs/usr/share/base-passwd/passwd.master" "$rootfs/etc/passwd"
cp "$rootfs/usr/share/base-passwd/group.master" "$rootfs/etc/group"
if [[ -d $rootfs/usr/share/ca-certificates ]]; then
  "$(dirname "$0")/ca-bundle.sh" "$rootfs"
fi
alternative() {  # alternative LINK NAME PATH PRIORITY [--slave LINK NAME PATH], where PATH is in the rootfs
  [[ ! -e $rootfs$3 ]] || update-alternatives --root "$rootfs" --quiet --install "$@"
}
alternative /usr/bin/awk awk /usr/bin/mawk 5 --slave /usr/bin/nawk nawk /usr/bin/mawk
alternative /usr/bin/which which /usr/bin/which.debianutils 0
alternative /usr/bin/pager pager /bin/more 50
alternative /usr/sbin/rmt rmt /usr/sbin/rmt-tar 50

# Nothing of debootstrap's own is left: its files, the downloaded packages, the device nodes and the
# /proc -> /proc link it makes when it finds itself in a container (a runtime mounts both).
rm -rf "$rootfs/debootstrap" "$rootfs"/var/cache/apt/archives/*.deb
find "$rootfs/dev" -mindepth 1 \( -type c -o -type b \) -delete
if [[ -L $rootfs/proc ]]; then rm "$rootfs/proc" && mkdir -m 755 "$rootfs/proc"; fi
