"""checkpoint/restore on a host where criu cannot work (this host's kernel: criu's own
check fails). The commands must say why in one line (criu's check), exit non-zero and
change nothing. The guest tests (tests/criu) cover a kernel where criu works."""
import os
import shutil
import subprocess

import pytest

import util
from test_launcher import _imports_of


def _criu_works():
    # criu's own check, as the runtime asks it (criu missing counts as "cannot work")
    if shutil.which("criu") is None:
        return False
    return subprocess.run(["criu", "check"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=120).returncode == 0


CRIU_WORKS = _criu_works() if os.geteuid() == 0 else True

needs_broken_criu = pytest.mark.skipif(
    CRIU_WORKS, reason="criu works on this kernel (tests/criu covers it)")


def _one_line(r):
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1, (r.returncode, r.stderr)
    return lines[0]


def _says_why(line):
    if shutil.which("criu") is None:
        assert "cannot run criu" in line, line
    else:
        assert "criu cannot checkpoint/restore on this host (criu check: " in line, line


@needs_broken_criu
def test_checkpoint_refused_with_criu_s_reason_and_nothing_changed(rt, make_bundle, cid,
                                                                    pyrt_tmp):
    b = make_bundle(["sleep", "1000"])
    rt.ok("run", "-d", "--bundle", b.path, cid)
    before = rt.state(cid)
    img = os.path.join(pyrt_tmp, "img")
    work = os.path.join(pyrt_tmp, "work")
    for extra in ([], ["--leave-running"], ["--pre-dump"]):
        r = rt.run("checkpoint", "--image-path", img, "--work-path", work, *extra, cid)
        if rt.is_pyruntime:
            _says_why(_one_line(r))
        else:
            assert r.returncode != 0
        # the container runs on as it was; no image or work directory was made (runc
        # 1.1.5 makes them and leaves criu's log there)
        assert rt.state(cid) == before
        if rt.is_pyruntime:
            assert not os.path.exists(img) and not os.path.exists(work)
    os.kill(before["pid"], 0)
    rt.ok("delete", "--force", cid)


@needs_broken_criu
def test_restore_refused_with_criu_s_reason_and_nothing_made(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sleep", "1000"])
    img = os.path.join(pyrt_tmp, "img")
    os.mkdir(img)
    # what a checkpoint would have left beside criu's images
    with open(os.path.join(img, "descriptors.json"), "w") as f:
        f.write('["/dev/null", "/dev/null", "/dev/null"]')
    r = rt.run("restore", "-d", "--image-path", img, "--bundle", b.path, cid)
    if rt.is_pyruntime:
        _says_why(_one_line(r))
    else:
        assert r.returncode != 0
    assert cid not in rt.container_ids()
    assert rt.run("state", cid).returncode != 0
    if rt.is_pyruntime:   # runc 1.1.5 leaves criu's restore.log in the image directory
        assert sorted(os.listdir(img)) == ["descriptors.json"]


def test_checkpoint_of_a_missing_container_needs_no_criu(rt, cid, pyrt_tmp):
    r = rt.run("checkpoint", "--image-path", os.path.join(pyrt_tmp, "img"), cid)
    assert r.returncode != 0 and "does not exist" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(pyrt_tmp, "img"))


def test_criu_bindings_are_imported_only_by_checkpoint_and_restore(rt, make_bundle, cid,
                                                                   pyrt_tmp):
    """pycriu and protobuf cost tens of milliseconds: no other command loads them."""
    if not rt.is_pyruntime or not os.path.exists(rt.cmd[0] + "-entry"):
        pytest.skip("checks pyruntime's own launcher")
    b = make_bundle(["sleep", "1000"])
    criu_mods = ("pycriu", "pycriu.rpc_pb2", "google.protobuf", "pyruntime.criu")
    steps = [
        (["features"], 0),
        (["create", "--bundle", b.path, cid], 0),
        (["start", cid], 0),
        (["state", cid], 0),
        (["pause", cid], 0),
        (["resume", cid], 0),
        (["ps", cid], 0),
        (["kill", cid, "KILL"], 0),
        (["delete", "--force", cid], 0),
        (["checkpoint", "--help"], 0),
        (["restore", "--help"], 0),
    ]
    for args, want in steps:
        mods, rc = _imports_of(rt, args, pyrt_tmp)
        assert rc == want, args
        assert "pyruntime.cli" in mods, (args, sorted(mods))
        assert not [m for m in mods if m in criu_mods], (args, sorted(m for m in mods
                                                                      if m in criu_mods))
        if args[0] == "delete":
            assert util.wait_for(lambda: cid not in rt.container_ids(), 10)
    # the probe sees the bindings where they are used: checkpoint asks criu through them
    b2 = make_bundle(["sleep", "1000"])
    rt.ok("run", "-d", "--bundle", b2.path, cid)
    mods, rc = _imports_of(rt, ["checkpoint", "--image-path",
                                os.path.join(pyrt_tmp, "img"), cid], pyrt_tmp)
    assert "pyruntime.criu" in mods and "pycriu.rpc_pb2" in mods, sorted(mods)
    assert rc == (0 if CRIU_WORKS else 1)
    if not CRIU_WORKS:
        rt.ok("delete", "--force", cid)


def test_features_say_checkpoint_needs_criu_and_its_kernel(rt):
    import json
    doc = json.loads(rt.ok("features").stdout)
    ann = doc["annotations"]
    assert ann["org.opencontainers.runc.checkpoint.enabled"] == (
        "true" if shutil.which("criu") else "false")
    if rt.is_pyruntime:
        assert "criu check" in ann["io.github.pyruntime.checkpoint"]
        # without criu on PATH the runtime says it cannot checkpoint
        r = rt.run("features", env=dict(os.environ, PATH="/nonexistent"))
        assert json.loads(r.stdout)["annotations"][
            "org.opencontainers.runc.checkpoint.enabled"] == "false"


def test_stdio_on_the_host_s_dev_null_is_reopened_on_the_container_s(rt, make_bundle, cid):
    """Engines (conmon, containerd's shim) hand a detached container the host's /dev/null
    as stdio. criu cannot dump an fd whose mount is not in the container ("Can't lookup
    mount"), so the init reopens such fds on the container's own /dev/null, as runc does."""
    b = make_bundle(["sleep", "1000"])
    with open(os.devnull, "r+b") as nul:
        rt.ok("run", "-d", "--bundle", b.path, cid, stdin=nul, stdout=nul, stderr=nul)
    pid = rt.state(cid)["pid"]
    with open("/proc/%d/mountinfo" % pid) as f:
        dev = [ln.split()[0] for ln in f if ln.split()[4] == "/dev"]
    ids = []
    for fd in range(3):
        with open("/proc/%d/fdinfo/%d" % (pid, fd)) as f:
            ids += [ln.split()[1] for ln in f if ln.startswith("mnt_id:")]
        assert os.readlink("/proc/%d/fd/%d" % (pid, fd)) == "/dev/null"
    rt.ok("delete", "--force", cid)
    assert len(dev) == 1 and ids == dev * 3, (dev, ids)
