#!/bin/bash
# The engines stage: install the engines, then run tests/engines (each module starts its
# engine under a temp dir and stops it). Extra arguments go to pytest.
set -uo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
cd "$REPO"
start=$SECONDS
tools/engines/install.sh || { echo "engines: install failed" >&2; exit 1; }
# tests/engines/v2 needs the guest booted with systemd (stage engines-v2-systemd)
PYRT_ENGINES=1 .venv/bin/python -m pytest tests/engines -q -p no:cacheprovider \
    --ignore=tests/engines/v2 "$@"
rc=$?
echo "engines: stage took $((SECONDS - start)) s"
exit $rc
