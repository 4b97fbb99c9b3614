#!/usr/bin/env bash
# Installs (once) the npm packages the browser test injects into the page (axe-core), into a
# cache dir outside the repo; prints the path of axe.min.js on the last line.
set -euo pipefail
dir=${PLO_NPM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/proxmox-lxc-operator/npm}
want="axe-core@4.10.2"
stamp=$dir/.plo-requirements
axe=$dir/node_modules/axe-core/axe.min.js
if [[ -f $axe && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "$axe"
  exit 0
fi
if ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq npm >/dev/null
fi
mkdir -p "$dir"
npm install --silent --no-audit --no-fund --prefix "$dir" $want >&2
echo "$want" >"$stamp"
echo "$axe"
