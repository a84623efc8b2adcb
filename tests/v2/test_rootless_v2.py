"""Rootless on a cgroup v2 host with a delegated subtree (what systemd gives a user
session): an ordinary user creates the container's cgroup inside its delegation, with
limits, and delete removes it. Runs in the qemu guest like the rest of tests/v2."""
import json
import os

import pytest

import util
from test_rootless import ruser, _have_tools  # noqa: F401 (fixture)

CG = "/sys/fs/cgroup"


pytestmark = pytest.mark.skipif(not util.cgroup2_unified(CG) or not _have_tools(),
                                reason="needs root on a cgroup v2-only host")


@pytest.fixture
def delegation(ruser, cid):
    """A cgroup owned by the user, as systemd delegates one: the user's processes live in
    its `runtime` child, containers go beside it."""
    top = os.path.join(CG, "pyrt-deleg-" + cid)
    os.mkdir(top)
    try:
        with open(os.path.join(CG, "cgroup.subtree_control"), "w") as f:
            f.write("+pids +memory")
        with open(os.path.join(top, "cgroup.subtree_control"), "w") as f:
            f.write("+pids +memory")
        home = os.path.join(top, "runtime")
        os.mkdir(home)
        for d in (top, home):
            for n in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
                os.chown(os.path.join(d, n), ruser.uid, ruser.gid)
        yield top
    finally:
        for cur, _dirs, _files in sorted(os.walk(top), key=lambda x: -x[0].count("/")):
            try:
                os.rmdir(cur)
            except OSError:
                pass


def test_rootless_container_in_delegated_cgroup(ruser, delegation):
    home = os.path.join(delegation, "runtime")
    assert ruser.run("spec", "--rootless", cgroup=home).returncode == 0
    path = os.path.join(ruser.bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["sleep", "300"]
    cfg["process"]["terminal"] = False
    leaf = "/" + os.path.basename(delegation) + "/c1"
    cfg["linux"]["cgroupsPath"] = leaf
    cfg["linux"]["resources"] = {"pids": {"limit": 20}, "memory": {"limit": 64 << 20}}
    with open(path, "w") as f:
        json.dump(cfg, f)
    r = ruser.run("run", "-d", "c1", cgroup=home)
    assert r.returncode == 0, r.stderr
    d = CG + leaf
    try:
        pid = json.loads(ruser.run("state", "c1", cgroup=home).stdout)["pid"]
        with open("/proc/%d/cgroup" % pid) as f:
            assert f.read().strip() == "0::" + leaf
        with open(os.path.join(d, "pids.max")) as f:
            assert f.read().strip() == "20"
        with open(os.path.join(d, "memory.max")) as f:
            assert f.read().strip() == str(64 << 20)
        assert os.stat(d).st_uid == ruser.uid
    finally:
        r = ruser.run("delete", "-f", "c1", cgroup=home)
        assert r.returncode == 0, r.stderr
    assert not os.path.exists(d)
