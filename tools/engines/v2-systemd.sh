#!/bin/bash
# Stage engines-v2-systemd: tests/engines/v2 (containerd, Docker and podman with the systemd
# cgroup driver, one container each through its life on pyruntime) in the cgroup v2 qemu
# guest booted with systemd as PID 1. The engines are the host's packages (the guest shares
# the host's root read-only): tools/engines/install.sh installs them first. Extra arguments
# go to pytest. Exit code = pytest's (124: guest timed out, 125: guest setup failed).
set -uo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$REPO"
tools/engines/install.sh >&2 || { echo "engines-v2-systemd: install failed" >&2; exit 1; }
V2_SYSTEMD=1 V2_TIMEOUT=${V2_TIMEOUT:-1500} V2_TESTS=tests/engines/v2 \
    exec tools/cgroup-v2-vm/run-v2-tests.sh "$@"
