#!/bin/sh
# Unpack Debian packages into a root file system and record them in its dpkg database as installed,
# without running anything of theirs (no maintainer script): how hack/unpacked-base.sh makes the
# arm64 bases and hack/image-runtime.sh adds git or ssh to a base that lacks them, both on the build
# platform for another architecture. POSIX sh and dpkg-deb only: it runs in the images' build stages.
#
#   hack/deb-unpack.sh ROOT ARCH DEB...
#
# Each DEB's files go to ROOT (keeping the merged /usr's directory links), its control fields with
# "Status: install ok installed" (and its conffiles' md5sums) are added to ROOT/var/lib/dpkg/status,
# and its file list, md5sums, conffiles, triggers, shlibs and symbols go to ROOT/var/lib/dpkg/info/
# (as <pkg>:ARCH.* for Multi-Arch: same packages), so dpkg, apt and scanners (syft, trivy) see it.
set -eu
root=${1:?usage: hack/deb-unpack.sh ROOT ARCH DEB...}
arch=${2:?usage: hack/deb-unpack.sh ROOT ARCH DEB...}
shift 2
admin=$root/var/lib/dpkg
mkdir -p "$admin/info"
[ -e "$admin/status" ] || : >"$admin/status"
control=$(mktemp -d)
for deb in "$@"; do
  dpkg-deb --fsys-tarfile "$deb" | tar -C "$root" --keep-directory-symlink -xf -
  rm -rf "$control" && mkdir "$control"
  dpkg-deb -e "$deb" "$control"
  pkg=$(dpkg-deb -f "$deb" Package)
  name=$pkg
  [ "$(dpkg-deb -f "$deb" Multi-Arch)" != same ] || name=$pkg:$arch
  for file in md5sums conffiles triggers shlibs symbols; do
    [ ! -f "$control/$file" ] || cp "$control/$file" "$admin/info/$name.$file"
  done
  dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's,^\./,/,' -e 's,/$,,' -e 's,^$,/.,' >"$admin/info/$name.list"
  {
    echo "Package: $pkg"
    echo "Status: install ok installed"
    dpkg-deb -f "$deb" | grep -v '^Package:'
    if [ -s "$control/conffiles" ]; then
      echo "Conffiles:"
      while read -r conffile; do
        [ ! -f "$root$conffile" ] || echo " $conffile $(md5sum <"$root$conffile" | cut -d' ' -f1)"
      done <"$control/conffiles"
    fi
    echo
  } >>"$admin/status"
done
rm -rf "$control"
