"""Rootless on a cgroup v2 host with a delegated subtree (what systemd gives a user
session): an ordinary user creates the container's cgroup inside its delegation, with
limits, and delete removes it. Runs in the qemu guest like the rest of tests/v2."""
import json
import os
import subprocess
import sys
import tempfile

import pytest

import util
from test_rootless import ruser, SYS_PY, USER, _have_tools  # noqa: F401 (fixture)

CG = "/sys/fs/cgroup"


def _unified():
    with open("/proc/self/mountinfo") as f:
        return any(l.split(" - ")[0].split()[4] == CG and l.split(" - ")[1].split()[0] == "cgroup2"
                   for l in f)


pytestmark = pytest.mark.skipif(not _unified() or not _have_tools(),
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


def _run_in(ruser, cgroup, *args):
    """The user's pyruntime, started inside `cgroup` (root moves the shell, then drops)."""
    site = [p for p in sys.path if p.endswith("site-packages") and p.startswith(util.REPO)]
    env = {"XDG_RUNTIME_DIR": ruser.xdg, "HOME": "/", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": ":".join([util.REPO] + site)}
    argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup,
            "runuser", "-u", USER, "--", "env"] + ["%s=%s" % kv for kv in env.items()] + \
        [SYS_PY, "-m", "pyruntime"] + list(args)
    with tempfile.TemporaryFile("w+") as o, tempfile.TemporaryFile("w+") as e:
        p = subprocess.run(argv, cwd=ruser.bundle, stdout=o, stderr=e,
                           stdin=subprocess.DEVNULL, timeout=120)
        o.seek(0)
        e.seek(0)
        return subprocess.CompletedProcess(argv, p.returncode, o.read(), e.read())


def test_rootless_container_in_delegated_cgroup(ruser, delegation):
    home = os.path.join(delegation, "runtime")
    assert _run_in(ruser, home, "spec", "--rootless").returncode == 0
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
    r = _run_in(ruser, home, "run", "-d", "c1")
    assert r.returncode == 0, r.stderr
    d = CG + leaf
    try:
        pid = json.loads(_run_in(ruser, home, "state", "c1").stdout)["pid"]
        with open("/proc/%d/cgroup" % pid) as f:
            assert f.read().strip() == "0::" + leaf
        with open(os.path.join(d, "pids.max")) as f:
            assert f.read().strip() == "20"
        with open(os.path.join(d, "memory.max")) as f:
            assert f.read().strip() == str(64 << 20)
        assert os.stat(d).st_uid == ruser.uid
    finally:
        r = _run_in(ruser, home, "delete", "-f", "c1")
        assert r.returncode == 0, r.stderr
    assert not os.path.exists(d)
