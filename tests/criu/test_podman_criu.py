"""podman `container checkpoint` / `container restore` with pyruntime as its runtime, in the
qemu cgroup v2 guest (criu works there). podman runs as in tests/engines/test_podman.py
(a sandbox's containers.conf/storage.conf, a wrapper that gives pyruntime a --root in the
sandbox); storage is vfs because the guest's / is an overlayfs. The container's stdout is
conmon's pipe: the restore hands criu new pipes from conmon (descriptors.json)."""
import os
import sys

import pytest

import util

ENGINES = os.path.join(util.REPO, "tests", "engines")
sys.path.insert(0, ENGINES)
import daemons  # noqa: E402
import engutil  # noqa: E402
import test_podman  # noqa: E402

MODULES = os.path.join(util.REPO, "tools", "cgroup-v2-vm", "criu-modules.sh")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0 or not util.cgroup2_unified(),
                       reason="criu works only in the cgroup v2 guest's kernel"),
    pytest.mark.skipif(engutil.have("podman", "conmon") is not None,
                       reason="podman is not installed (tools/engines/install.sh)"),
]

COUNTER = "i=0; while :; do i=$((i+1)); echo $i; sleep 0.2; done"


@pytest.fixture(scope="module")
def podman():
    import subprocess
    subprocess.run([MODULES, "load"], check=True)
    sb = engutil.Sandbox("pcr")
    conf = daemons.STORAGE_CONF   # the podman set-up lives in tests/engines/daemons.py
    try:
        daemons.STORAGE_CONF = conf.replace('"overlay"', '"vfs"')
        yield test_podman.Podman(sb, engutil.Images(sb))
    finally:
        daemons.STORAGE_CONF = conf
        sb.cleanup()


def numbers(p, name):
    out = p.ok("logs", name).stdout.split()
    return [int(x) for x in out if x.isdigit()]


def test_podman_checkpoint_and_restore(podman):
    name = "crcount"
    podman.ok("run", "-d", "--name", name, podman.image, "sh", "-c", COUNTER)
    try:
        assert engutil.wait_for(lambda: len(numbers(podman, name)) >= 3, 60, 0.2)
        podman.ok("container", "checkpoint", name)
        st = podman.inspect(name)["State"]
        assert st["Status"] == "exited" and st["Checkpointed"], st
        before = numbers(podman, name)
        # the runtime's own state: the checkpointed container is gone (as under runc)
        r = podman("container", "restore", name)
        assert r.returncode == 0, r.stderr
        assert podman.inspect(name)["State"]["Status"] == "running"
        last = before[-1]
        assert engutil.wait_for(lambda: numbers(podman, name)[-1] >= last + 3, 60, 0.2)
        got = numbers(podman, name)
        # the counter resumed where it stopped: no restart from 1
        assert got[len(before)] == last + 1, (before[-3:], got[len(before) - 2:len(before) + 3])
    finally:
        podman("rm", "-f", "-t", "0", name)
