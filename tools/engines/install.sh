#!/bin/bash
# Install what tests/engines needs: the engines from Debian's packages and the CRI client.
# Idempotent and quick when everything is there. Installing starts no daemon (no systemd
# here; the tests start their own under temp dirs).
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)

PKGS=(containerd docker.io podman conmon docker-registry containernetworking-plugins)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "==> apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # The packages' maintainer scripts must not start the system daemons (a system dockerd
    # would set up bridges and iptables in the host's network namespace): deny service
    # starts for the duration of the install, as Debian's policy-rc.d mechanism allows.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/pyrt-engines-apt.log 2>&1; then
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/pyrt-engines-apt.log 2>&1 \
            || { cat /tmp/pyrt-engines-apt.log >&2; exit 1; }
    fi
    rm -f /tmp/pyrt-engines-apt.log
fi

VPY=$REPO/.venv/bin/python
if ! "$VPY" -c 'import grpc, cri_api.v1.api_pb2_grpc' 2>/dev/null; then
    echo "==> pip: installing container-runtime-interface-api"
    "$VPY" -m pip install -q container-runtime-interface-api
fi
