#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kube-controller-manager, kubectl, etcd, kwok, helm) and
# the one-node cluster's node (kubelet, kube-proxy, CoreDNS, the pause binary) from the Go module proxy
# into a cache directory outside the repository, and reuses it when present.
#
# Usage: hack/kube-testenv/build.sh            # builds what is missing, prints the bin directory
#        EDGEFLEET_KUBE_CACHE=/path build.sh   # cache elsewhere (default: ~/.cache/edgefleet/kube-testenv)
#
# Versions are pinned by the go.mod/go.sum files beside this script; the cache key is a hash of them,
# so changing a pin builds a fresh set and never mixes versions. Binaries are built one by one and
# moved into place atomically, so an interrupted build resumes where it stopped.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${EDGEFLEET_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/edgefleet/kube-testenv}"

if ! command -v go >/dev/null 2>&1; then
  echo "kube-testenv: 'go' is not on PATH; the test control plane is built from the Go module proxy" >&2
  exit 1
fi

key="$(cat "$here"/*/go.mod "$here"/*/go.sum | sha256sum | cut -c1-16)"
bin="$cache_root/$key/bin"
mkdir -p "$bin"

k8s_version="$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$here/kubernetes/go.mod")"
helm_version="$(awk '$1=="require" && $2=="helm.sh/helm/v3" {print $3}' "$here/helm/go.mod")"
kwok_version="$(awk '$1=="require" && $2=="sigs.k8s.io/kwok" {print $3}' "$here/kwok/go.mod")"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"

# Version stamps: without them the binaries report v0.0.0 and Helm's kubeVersion checks fail.
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$k8s_minor \
 -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$k8s_version"

build() {  # build MODULE_DIR OUTPUT PACKAGE LDFLAGS
  local module="$1" out="$2" pkg="$3" ldflags="$4"
  if [[ -x "$bin/$out" ]]; then
    return 0
  fi
  local started=$SECONDS
  echo "kube-testenv: building $out ($pkg)" >&2
  (cd "$here/$module" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "$ldflags" -o "$bin/$out.tmp" "$pkg")
  mv "$bin/$out.tmp" "$bin/$out"  # atomic: a half-built binary is never mistaken for a cached one
  echo "kube-testenv: built $out in $((SECONDS - started))s" >&2
}

build etcd etcd go.etcd.io/etcd/server/v3 "-s -w"
build kubernetes kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver "$k8s_ldflags"
build kubernetes kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager "$k8s_ldflags"
build kubernetes kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler "$k8s_ldflags"
build kubernetes kubectl k8s.io/kubernetes/cmd/kubectl "$k8s_ldflags"
build kubernetes kubelet k8s.io/kubernetes/cmd/kubelet "$k8s_ldflags"
build kubernetes kube-proxy k8s.io/kubernetes/cmd/kube-proxy "$k8s_ldflags"
build coredns coredns edgefleet.io/hack/kube-testenv/coredns "-s -w"
build kwok kwok sigs.k8s.io/kwok/cmd/kwok "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$kwok_version"
# Helm stamps its default Kubernetes version (used by `helm template` and `helm lint`) at link time.
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version \
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$k8s_minor \
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$k8s_minor"
build helm helm helm.sh/helm/v3/cmd/helm "$helm_ldflags"

# The pod sandbox's pause process, from the Kubernetes module's own source (a static C program).
if [[ ! -x "$bin/pause" ]]; then
  if ! command -v cc >/dev/null 2>&1; then
    echo "kube-testenv: 'cc' is not on PATH; the pause binary is compiled from the module's pause.c" >&2
    exit 1
  fi
  k8s_dir="$(cd "$here/kubernetes" && go mod download -json k8s.io/kubernetes | awk -F'"' '$2=="Dir" {print $4}')"
  cc -Os -static -o "$bin/pause.tmp" -DVERSION="$k8s_version" "$k8s_dir/build/pause/linux/pause.c"
  mv "$bin/pause.tmp" "$bin/pause"
fi

echo "$bin"
