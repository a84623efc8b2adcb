"""Tests of the test harness itself (fixtures and leak check).

They pass against runc too: PYRT_RUNTIME=runc .venv/bin/python -m pytest tests/test_harness.py
"""
import json
import os
import secrets
import subprocess
import sys
import textwrap

import pytest

import util


def test_run_true(rt, make_bundle, cid):
    b = make_bundle()
    r = rt.ok("run", "--bundle", b.path, cid)
    assert r.stdout == ""
    # run removes the container when its process exits
    assert rt.container_ids() == []


def test_run_output_and_exit_status(rt, make_bundle, cid):
    b = make_bundle(["sh", "-c", "echo hello; cat /etc/hostname; echo oops >&2; exit 3"])
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode == 3
    assert r.stdout == "hello\npyrt\n"
    assert "oops" in r.stderr


def test_bundle_config_and_save(make_bundle):
    b = make_bundle(["/bin/echo", "x"], hostname="h1")
    with open(os.path.join(b.path, "config.json")) as f:
        on_disk = json.load(f)
    assert on_disk["process"]["args"] == ["/bin/echo", "x"]
    assert on_disk["process"]["terminal"] is False
    assert on_disk["hostname"] == "h1"
    assert on_disk["root"] == {"path": "rootfs", "readonly": True}
    b.config["process"]["cwd"] = "/tmp"
    b.save()
    with open(os.path.join(b.path, "config.json")) as f:
        assert json.load(f)["process"]["cwd"] == "/tmp"
    # private copy of the template: busybox and applets present, tmp sticky
    assert os.path.isfile(os.path.join(b.rootfs, "bin", "busybox"))
    assert os.readlink(os.path.join(b.rootfs, "bin", "sh")) == "busybox"
    assert os.stat(os.path.join(b.rootfs, "tmp")).st_mode & 0o7777 == 0o1777
    other = make_bundle()
    assert os.stat(other.rootfs).st_ino != os.stat(b.rootfs).st_ino


def test_create_start_state_delete(rt, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    rt.ok("create", "--bundle", b.path, cid)
    st = rt.state(cid)
    assert st["id"] == cid
    assert st["status"] == "created"
    pid = st["pid"]
    assert util.pid_alive(pid)
    assert os.path.realpath(st["bundle"]) == os.path.realpath(b.path)

    rt.ok("start", cid)
    assert rt.state(cid)["status"] == "running"
    rt.ok("kill", cid, "KILL")
    assert util.wait_for(lambda: rt.state(cid)["status"] == "stopped")
    rt.ok("delete", cid)
    assert rt.container_ids() == []
    r = rt.run("state", cid)
    assert r.returncode != 0
    assert not util.pid_alive(pid)


def test_leftover_container_is_force_deleted(rt, make_bundle, cid, pyrt_ctx):
    # Leaving a running container to the harness is allowed: delete --force is not a leak.
    b = make_bundle(["sleep", "1000"])
    rt.ok("create", "-b", b.path, cid)
    rt.ok("start", cid)
    pid = rt.state(cid)["pid"]
    assert pyrt_ctx.leak_check() == []
    assert not util.pid_alive(pid)
    assert rt.container_ids() == []


def test_leak_check_catches_mount(pyrt_ctx):
    target = os.path.join(pyrt_ctx.dir, "leaked")
    os.mkdir(target)
    subprocess.run(["mount", "-t", "tmpfs", "pyrt-leak-test", target], check=True)
    assert util.mounts_under(target)
    problems = pyrt_ctx.leak_check()
    assert any(target in p and "mount" in p for p in problems), problems
    assert util.mounts_under(target) == []


def test_leak_check_catches_cgroup(pyrt_ctx, cid):
    path = os.path.join("/sys/fs/cgroup/pids", cid)
    os.mkdir(path)
    try:
        problems = pyrt_ctx.leak_check()
        assert any(path in p for p in problems), problems
        assert not os.path.exists(path)
    finally:
        if os.path.exists(path):
            os.rmdir(path)


def test_hung_command_times_out_and_is_cleaned(rt, make_bundle, cid, pyrt_ctx):
    b = make_bundle(["sleep", "1000"])
    with pytest.raises(subprocess.TimeoutExpired):
        rt.run("run", "-b", b.path, cid, timeout=2)
    # The init was recorded from the state dir while the command ran. Make the runtime
    # lose track of it, so that only the harness's own bookkeeping can find it.
    pids = [p for p in pyrt_ctx.pids if util.pid_alive(p)]
    assert pids
    for c in rt.container_ids():
        subprocess.run(["rm", "-rf", os.path.join(rt.root, c)], check=True)
    problems = pyrt_ctx.leak_check()
    assert any("process" in p for p in problems), problems
    assert not any(util.pid_alive(p) for p in pids)
    assert pyrt_ctx.leak_check() == []


def test_container_process_found_by_its_root(rt, make_bundle, cid, pyrt_ctx):
    b = make_bundle(["sleep", "1000"])
    rt.ok("create", "-b", b.path, cid)
    pid = rt.state(cid)["pid"]
    # Forget everything recorded: the process must be found through /proc/PID/root.
    shutil_rm = ["rm", "-rf", os.path.join(rt.root, cid)]
    subprocess.run(shutil_rm, check=True)
    pyrt_ctx.pids.clear()
    problems = pyrt_ctx.leak_check()
    assert any("process %d" % pid in p for p in problems), problems
    assert not util.pid_alive(pid)


INNER = '''
import os, subprocess

def test_clean(pyrt_tmp):
    os.mkdir(os.path.join(pyrt_tmp, "x"))

def test_leaks_mount(pyrt_tmp):
    t = os.path.join(pyrt_tmp, "m")
    os.mkdir(t)
    subprocess.run(["mount", "-t", "tmpfs", "{marker}", t], check=True)

def test_leaks_process(pyrt_tmp):
    p = subprocess.Popen(["sleep", "1000"], cwd=pyrt_tmp, start_new_session=True)
    with open("{pidfile}", "w") as f:
        f.write(str(p.pid))
'''


def test_leak_fails_the_test(pyrt_tmp):
    """End to end: a test that leaks errors out, and the leak is cleaned up."""
    marker = "pyrt-marker-" + secrets.token_hex(4)
    pidfile = os.path.join(pyrt_tmp, "inner.pid")
    d = os.path.join(pyrt_tmp, "inner")
    os.mkdir(d)
    with open(os.path.join(d, "test_inner.py"), "w") as f:
        f.write(textwrap.dedent(INNER.format(marker=marker, pidfile=pidfile)))
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=here)
    # Our conftest loaded as a plugin into a separate pytest session.
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest",
                        "-p", "no:cacheprovider", "--rootdir", d, d],
                       capture_output=True, text=True, env=env, cwd=d, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    # teardown errors: the tests themselves passed, the leak check errored
    assert "3 passed, 2 errors" in out, out
    assert "leak check failed" in out and marker in out, out
    assert all(marker not in m[3] for m in util.mounts()), "leaked mount not cleaned"
    with open(pidfile) as f:
        pid = int(f.read())
    assert not util.pid_alive(pid)
