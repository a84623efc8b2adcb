#!/bin/bash
# Install what the tests need, then run every stage of the suite.
#
#   ./run-tests.sh                 all stages
#   ./run-tests.sh -k lifecycle    extra arguments go to pytest (the pytest and wheel stages)
#
# Exit status: non-zero if any stage failed (pytest's 5, "no tests collected", included).
set -uo pipefail

REPO=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
cd "$REPO"

./setup.sh --no-demo || { echo "run-tests.sh: setup.sh failed" >&2; exit 1; }
VPY=$REPO/.venv/bin/python

failed=()
passed=()
LOGS=$(mktemp -d /tmp/pyrt-run-tests-XXXXXX)
trap 'rm -rf "$LOGS"' EXIT
stage() {
    local name=$1 rc
    shift
    printf '\n==> stage %s: %s\n' "$name" "$*"
    "$@" 2>&1 | tee "$LOGS/$name.log"
    rc=${PIPESTATUS[0]}
    if ((rc == 0)); then
        passed+=("$name")
    else
        failed+=("$name (exit $rc)")
    fi
}

# tests/v2, tests/systemd and tests/criu run in the qemu guest below (on this host they would only skip)
stage pytest "$VPY" -m pytest tests -q -p no:cacheprovider --ignore=tests/v2 --ignore=tests/systemd --ignore=tests/criu "$@"
# sdist + wheel built as pip builds them, checked against the package tree, the wheel in a
# fresh venv under /tmp, and the same host suite against that install's `pyruntime`
# without the checkout (tools/test-installed-wheel.sh); ~30 s plus the suite. It runs with
# the launcher's fast path off (PYRT_FASTPATH=0), so the Python path of start/state/kill/
# delete, which every unusual case takes, passes the whole suite too; tests/test_fastpath.py
# sets the switch per command and so still checks the installed fast launcher
stage wheel env PYRT_FASTPATH=0 tools/test-installed-wheel.sh "$@"
stage bench-smoke "$VPY" bench/bench.py --smoke

# tests/v2 (library + real containers through the CLI) in the qemu cgroup v2-only guest,
# with the launcher's fast path off (the guest stages below keep it on, so both paths run
# on v2); ~2 min (boot ~5 s, the rest is the emulated guest's Python start-ups)
stage cgroup-v2 env V2_PASSENV=PYRT_FASTPATH PYRT_FASTPATH=0 tools/cgroup-v2-vm/run-v2-tests.sh
# the isolation suite's tests marked `guest` (issue 12's regression tests: runtime exe and
# fds, an init created into a joined pid namespace, paths, stdio, state and cgroup
# ownership, with and without a user namespace) in the
# same cgroup v2-only guest; ~8 min
stage isolation-v2 env V2_PASSENV="PYRT_KILL_ROUNDS PYRT_KILL_MAX_DELAY" PYRT_KILL_ROUNDS=8 \
    PYRT_KILL_MAX_DELAY=1.5 V2_TIMEOUT=1500 \
    V2_TESTS="tests/test_isolation_exe.py tests/test_join_pidns.py tests/test_isolation_fds.py tests/test_isolation_paths.py tests/test_isolation_stdio.py tests/test_isolation_state.py tests/test_cgroup_ownership.py" \
    tools/cgroup-v2-vm/run-v2-tests.sh -m guest
# tests/systemd (the --systemd-cgroup driver against runc's) in the same guest booted with
# systemd as PID 1; ~1.5 min (boot ~25 s)
stage systemd env V2_SYSTEMD=1 V2_TESTS=tests/systemd tools/cgroup-v2-vm/run-v2-tests.sh
# the host suite's tests marked `guest` in the v2 guest with the cgroupfs driver: all of
# test_cgroups_e2e.py (every resource, update, pause, events, ps, kill --all, OOM via
# memory.events) and the lifecycle, exec, hooks, seccomp-notify and security tests that
# create, join, freeze or remove the container's cgroup; ~8 min (~4 min of guest CPU)
V2_SUITE="tests/test_cgroups_e2e.py tests/test_lifecycle.py tests/test_exec.py tests/test_hooks.py tests/test_seccomp_e2e.py tests/test_security.py"
stage suite-v2 env V2_TIMEOUT=1200 V2_TESTS="$V2_SUITE" tools/cgroup-v2-vm/run-v2-tests.sh -m guest
# the same tests (marked `guest_systemd`) with every runtime command under --systemd-cgroup
# (PYRT_SYSTEMD_CGROUP=1: transient runc-<id>.scope units) in the guest booted with systemd;
# ~7.5 min (~5 min of guest CPU)
stage suite-v2-systemd env V2_SYSTEMD=1 V2_PASSENV=PYRT_SYSTEMD_CGROUP PYRT_SYSTEMD_CGROUP=1 \
    V2_TIMEOUT=1200 V2_TESTS="$V2_SUITE" tools/cgroup-v2-vm/run-v2-tests.sh -m guest_systemd
# tests/criu (checkpoint/restore through criu, which fails on this host's kernel) in the
# same guest, with the kernel modules criu needs unpacked once on the host, and podman
# (tools/engines/install.sh) for podman's checkpoint/restore; measured 8.9 min with two other guests running
# (load ~13 on 2 cores; pytest 7.7 min for 5 tests), estimated ~4-5 min alone
stage criu bash -c 'tools/engines/install.sh >/dev/null && tools/cgroup-v2-vm/criu-modules.sh fetch && V2_TIMEOUT=900 V2_TESTS=tests/criu exec tools/cgroup-v2-vm/run-v2-tests.sh'
# containerd (ctr + CRI), podman and dockerd from Debian's packages, each started under a
# temp dir, running their containers on pyruntime; ~1 min (+~30 s first apt install)
stage engines tests/engines/run.sh
# containerd (runc shim v2, --runc-systemd-cgroup), Docker (native.cgroupdriver=systemd) and
# podman (cgroup_manager = "systemd") in the v2 guest booted with systemd: one container
# each run, exec'd, paused, updated (Docker: memory + pids; podman 4.3: memory + CPU quota),
# stopped and removed on pyruntime; ~6 min (~3 min of guest CPU)
stage engines-v2-systemd tools/engines/v2-systemd.sh
# the OCI runtime-tools validation suite (built once from ../shared/conformance, cached);
# fails on any failure outside its expected list (host limits, test bugs); ~1-2 min
stage conformance tests/conformance/run.sh
# Kubernetes pods through containerd's CRI plugin on the pyruntime handler with Debian's CNI
# bridge + host-local + loopback (tests/engines/test_cri_cni.py) in the v2 guest booted with
# systemd, SystemdCgroup = true (the host's run is in the engines stage); ~6 min
stage cri-v2-systemd tools/engines/cri-v2-systemd.sh

# One closing line for the whole run: the pytest counts of every stage added up.
total() { cat "$LOGS"/*.log 2>/dev/null | grep -E '^(=+ )?[0-9]+ (passed|failed)' \
    | grep -oE "[0-9]+ $1" | awk '{s += $1} END {print s + 0}'; }
npass=$(total passed); nfail=$(total failed); nerr=$(total error)
printf '\n==> passed: %s\n' "${passed[*]:-none}"
if ((${#failed[@]})); then
    printf '==> FAILED: %s\n' "${failed[*]}"
    echo "tests: $npass passed, $((nfail + nerr)) failed"
    exit 1
fi
echo "==> all stages passed"
echo "tests: $npass passed, $((nfail + nerr)) failed"
