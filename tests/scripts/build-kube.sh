#!/usr/bin/env bash
# Builds a REAL Kubernetes control plane (v1.20.2: kube-apiserver, kube-controller-manager,
# kube-scheduler) offline, from Debian bookworm's `kubernetes` source package (the full upstream
# tree with vendor/), using Debian's Go 1.19. One `make` builds the three (openapi-gen runs once).
#
# usage: build-kube.sh [OUT_DIR]   (default: ${XDG_CACHE_HOME:-$HOME/.cache}/kube-1.20.2)
# Prints OUT_DIR, which then holds the three binaries.
set -euo pipefail
out=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/kube-1.20.2}
bins=(kube-apiserver kube-controller-manager kube-scheduler)
done_already=1
for b in "${bins[@]}"; do [[ -x $out/$b ]] || done_already=""; done
if [[ -n $done_already ]]; then echo "$out"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. source packages need a deb-src entry: mirror the machine's own deb entries
if ! grep -rqs '^Types:.*deb-src' /etc/apt/sources.list.d/; then
  sed -e 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > /etc/apt/sources.list.d/debian-src.sources
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go etcd-server \
  golang-github-modern-go-reflect2-dev make rsync >/dev/null

# 2. the source tree (orig tarball = upstream v1.20.2 with vendor/)
cd "$work"
apt-get source --download-only 'kubernetes=1.20.5+really1.20.2-1.1+deb12u1' >/dev/null 2>&1
tar xzf kubernetes_1.20.5+really1.20.2.orig.tar.gz
cd kubernetes-1.20.2

# 3. vendored reflect2 1.0.1 is unsafe with Go >= 1.18; swap in Debian's 1.0.2
r=vendor/github.com/modern-go/reflect2
rm -f "$r"/*.go "$r"/*.s
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s "$r"/

# 4. GOPATH-mode build through the upstream Makefile (it runs openapi-gen first;
#    a bare `go build` fails with "undefined: openapi.GetOpenAPIDefinitions")
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
export GOPATH=$PWD/.go CGO_ENABLED=0 HOME=$work/home GOLDFLAGS="-s -w" \
  KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean
make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler" >/dev/null
mkdir -p "$out"
for b in "${bins[@]}"; do cp "_output/bin/$b" "$out/"; done
"$out/kube-apiserver" --version >&2
echo "$out"
