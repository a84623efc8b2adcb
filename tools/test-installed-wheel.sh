#!/bin/bash
# The `wheel` stage of run-tests.sh: pyruntime as a user installs it, tested without the
# checkout.
#
#   tools/test-installed-wheel.sh [pytest args...]
#
# 1. `python -m build`: the sdist, then the wheel built from the unpacked sdist, each in
#    pip's build isolation (pyproject's build requirements from the package index).
# 2. tools/check_wheel.py: both hold the whole package tree, the cffi modules and the
#    compiled `pyruntime` launcher.
# 3. A fresh venv under /tmp with the wheel installed (dependencies from the index), next
#    to a copy of tests/, spec-fixtures/, tools/mkrootfs.py, csrc/launcher.c (+texts.h) and
#    pyproject.toml only: no pyruntime/ anywhere the tests or the runtime could import from.
# 4. The host suite (as run-tests.sh's pytest stage) with PYRT_RUNTIME=<venv>/bin/pyruntime
#    and the venv's python running pytest, so the library tests import the installed
#    package too. tests/test_packaging.py is left out: it builds from the checkout, which
#    is what this stage replaces.
# Uses .venv (setup.sh) for the build; ~20 s plus the suite's time.
set -euo pipefail

REPO=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
VPY=$REPO/.venv/bin/python
WORK=$(mktemp -d /tmp/pyrt-wheel-XXXXXX)
# never rm -rf through a mount a failed test may have left below
cleanup() {
    if grep -q " $WORK/" /proc/self/mountinfo; then
        echo "wheel: mounts remain under $WORK: not removing it" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
# the rootless tests' user runs the installed package from here with the system python3
chmod 755 "$WORK"

say() { printf '==> wheel: %s\n' "$*"; }

say "python -m build (sdist, then the wheel from it)"
"$VPY" -m build --outdir "$WORK/dist" "$REPO" >"$WORK/build.log" 2>&1 || {
    tail -n 40 "$WORK/build.log" >&2
    echo "wheel: python -m build failed" >&2
    exit 1
}
WHEEL=$(echo "$WORK"/dist/pyruntime-*.whl)
SDIST=$(echo "$WORK"/dist/pyruntime-*.tar.gz)
"$VPY" "$REPO/tools/check_wheel.py" "$WHEEL" "$SDIST"

SRC=$WORK/src
say "copying the tests to $SRC"
mkdir -p "$SRC/tools" "$SRC/csrc"
cp -a "$REPO/tests" "$REPO/spec-fixtures" "$REPO/pyproject.toml" "$SRC/"
cp -a "$REPO/tools/mkrootfs.py" "$SRC/tools/"
cp -a "$REPO/csrc/launcher.c" "$REPO/csrc/texts.h" "$SRC/csrc/"   # tests/test_launcher.py compiles it alone
find "$SRC" -name __pycache__ -prune -exec rm -rf {} +
# the upstream OCI schemas tests/test_config.py looks for beside the checkout
if [ -d "$REPO/../shared" ]; then ln -s "$(readlink -f "$REPO/../shared")" "$WORK/shared"; fi

# the venv inside the copy: tests/test_rootless.py puts site-packages below the tests'
# top directory on the unprivileged user's PYTHONPATH
V=$SRC/.venv
BASE=$("$VPY" -c 'import sys; print(sys._base_executable)')
say "venv $V ($BASE), pip install $(basename "$WHEEL") pytest hypothesis"
"$BASE" -m venv "$V"
"$V/bin/pip" install -q --disable-pip-version-check "$WHEEL" pytest hypothesis

# the command is the C launcher, and it and the library import from the venv only
head -c 4 "$V/bin/pyruntime" | grep -q ELF || { echo "wheel: bin/pyruntime is not the C launcher" >&2; exit 1; }
(cd / && "$V/bin/pyruntime" --version)
(cd "$SRC" && "$V/bin/python" -c '
import sys, pyruntime, pyruntime._executor
site = sys.argv[1] + "/lib/python%d.%d/site-packages/pyruntime/" % sys.version_info[:2]
for m in (pyruntime, pyruntime._executor):
    assert m.__file__.startswith(site), (m.__file__, site)
' "$V")

say "pytest tests against $V/bin/pyruntime"
cd "$SRC"
PYRT_RUNTIME=$V/bin/pyruntime "$V/bin/python" -m pytest tests -q -p no:cacheprovider \
    --ignore=tests/v2 --ignore=tests/systemd --ignore=tests/criu --ignore=tests/test_packaging.py "$@"
