#!/usr/bin/env bash
# Makes the image's base from Debian packages with mmdebstrap and imports it into Docker, so building
# edgefleet's image needs no container registry. Reused when Docker already has it.
#
# Usage: hack/base-image.sh [TAG]     # default edgefleet-base:bookworm; prints the tag
#
# The base carries everything the Dockerfile would otherwise apt-get install: python3 and python3-venv
# (the CLI), haproxy (the balancer's data path) and redis-server (the managed purge bus).
set -euo pipefail

tag="${1:-edgefleet-base:bookworm}"
suite="${EDGEFLEET_DEBIAN_SUITE:-bookworm}"
mirror="${EDGEFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
packages="python3,python3-venv,haproxy,redis-server"

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "base-image: mmdebstrap is missing (apt-get install mmdebstrap), or build with BASE_IMAGE=debian:$suite-slim" >&2
  exit 1
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/edgefleet/images"
tarball="$cache/base-$suite-$(echo "$packages" | sha256sum | cut -c1-8).tar"
mkdir -p "$cache"
if [[ ! -f "$tarball" ]]; then
  echo "base-image: mmdebstrap $suite ($packages)" >&2
  mmdebstrap --variant=minbase --format=tar --include="$packages" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$suite" "$tarball.tmp" "$mirror" >&2
  mv "$tarball.tmp" "$tarball"
fi
docker import --change 'CMD ["/bin/bash"]' "$tarball" "$tag" >/dev/null
echo "$tag"
