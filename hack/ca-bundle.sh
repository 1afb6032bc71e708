#!/bin/sh
# ca-certificates' postinst for a root file system nothing runs in (an unpacked image): the
# /etc/ca-certificates.conf that names every certificate the package ships, the bundle python, git
# and curl read (/etc/ssl/certs/ca-certificates.crt) and one link per certificate, as Debian makes
# them. Debian bookworm's update-ca-certificates has no --sysroot: it prints its usage and exits 0,
# leaving no bundle, so it is not called.
#
#   hack/ca-bundle.sh ROOT
set -eu
root=${1:?usage: hack/ca-bundle.sh ROOT}
share=$root/usr/share/ca-certificates
[ -d "$share" ] || { echo "ca-bundle: $share is missing: ca-certificates is not unpacked in $root" >&2; exit 2; }
(cd "$share" && find . -name '*.crt' | sed 's,^\./,,' | LC_ALL=C sort) >"$root/etc/ca-certificates.conf"
certs=$root/etc/ssl/certs
mkdir -p "$certs"
trap 'rm -f "$certs/ca-certificates.crt.new"' EXIT
: >"$certs/ca-certificates.crt.new"
count=0
while IFS= read -r crt; do
  cat "$share/$crt" >>"$certs/ca-certificates.crt.new"
  [ -z "$(tail -c1 "$share/$crt")" ] || echo >>"$certs/ca-certificates.crt.new"
  ln -sf "/usr/share/ca-certificates/$crt" "$certs/$(basename "$crt" .crt | tr ' ' '_').pem"
  count=$((count + 1))
done <"$root/etc/ca-certificates.conf"
[ "$count" -gt 0 ] || { echo "ca-bundle: no certificate under $share" >&2; exit 2; }
mv "$certs/ca-certificates.crt.new" "$certs/ca-certificates.crt"
echo "ca-bundle: $count certificates in /etc/ssl/certs/ca-certificates.crt" >&2
