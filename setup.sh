#!/bin/bash
# Set up a fresh Debian 12 machine for pyruntime and run a demo container.
#
#   ./setup.sh              system packages, .venv, editable install (builds the C
#                           executor), /usr/local/bin/pyruntime, then a demo container
#   ./setup.sh --no-demo    everything but the demo (run-tests.sh uses this)
#
# Idempotent: every step checks first, so a second run takes about a second. A change
# under csrc/ (or to setup.py / pyproject.toml) triggers a rebuild of the extension.
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
cd "$REPO"

DEMO=1
for arg in "$@"; do
    case $arg in
        --no-demo) DEMO=0 ;;
        -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup.sh: unknown option: $arg" >&2; exit 2 ;;
    esac
done

say() { printf '==> %s\n' "$*"; }
die() { printf 'setup.sh: %s\n' "$*" >&2; exit 1; }
# Run quietly; show the output only when the command fails.
quiet() {
    local log
    log=$(mktemp /tmp/pyrt-setup-XXXXXX.log)
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        die "failed: $*"
    fi
    rm -f "$log"
}

[ "$(id -u)" = 0 ] || die "must run as root (containers need it)"

# --- 1. system packages ---------------------------------------------------------------
# criu (with python3-protobuf): checkpoint/restore drive it through its RPC messages (pycriu)
# musl-tools: the launcher and the init stub are static musl programs where it is there
# (csrc/muslcc.py)
PKGS=(busybox-static runc libseccomp-dev pkg-config gcc musl-tools uidmap iproute2 tmux criu)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    say "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Update only when there are no package lists, or when an install from stale lists fails.
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        quiet apt-get update
    fi
    if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >/tmp/pyrt-apt.log 2>&1; then
        quiet apt-get update
        quiet apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    rm -f /tmp/pyrt-apt.log
else
    say "apt: packages present"
fi

# --- 2. python + venv -----------------------------------------------------------------
# python3 on PATH is a slow pyenv shim: resolve the real interpreter once, then use paths.
PY=${PYRT_PYTHON:-}
if [ -z "$PY" ]; then
    if [ -x /root/.pyenv/versions/3.11.7/bin/python3 ]; then
        PY=/root/.pyenv/versions/3.11.7/bin/python3
    else
        PY=$(python3 -c 'import sys; print(sys.executable)')
    fi
fi
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PY: Python >= 3.11 needed"

