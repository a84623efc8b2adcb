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


def test_library_takes_cache_dir_and_listen_fds_as_arguments(rt, make_bundle, cid, pyrt_tmp):
    """The caller's environment is the CLI's to read: the library caches where it is told
    and passes the socket-activation fds it is told of, whatever the environment says."""
    if not rt.is_pyruntime:
        import pytest
        pytest.skip("pyruntime's library API")
    b = make_bundle(["sh", "-c", "echo fds=${LISTEN_FDS:-none}"])
    arg_cache, env_cache = (os.path.join(pyrt_tmp, n) for n in ("arg-cache", "env-cache"))
    p = _py("""
        import os, pyruntime
        os.environ.update(PYRUNTIME_CACHE_DIR=%r, LISTEN_PID=str(os.getpid()), LISTEN_FDS="1")
        fd = os.open("/dev/null", os.O_RDONLY)
        if fd != 3:
            os.dup2(fd, 3)
        rt = pyruntime.Runtime(%r, cache_dir=%r)
        print("exit", rt.run(%r, %r), flush=True)
        rt = pyruntime.Runtime(%r, cache_dir=None, listen_fds=1)
        print("exit", rt.run(%r + "-2", %r), flush=True)
    """ % (env_cache, rt.root, arg_cache, cid, b.path, rt.root, cid, b.path), timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["fds=none", "exit", "0", "fds=1", "exit", "0"]
    assert os.path.isdir(os.path.join(arg_cache, "config"))
    assert not os.path.exists(env_cache)
