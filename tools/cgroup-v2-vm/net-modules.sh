#!/bin/bash
# net-modules.sh -- add the modules a CNI bridge needs (llc, stp, bridge, veth) to ./kernel,
# beside the modules setup.sh unpacked, from the same kernel package (downloaded with apt,
# not installed). Idempotent. The guest loads them at test time (tests/engines/test_cri_cni.py):
# the initramfs stays as setup.sh builds it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
K=$HERE/kernel
[ -e "$K/vmlinux" ] || "$HERE/setup.sh" >&2
KVER=$(basename "$(readlink "$K/vmlinux")" | sed 's/^vmlinux-//')
MODS=(net/llc/llc net/802/stp net/bridge/bridge drivers/net/veth)
missing=0
for m in "${MODS[@]}"; do
  ls "$K/lib/modules/$KVER/kernel/$m".ko* >/dev/null 2>&1 || missing=1
done
[ $missing = 1 ] || exit 0
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
(cd "$T" && apt-get -q download "linux-image-$KVER" >/dev/null 2>&1) || {
  apt-get -q update >/dev/null; (cd "$T" && apt-get -q download "linux-image-$KVER" >/dev/null); }
pats=()
for m in "${MODS[@]}"; do pats+=("./lib/modules/$KVER/kernel/$m.ko*"); done
dpkg-deb --fsys-tarfile "$T"/linux-image-"$KVER"_*.deb | tar -x -C "$K" --wildcards "${pats[@]}"
echo "net-modules: added ${MODS[*]} for $KVER"
