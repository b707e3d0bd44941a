#!/usr/bin/env bash
# Builds the wheels of edgefleet's runtime dependencies (constraints.txt) on the host, so the image build
# installs them with `pip install --no-index` and needs no network inside the container.
#
# Usage: hack/wheels.sh DEST     # fills DEST with the wheels; cached in ~/.cache/edgefleet/wheels/<key>
#
# The wheels must match the image's Python (Debian bookworm: 3.11). When the host's python3 is another
# version, DEST is left empty and the Dockerfile installs from PyPI instead (a laptop with network).
set -euo pipefail

dest="${1:?usage: hack/wheels.sh DEST}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
mkdir -p "$dest"
find "$dest" -maxdepth 1 -name '*.whl' -delete

if [[ "$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" != "3.11" ]]; then
  echo "wheels: host $python is not 3.11 (the image's Python); the image build will install from PyPI" >&2
  exit 0
fi

key="$({ cat "$root/constraints.txt"; "$python" -VV; } | sha256sum | cut -c1-16)"
cache="${EDGEFLEET_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgefleet/wheels}/$key"
if [[ ! -f "$cache/.complete" ]]; then
  echo "wheels: building into $cache" >&2
  rm -rf "$cache.tmp" && mkdir -p "$cache.tmp"
  # `wheel` is the build stage's only extra: it builds edgefleet's own wheel without build isolation.
  "$python" -m pip wheel -q --disable-pip-version-check -w "$cache.tmp" \
    --constraint "$root/constraints.txt" -r "$root/constraints.txt" "wheel<1"
  touch "$cache.tmp/.complete"
  rm -rf "$cache" && mv "$cache.tmp" "$cache"
fi
cp -l "$cache"/*.whl "$dest"/ 2>/dev/null || cp "$cache"/*.whl "$dest"/
echo "wheels: $(find "$dest" -name '*.whl' | wc -l) wheels in $dest" >&2
