#!/usr/bin/env bash
# Creates (once) the Python venv with the chart test tools: the real Helm v4 SDK
# (`helm-python-sdk`) and `kubernetes-validate`. Cached outside the repo; prints the venv's
# python path on the last line. Installs python3-venv with apt-get when it is missing.
set -euo pipefail
venv=${PLO_HELM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/proxmox-lxc-operator/venv-helm}
want="helm-python-sdk==0.2.2 kubernetes-validate==1.37.0"
stamp=$venv/.plo-requirements
if [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "$venv/bin/python"
  exit 0
fi
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3-venv >/dev/null
fi
rm -rf "$venv"
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv"
# shellcheck disable=SC2086
"$venv/bin/pip" install -q $want >&2
echo "$want" >"$stamp"
echo "$venv/bin/python"
