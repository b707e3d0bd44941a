#!/usr/bin/env bash
# Installs the Debian packages the tests use as real parts (Prometheus; Chromium and its driver for the
# report check and the console's browser tests; HAProxy for the balancer; Docker, mmdebstrap, containerd,
# runc, CNI plugins, iptables, conntrack and a C compiler for the image and the one-node cluster)
# fail in CI with a message naming it, and skip locally.
set -euo pipefail

want=("$@")
if [[ ${#want[@]} -eq 0 ]]; then
  want=(prometheus:prometheus promtool:prometheus chromium:chromium chromedriver:chromium-driver haproxy:haproxy
        dockerd:docker.io mmdebstrap:mmdebstrap containerd:containerd ctr:containerd runc:runc
        /usr/lib/cni/bridge:containernetworking-plugins iptables:iptables conntrack:conntrack
        cc:gcc /usr/include/stdio.h:libc6-dev)  # gcc and libc6-dev: the static pause binary (build.sh)
fi

missing_pkgs=()
for pair in "${want[@]}"; do
  cmd="${pair%%:*}" pkg="${pair##*:}"
  if [[ $cmd == /* ]] && [[ -e $cmd ]]; then
    continue  # a path: any file the package ships
  fi
  if ! command -v "$cmd" >/dev/null 2>&1; then
    missing_pkgs+=("$pkg")
  fi
done
[[ ${#missing_pkgs[@]} -eq 0 ]] && exit 0

mapfile -t missing_pkgs < <(printf '%s\n' "${missing_pkgs[@]}" | sort -u)
if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${missing_pkgs[*]} (install them with your package manager)" >&2
  exit 0
fi
echo "system-deps: installing ${missing_pkgs[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
stamp=/var/lib/apt/periodic/edgefleet-apt-updated
if [[ ! -f $stamp ]] || [[ -n $(find "$stamp" -mmin +1440) ]]; then
  apt-get update -qq && mkdir -p "$(dirname "$stamp")" && touch "$stamp"
fi
apt-get install -y -qq --no-install-recommends "${missing_pkgs[@]}" >/dev/null
# Debian's package starts a system Prometheus on :9090; the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
pkill -x prometheus 2>/dev/null || true
