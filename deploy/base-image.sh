#!/usr/bin/env bash
# Makes a Debian bookworm base image with Python 3.11 and venv from Debian's own mirror, for
# building deploy/Dockerfile where no image registry can be reached:
#
#   sudo deploy/base-image.sh [--ca FILE]... [--mirror URL] [--tag NAME]
#   docker build -f deploy/Dockerfile --build-arg BASE_IMAGE=local/bookworm-python -t cachewatch .
#
# Behind a TLS-intercepting proxy, pass the proxy's CA certificate (PEM) with --ca (repeat for
# several). Where it goes: into the image's /usr/local/share/ca-certificates/, and
# update-ca-certificates adds it to /etc/ssl/certs/ca-certificates.crt, the bundle pip trusts
# inside the build (PIP_CERT in deploy/Dockerfile). debootstrap itself needs no CA: it fetches the
# mirror over plain http (through $http_proxy when set) and checks packages by their signatures.
# Needs root (debootstrap and chroot), debootstrap, tar and docker.
set -euo pipefail
tag=local/bookworm-python
mirror=http://deb.debian.org/debian
cas=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ca) [ -r "${2:-}" ] || { echo "base-image: --ca needs a readable PEM file" >&2; exit 2; }
          cas+=("$2"); shift 2 ;;
    --mirror) mirror="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "base-image: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
echo "base-image: debootstrap bookworm from $mirror into $root" >&2
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm \
  "$root" "$mirror" >&2
for index in "${!cas[@]}"; do
  cp "${cas[$index]}" "$root/usr/local/share/ca-certificates/proxy-ca-$index.crt"
done
if [ "${#cas[@]}" -gt 0 ]; then
  chroot "$root" update-ca-certificates >&2
  echo "base-image: ${#cas[@]} CA file(s) added to /etc/ssl/certs/ca-certificates.crt" >&2
fi
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
tar -C "$root" -c . | docker import - "$tag" >&2
echo "$tag"
