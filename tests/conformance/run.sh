#!/bin/bash
# The conformance stage: the OCI runtime-tools validation suite against the runtime under
# test (RUNTIME, else PYRT_RUNTIME, else `pyruntime`). The suite is built once from
# ../shared/conformance/ beside the checkout and cached (build.sh).
#
#   tests/conformance/run.sh                       every test against pyruntime
#   tests/conformance/run.sh linux_ns_path -v      one test, its TAP printed
#   RUNTIME=runc tests/conformance/run.sh          the same against runc
#   tests/conformance/run.sh --compare             both, and a table of both
set -uo pipefail
REPO=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
start=$SECONDS
tree=$("$REPO/tests/conformance/build.sh")
rc=$?
if ((rc == 3)); then
    echo "conformance: SKIPPED: the suite's source (shared/conformance beside the checkout) is absent"
    exit 0
elif ((rc != 0)); then
    echo "conformance: building the suite failed" >&2
    exit 1
fi
PY=$REPO/.venv/bin/python
[[ -x $PY ]] || PY=python3
"$PY" "$REPO/tests/conformance/run.py" --tree "$tree" "$@"
rc=$?
echo "conformance: stage took $((SECONDS - start)) s"
exit $rc
