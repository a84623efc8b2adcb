"""Engine tests: containerd, podman, Docker and the CRI running containers on pyruntime.

Not part of the main `pytest tests` run (they need the engine packages and take a few
minutes): collected only when tests/engines is named on the command line or PYRT_ENGINES=1
is set. Run them with tests/engines/run.sh (installs the packages first). The engines run
the runtime in PYRT_RUNTIME (`PYRT_RUNTIME=runc` works too), else the pyruntime beside the
python running the tests (engutil.PYRUNTIME).

Fixtures:
- `images` (session): a busybox rootfs, its plain tar (`docker import`/`podman import`) and a
  two-layer image archive that is both an OCI layout and a docker-archive
  (`ctr images import`, `docker load`, `podman load`); the image is `pyrt/busybox:1`,
  its second layer adds /etc/layer2.
- `sandbox(name)` factory (module scope, in each module): engutil.Sandbox, cleaned up and
  leak-checked at teardown.

Each engine's configuration and start-up (containerd, dockerd, podman) is daemons.py's,
which bench/bench.py uses too.
"""
import os

import pytest

import engutil

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_ignore_collect(collection_path, config):
    if os.environ.get("PYRT_ENGINES") == "1":
        return None
    p = str(collection_path)
    if not (p == HERE or p.startswith(HERE + os.sep)):
        return None
    for a in config.invocation_params.args:
        a = os.path.abspath(str(a).split("::")[0])
        if a == HERE or a.startswith(HERE + os.sep):
            return None
    return True


@pytest.fixture(scope="session")
def images():
    sb = engutil.Sandbox("img")
    try:
        yield engutil.Images(sb)
    finally:
        sb.cleanup()
