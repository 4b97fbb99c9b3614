#!/usr/bin/env bash
# Make (or reuse) a Python venv with Ansible (the `ansible` package from PyPI, which bundles the
# community.proxmox collection from Ansible 12 on) and proxmoxer, for tests/sim_ansible.rs.
# ansible 12 is the newest line whose ansible-core (2.19) runs on Python 3.11 (Debian bookworm).
# Prints the venv's bin directory on the last line.
# Cached outside the repo: ${XDG_CACHE_HOME:-$HOME/.cache}/proxmox-lxc-operator/ansible-venv
set -euo pipefail
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/proxmox-lxc-operator/ansible-venv"
PY="${PYTHON:-python3}"
PACKAGES=("ansible>=12,<13" proxmoxer==2.3.0 requests)

if ! "$PY" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  echo "ansible-venv.sh: python venv support missing; installing python3-venv" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq python3 python3-venv >&2
fi
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$(dirname "$VENV")"
  "$PY" -m venv "$VENV" >&2
fi
if [ ! -x "$VENV/bin/ansible" ] || ! "$VENV/bin/python" -c 'import proxmoxer, requests' >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PACKAGES[@]}" >&2
fi
"$VENV/bin/ansible-doc" -t module community.proxmox.proxmox_storage_info >/dev/null
echo "$VENV/bin"
