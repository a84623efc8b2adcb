#!/bin/bash
# Install what the tests need, then run every stage of the suite.
#
#   ./run-tests.sh                 all stages
#   ./run-tests.sh -k lifecycle    extra arguments go to pytest (the pytest, pytest-nofast and wheel stages)
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

# tests/v2 and tests/systemd run in the qemu guest below (on this host they would only skip)
stage pytest "$VPY" -m pytest tests -q -p no:cacheprovider --ignore=tests/v2 --ignore=tests/systemd "$@"
# the same suite with the launcher's fast path off (PYRT_FASTPATH=0): the Python path of
# start/state/kill/delete, which every unusual case takes, stays covered end to end; ~5 min
stage pytest-nofast env PYRT_FASTPATH=0 "$VPY" -m pytest tests -q -p no:cacheprovider \
    --ignore=tests/v2 --ignore=tests/systemd "$@"
# sdist + wheel built as pip builds them, checked against the package tree, the wheel in a
# fresh venv under /tmp, and the same host suite against that install's `pyruntime`
# without the checkout (tools/test-installed-wheel.sh); ~30 s plus the suite
stage wheel tools/test-installed-wheel.sh "$@"
stage bench-smoke "$VPY" bench/bench.py --smoke

# tests/v2 (library + real containers through the CLI) in the qemu cgroup v2-only guest;
# ~2 min (boot ~5 s, the rest is the emulated guest's Python start-ups)
stage cgroup-v2 tools/cgroup-v2-vm/run-v2-tests.sh
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
# containerd (ctr + CRI), podman and dockerd from Debian's packages, each started under a
# temp dir, running their containers on pyruntime; ~1 min (+~30 s first apt install)
stage engines tests/engines/run.sh
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
