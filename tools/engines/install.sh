#!/bin/bash
# Install what tests/engines needs: the engines from Debian's packages and the CRI client.
# Idempotent and quick when everything is there. Installing starts no daemon (no systemd
# here; the tests start their own under temp dirs).
set -euo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)

PKGS=(containerd docker.io podman conmon docker-registry)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "==> apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
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
