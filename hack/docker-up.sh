#!/usr/bin/env bash
# Makes sure a Docker engine answers (`make images` needs one). On a machine without a service manager
# (this VM, CI containers) and as root, starts Debian's dockerd in the background, logging to the cache.
set -euo pipefail

docker info >/dev/null 2>&1 && exit 0
if [[ $(id -u) -ne 0 ]] || ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-up: no Docker engine answers; start Docker (or install docker.io and run this as root)" >&2
  exit 1
fi
log="${XDG_CACHE_HOME:-$HOME/.cache}/edgefleet/dockerd.log"
mkdir -p "$(dirname "$log")"
echo "docker-up: starting dockerd (log: $log)" >&2
setsid dockerd >>"$log" 2>&1 </dev/null &
for _ in $(seq 1 150); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "docker-up: dockerd did not answer within 30s; see $log" >&2
exit 1
