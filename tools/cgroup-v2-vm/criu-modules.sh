#!/bin/bash
# criu-modules.sh fetch|load -- the kernel modules criu needs in the guest.
# The guest's initramfs loads only virtio/9p/overlay; criu's `check` and the dump of a
# container with its own network namespace also need the socket-diag, tun/veth,
# netfilter (network lock) and autofs4 modules, built as modules in Debian's kernel.
#   fetch (host, once): unpack them with their dependencies from the same kernel package
#          as ./kernel into ./kernel/criu/ (gitignored with kernel/), plus a load order.
#   load  (guest, as root): insmod them in that order with busybox (the host has no kmod),
#          bring lo up. Idempotent: a loaded module is skipped.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
C=$HERE/kernel/criu
WANT="crc32c_generic unix_diag inet_diag tcp_diag udp_diag raw_diag netlink_diag af_packet_diag tun veth
      nf_tables nfnetlink nft_compat xt_mark nf_conntrack_netlink ip_tables autofs4"
case "${1:-}" in
fetch)
  [ -s "$C/order" ] && exit 0
  KVER=$(basename "$(ls "$HERE"/kernel/boot/vmlinuz-* | sort -V | tail -1)" | sed 's/^vmlinuz-//')
  T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
  (cd "$T" && apt-get -q download "linux-image-$KVER" >/dev/null 2>&1) \
    || { apt-get -q update >/dev/null; (cd "$T" && apt-get -q download "linux-image-$KVER" >/dev/null 2>&1); }
  mkdir -p "$T/x"
  dpkg-deb --fsys-tarfile "$T"/linux-image-*.deb | tar -x -C "$T/x" --wildcards \
    './lib/modules/*/kernel/net/*' './lib/modules/*/kernel/drivers/net/tun.ko*' \
    './lib/modules/*/kernel/drivers/net/veth.ko*' './lib/modules/*/kernel/fs/autofs/*' \
    './lib/modules/*/kernel/lib/*' './lib/modules/*/kernel/crypto/crc32c_generic.ko*'
  mkdir -p "$C.tmp"
  # crc32c_generic first: libcrc32c has only a soft dependency on it (alias crc32c)
  # the package has no modules.dep (depmod writes it at install): read each module's
  # "depends=" from its .modinfo and order dependencies first
  python3 - "$T/x/lib/modules/$KVER" "$C.tmp" $WANT <<'PY'
import os, shutil, sys
root, out, want = sys.argv[1], sys.argv[2], sys.argv[3:]
idx = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.ko'):
            idx[f[:-3].replace('-', '_')] = os.path.join(d, f)
def deps(path):
    data = open(path, 'rb').read()
    i = data.find(b'\0depends=')
    if i < 0:
        return []
    s = data[i + 9:data.index(b'\0', i + 9)].decode()
    return [x.replace('-', '_') for x in s.split(',') if x]
order = []
def visit(m):
    if m not in order:
        for d in deps(idx[m]):
            visit(d)
        order.append(m)
for m in want:
    visit(m)
for m in order:
    shutil.copy(idx[m], os.path.join(out, m + '.ko'))
open(os.path.join(out, 'order'), 'w').write('\n'.join(order) + '\n')
PY
  rm -rf "$C"; mv "$C.tmp" "$C"
  echo "criu-modules: $(wc -l < "$C/order") modules in $C"
  ;;
load)
  [ -s "$C/order" ] || { echo "criu-modules: run '$0 fetch' on the host first" >&2; exit 1; }
  while read -r m; do
    grep -q "^$m " /proc/modules || /bin/busybox insmod "$C/$m.ko" || echo "criu-modules: insmod $m failed" >&2
  done < "$C/order"
  ip link set lo up
  ;;
*) echo "usage: $0 fetch|load" >&2; exit 2 ;;
esac
