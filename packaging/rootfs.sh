#!/bin/sh
# Assembles the root filesystem of the operator image from a built binary: the binary (stripped),
# exactly the shared libraries it loads (as `ldd` lists them; none for a static binary), the CA
# bundle, /etc/passwd and /etc/group with the non-root user 65532 (the chart's runAsUser), and a
# world-writable /tmp. Used by the Containerfile's builder stage and by tests/image.rs.
#
#   packaging/rootfs.sh BINARY OUT_DIR
set -eu
bin=$1
out=$2
uid=65532
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
[ -f "$ca" ] || { echo "rootfs.sh: $ca missing (install ca-certificates)" >&2; exit 1; }
rm -rf "$out"
mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/tmp"
chmod 1777 "$out/tmp"
cp "$bin" "$out/usr/local/bin/proxmox-lxc-operator"
strip --strip-all "$out/usr/local/bin/proxmox-lxc-operator"
# `ldd` prints "name => /path (addr)" per library and "/path (addr)" for the dynamic loader; a
# static binary gets "not a dynamic executable" (and no libraries are needed).
if ldd "$bin" >"$out/.ldd" 2>&1; then
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' "$out/.ldd" | sort -u |
    while read -r lib; do
      mkdir -p "$out$(dirname "$lib")"
      cp -L "$lib" "$out$lib"
    done
elif ! grep -q "not a dynamic executable\|statically linked" "$out/.ldd"; then
  cat "$out/.ldd" >&2
  exit 1
fi
rm -f "$out/.ldd"
cp -L "$ca" "$out/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/tmp:/sbin/nologin\n' "$uid" "$uid" >"$out/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$uid" >"$out/etc/group"
chmod -R u+rwX,go+rX,go-w "$out/usr" "$out/etc" "$out/lib"* 2>/dev/null || true
