#!/bin/bash
# Stage cri-v2-systemd: tests/engines/test_cri_cni.py (Kubernetes pods through containerd's
# CRI plugin on the pyruntime handler, wired by Debian's CNI bridge + host-local + loopback
# in containerd's private network namespace) in the cgroup v2 qemu guest booted with systemd
# as PID 1, so the handler runs with SystemdCgroup = true. The guest shares the host's root
# read-only: tools/engines/install.sh installs containerd and the CNI plugins first,
# tools/cgroup-v2-vm/net-modules.sh adds the guest kernel's bridge and veth modules.
# PYRT_CRI_CNI_FULL=1 (the default here) runs the two-pod test instead of the one-pod smoke.
# Extra arguments go to pytest. Exit code = pytest's (124: guest timed out, 125: setup failed).
set -uo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$REPO"
tools/engines/install.sh >&2 || { echo "cri-v2-systemd: engines install failed" >&2; exit 1; }
tools/cgroup-v2-vm/net-modules.sh >&2 || { echo "cri-v2-systemd: net-modules.sh failed" >&2; exit 1; }
V2_SYSTEMD=1 V2_TIMEOUT=${V2_TIMEOUT:-1200} V2_PASSENV=PYRT_CRI_CNI_FULL \
    PYRT_CRI_CNI_FULL=${PYRT_CRI_CNI_FULL:-1} V2_TESTS=tests/engines/test_cri_cni.py \
    exec tools/cgroup-v2-vm/run-v2-tests.sh "$@"