VPY=$REPO/.venv/bin/python
if ! { [ -x "$VPY" ] && "$VPY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }; then
    say "venv: creating .venv with $PY"
    rm -rf .venv
    quiet "$PY" -m venv .venv
else
    say "venv: .venv present"
fi

if ! "$VPY" -c 'import cffi, jsonschema, jeepney, pytest, hypothesis, wheel, build' 2>/dev/null; then
    say "pip: installing cffi jsonschema jeepney pytest hypothesis wheel build"
    # wheel: setuptools < 70.1 needs it for the editable wheel (no build isolation below).
    # build: the sdist and wheel of run-tests.sh's wheel stage (tools/test-installed-wheel.sh).
    # jeepney: the systemd cgroup driver's D-Bus client (imported only with --systemd-cgroup).
    quiet "$VPY" -m pip install -q cffi jsonschema jeepney pytest hypothesis wheel build
fi

# --- 3. editable install + C extension ------------------------------------------------
# The stamp covers everything the build reads; without a change nothing is rebuilt.
build_stamp() {
    {
        cat setup.py pyproject.toml
        if [ -d csrc ]; then
            find csrc -type f ! -name '*.o' ! -name '*.so' ! -path '*/__pycache__/*' -print0 \
                | sort -z | xargs -0 -r sha256sum
        fi
        "$VPY" -c 'import sys; print(sys.version)'
        command -v musl-gcc || true   # the init stub's C library (setup.py)
        echo "editable_mode=compat"
    } | sha256sum | cut -d' ' -f1
}
# Import from / so the repo dir on sys.path cannot mask a broken install.
check_import() {
    (cd / && "$VPY" -c '
import os, sys, pyruntime, pyruntime._executor as e
repo = sys.argv[1]
assert os.path.realpath(pyruntime.__file__).startswith(repo + "/"), pyruntime.__file__
assert os.path.realpath(e.__file__).startswith(repo + "/"), e.__file__
' "$REPO") 2>/dev/null
}

STAMP_FILE=.venv/.pyrt-build-stamp
stamp=$(build_stamp)
if [ "$(cat "$STAMP_FILE" 2>/dev/null)" = "$stamp" ] && check_import; then
    say "build: up to date"
else
    [ -f csrc/executor_build.py ] || die "csrc/executor_build.py is missing: the core is not in this checkout"
    say "build: pip install -e . (builds pyruntime._executor)"
    rm -f "$STAMP_FILE"
    # No build isolation: the venv already has setuptools/wheel/cffi, and it is much faster.
    # compat mode: a plain path entry in a .pth; the default mode installs an import hook
    # that every Python start-up (so every pyruntime command) pays for (pathlib, re, ...).
    quiet "$VPY" -m pip install -q --no-build-isolation --config-settings editable_mode=compat -e .
    if ! check_import; then
        # Older setuptools may not build extensions of an editable install in place.
        say "build: build_ext --inplace"
        quiet "$VPY" setup.py -q build_ext --inplace
    fi
    check_import || {
        (cd / && "$VPY" -c 'import pyruntime._executor') || true
        die "pyruntime._executor is not importable from .venv"
    }
    echo "$stamp" >"$STAMP_FILE"
fi

# The editable install put setup.py's launcher in .venv/bin, whose entry script only finds
# the package through site (an editable install is not in site-packages): the entry this
# writes names the directories, and picks the faster distribution python when it can
# (python -IS, fixed sys.path, precompiled bytecode): start-up is on every container start.
quiet "$VPY" -m pyruntime.install_launcher "$REPO/.venv/bin/pyruntime"
if [ "$(readlink /usr/local/bin/pyruntime 2>/dev/null)" != "$REPO/.venv/bin/pyruntime" ]; then
    say "link: /usr/local/bin/pyruntime -> .venv/bin/pyruntime"
    ln -sfn "$REPO/.venv/bin/pyruntime" /usr/local/bin/pyruntime
fi
[ -x /usr/local/bin/pyruntime ] || die ".venv/bin/pyruntime missing (console script not installed)"

# --- 4. demo --------------------------------------------------------------------------
if ((DEMO)); then
    say "demo: building a busybox bundle in .cache/demo"
    D=$REPO/.cache/demo
    ID=pyrt-demo-$$
    cleanup_demo() {
        timeout -k 5 30 /usr/local/bin/pyruntime delete --force "$ID" >/dev/null 2>&1 || true
        # After a runtime failure: the cgroups named after this demo's id are ours.
        local cg
        find /sys/fs/cgroup -depth -type d -name "$ID" 2>/dev/null | while read -r cg; do
            xargs -r kill -9 <"$cg/cgroup.procs" 2>/dev/null || true
            rmdir "$cg" 2>/dev/null || { sleep 0.2; rmdir "$cg" 2>/dev/null; } || true
        done
        if ! grep -q " $D/" /proc/self/mountinfo; then rm -rf "$D"; fi
    }
    # Never rm -rf through a mount a broken earlier run may have left there.
    ! grep -q " $D/" /proc/self/mountinfo || die "mounts remain under $D: unmount them first"
    trap cleanup_demo EXIT
    rm -rf "$D"
    mkdir -p "$D"
    "$VPY" tools/mkrootfs.py "$D/rootfs"
    (cd "$D" && /usr/local/bin/pyruntime spec)
    "$VPY" - "$D/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
with open(path) as f:
    c = json.load(f)
c["process"]["args"] = ["sh", "-c", "echo Hello from pyruntime; uname -n"]
c["process"]["terminal"] = False
with open(path, "w") as f:
    json.dump(c, f, indent=2)
EOF
    say "demo: pyruntime run -b .cache/demo $ID"
    rc=0
    # -k: `run` forwards SIGTERM to the container, which may ignore it
    timeout -k 5 60 /usr/local/bin/pyruntime run -b "$D" "$ID" </dev/null || rc=$?
    cleanup_demo
    trap - EXIT
    ((rc == 0)) || die "demo container failed (exit $rc)"
    say "demo: ok"
fi
say "done"
