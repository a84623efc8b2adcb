"""The Python library API (`import pyruntime`), driven from a separate interpreter so the
test process stays single-threaded and its fds are not the container's business."""
import json
import os
import subprocess
import sys
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _py(code, timeout=60):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env, stdin=subprocess.DEVNULL)


def test_lifecycle_through_the_library(rt, make_bundle, cid, pyrt_tmp):
    if not rt.is_pyruntime:
        import pytest
        pytest.skip("pyruntime's library API")
    b = make_bundle(["sh", "-c", "echo lib-ok > /tmp/out; sleep 100"])
    b.config["root"]["readonly"] = False
    b.save()
    p = _py("""
        import json, pyruntime
        rt = pyruntime.Runtime(%r)
        pid = rt.create(%r, %r)
        s1 = rt.state(%r)
        rt.start(%r)
        s2 = rt.state(%r)
        code = rt.exec(%r, {"args": ["sh", "-c", "for i in $(seq 100); do [ -s /tmp/out ] && break; sleep 0.05; done; cat /tmp/out; exit 3"], "cwd": "/",
                            "env": ["PATH=/bin"]})
        rt.kill(%r, "SIGKILL")
        import time
        for _ in range(200):
            if rt.state(%r)["status"] == "stopped":
                break
            time.sleep(0.01)
        s3 = rt.state(%r)
        rt.delete(%r)
        try:
            rt.state(%r)
            gone = False
        except pyruntime.RuntimeErr as e:
            gone = str(e)
        print(json.dumps([pid, s1, s2, s3, gone, code]))
    """ % ((rt.root,) + (cid, b.path) + (cid,) * 9))
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out[0] == "lib-ok"  # the exec'd process's output: inherited stdout
    pid, s1, s2, s3, gone, code = json.loads(out[-1])
    assert code == 3
    assert pid > 0 and s1["pid"] == pid and s1["status"] == "created"
    assert s2["status"] == "running"
    assert s3["status"] == "stopped"
    assert gone == "container does not exist"


def test_create_from_a_threaded_program(rt, make_bundle, cid):
    """A container made by a program that has other threads running: the init is cloned
    from a multi-threaded process, and changing its uid must not wait for threads it does
    not have (glibc's setxid broadcast would hang forever)."""
    if not rt.is_pyruntime:
        import pytest
        pytest.skip("pyruntime's library API")
    b = make_bundle(["id", "-u"])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.save()
    p = _py("""
        import threading, time, pyruntime
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        rt = pyruntime.Runtime(%r)
        code = rt.run(%r, %r)
        print("exit", code)
    """ % (rt.root, cid, b.path), timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1000", "exit", "0"]
