#!/bin/bash
# run-v2-tests.sh [PYTEST ARGS...] -- run tests/v2 as root inside the cgroup v2-only guest.
# V2_TESTS="PATH..." runs those instead (space-separated); V2_SYSTEMD=1 boots the guest with systemd as PID 1
# (V2_SYSTEMD=1 V2_TESTS=tests/systemd: the systemd cgroup driver's tests).
# Interpreter: $PYRT_PYTHON, else <repo>/.venv/bin/python, else pyenv's 3.11.7 (absolute
# paths only: pyenv shims take ~18 s per start in the guest). Exit code = pytest's
# (124: guest timed out, 125: guest setup failed). Runs setup.sh first if needed.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=${PYRT_PYTHON:-$REPO/.venv/bin/python}
[ -x "$PY" ] || PY=/root/.pyenv/versions/3.11.7/bin/python3
args=""
for a in "$@"; do args+=" $(printf %q "$a")"; done
export V2_TIMEOUT=${V2_TIMEOUT:-600}
cd "$REPO"
exec "$HERE/run-in-v2.sh" "export PYTHONPATH=$(printf %q "$REPO")\${PYTHONPATH:+:\$PYTHONPATH} PYTHONDONTWRITEBYTECODE=1
$(printf %q "$PY") -m pytest -p no:cacheprovider -q ${V2_TESTS:-tests/v2}$args"
