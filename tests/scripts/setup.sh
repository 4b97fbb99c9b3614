#!/usr/bin/env bash
# Installs what the test suite and the demo need on a fresh Debian machine, idempotently:
# Debian packages (etcd-server, python3-venv, lua; buildah, umoci and binutils for the image test;
# chromium for the web UI's browser test; shellcheck for actionlint), the Kubernetes control plane
# build (kube-apiserver, kube-controller-manager, kube-scheduler; cached in ~/.cache), and the Python venv with third-party tools (cached in ~/.cache).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
need=()
command -v etcd >/dev/null || need+=(etcd-server)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v buildah >/dev/null || need+=(buildah)
command -v umoci >/dev/null || need+=(umoci)
command -v strip >/dev/null || need+=(binutils)
command -v shellcheck >/dev/null || need+=(shellcheck)
command -v chromium >/dev/null || need+=(chromium)
[[ -f /etc/ssl/certs/ca-certificates.crt ]] || need+=(ca-certificates)
if [[ ${#need[@]} -gt 0 ]]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
"$here/build-kube.sh" >/dev/null
if [[ -x $here/python-venv.sh ]]; then "$here/python-venv.sh" >/dev/null; fi
echo "setup: ok"
