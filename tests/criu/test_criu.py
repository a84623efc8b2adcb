"""checkpoint and restore through criu, in the qemu cgroup v2 guest (criu does not work on
this host's kernel; tests/test_checkpoint.py checks the refusal there). The same tests run
against runc 1.1.5 with PYRT_RUNTIME=runc (V2_PASSENV=PYRT_RUNTIME).

    tools/cgroup-v2-vm/criu-modules.sh fetch      # once, on the host
    V2_TESTS=tests/criu tools/cgroup-v2-vm/run-v2-tests.sh

The guest is ~30x slower than the host: each test keeps to a few runtime commands."""
import json
import os
import shutil
import socket
import subprocess
import time

import pytest

import util

HERE = os.path.dirname(os.path.abspath(__file__))
MODULES = os.path.join(util.REPO, "tools", "cgroup-v2-vm", "criu-modules.sh")

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not util.cgroup2_unified(),
                                reason="criu works only in the cgroup v2 guest's kernel")

# the counter writes its value into the rootfs (the same directory before and after a
# restore); stdio goes to the container's /dev/null at once, so criu meets no host file
COUNTER = ("exec </dev/null >/dev/null 2>&1; i=0; while :; do i=$((i+1)); "
           "echo $i > /count.tmp; mv /count.tmp /count; sleep 0.2; done")


@pytest.fixture(scope="module", autouse=True)
def _criu_modules():
    # socket diag, tun/veth, netfilter and autofs4: modules of the guest's kernel
    subprocess.run([MODULES, "load"], check=True)


def count(b):
    try:
        with open(os.path.join(b.rootfs, "count")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def wait_count(b, n, timeout=60):
    assert util.wait_for(lambda: count(b) >= n, timeout, 0.1), "counter at %d, not %d" % (count(b), n)
    return count(b)


def start_counter(rt, make_bundle, cid, script=COUNTER, linux=None, caps=()):
    b = make_bundle(["sh", "-c", script])
    b.config["root"]["readonly"] = False
    for k in ("bounding", "effective", "permitted"):
        b.config["process"]["capabilities"][k].extend(caps)
    b.config["linux"].update(linux or {})
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid)
    wait_count(b, 2)
    return b


def test_counter_resumes_under_a_new_id(rt, make_bundle, cid, pyrt_tmp):
    b = start_counter(rt, make_bundle, cid)
    img = os.path.join(pyrt_tmp, "img")
    rt.ok("checkpoint", "--image-path", img, cid)
    # runc destroys the checkpointed container: its processes are gone, its id is free
    r = rt.run("state", cid)
    assert r.returncode != 0 and "does not exist" in r.stderr, (r.stdout, r.stderr)
    rt.ok("delete", "--force", cid)
    v = count(b)
    time.sleep(1)
    assert count(b) == v, "the counter kept counting after checkpoint"
    new = cid + "-r"
    # a failed restore leaves nothing: no state, cgroup, mount or process (the leak check)
    bad = os.path.join(pyrt_tmp, "bad")
    shutil.copytree(img, bad)
    cores = [f for f in os.listdir(bad) if f.startswith("core-")]
    assert cores, os.listdir(bad)
    for f in cores:
        with open(os.path.join(bad, f), "r+b") as fh:
            fh.seek(8)
            fh.write(b"\xff" * 64)
    r = rt.run("restore", "--detach", "--image-path", bad, "--bundle", b.path, new)
    assert r.returncode != 0, r.stderr
    if rt.is_pyruntime:
        assert len(r.stderr.strip().splitlines()) == 1 and "restore: criu failed" in r.stderr, \
            r.stderr
    assert rt.run("state", new).returncode != 0
    assert count(b) == v
    pidfile = os.path.join(pyrt_tmp, "pid")
    rt.ok("restore", "--detach", "--image-path", img, "--bundle", b.path,
          "--pid-file", pidfile, new)
    s = rt.state(new)
    assert s["status"] == "running" and s["bundle"] == b.path
    with open(pidfile) as f:
        assert int(f.read()) == s["pid"]
    first = count(b)
    assert first >= v, "the counter started over (%d < %d)" % (first, v)
    wait_count(b, v + 3)
    with open("/proc/%d/cgroup" % s["pid"]) as f:
        where = f.read().strip()
    if rt.is_pyruntime:
        # in the new container's cgroup (runc 1.1.5 puts it back into the checkpointed
        # container's cgroup path, which criu makes anew and nothing removes)
        assert where == "0::/" + new, where
    ps = json.loads(rt.ok("ps", "-f", "json", new).stdout)
    if rt.is_pyruntime:
        # runc 1.1.5 lists nothing (null): its restored tree is not in the new id's cgroup
        assert s["pid"] in ps
    # a restore onto an id in use is refused; the running one is untouched
    r = rt.run("restore", "--detach", "--image-path", img, "--bundle", b.path, new)
    assert r.returncode != 0 and "already exists" in r.stderr, r.stderr
    assert rt.state(new) == s
    rt.ok("kill", new, "KILL")
    assert util.wait_for(lambda: rt.state(new)["status"] == "stopped", 30, 0.1)
    rt.ok("delete", new)


def test_pre_dump_leave_running_and_restore_under_the_same_id(rt, make_bundle, cid, pyrt_tmp):
    b = start_counter(rt, make_bundle, cid)
    pid = rt.state(cid)["pid"]
    img = os.path.join(pyrt_tmp, "img")
    rt.ok("checkpoint", "--pre-dump", "--image-path", os.path.join(img, "pre"), cid)
    assert rt.state(cid)["status"] == "running" and rt.state(cid)["pid"] == pid
    v = wait_count(b, count(b) + 2)   # still counting
    rt.ok("checkpoint", "--leave-running", "--image-path", os.path.join(img, "dump"),
          "--parent-path", "../pre", cid)
    s = rt.state(cid)
    assert s["status"] == "running" and s["pid"] == pid
    wait_count(b, v + 3)
    # the original goes; the checkpoint comes back under its id
    rt.ok("delete", "--force", cid)
    rt.ok("restore", "-d", "--image-path", os.path.join(img, "dump"), "--bundle", b.path, cid)
    s = rt.state(cid)
    assert s["status"] == "running" and s["pid"] != pid
    assert count(b) >= v
    wait_count(b, count(b) + 3)
    if not _fast_launcher(rt):
        rt.ok("delete", "--force", cid)
        return
    # restore writes the launcher's plan as create does: state, kill and delete of the
    # restored container run without the interpreter, with the Python path's output
    trace = os.path.join(pyrt_tmp, "trace")
    on = rt.run("state", cid, env={"PYRT_FASTPATH_TRACE": trace, "PYRT_FASTPATH": "1"})
    off = rt.run("state", cid, env={"PYRT_FASTPATH": "0"})
    assert (on.returncode, on.stdout, on.stderr) == (off.returncode, off.stdout, off.stderr)
    assert json.loads(on.stdout)["pid"] == s["pid"]
    r = rt.run("kill", cid, "KILL", env={"PYRT_FASTPATH_TRACE": trace, "PYRT_FASTPATH": "1"})
    assert r.returncode == 0, r.stderr
    assert util.wait_for(lambda: rt.state(cid)["status"] == "stopped", 30, 0.1)
    r = rt.run("delete", cid, env={"PYRT_FASTPATH_TRACE": trace, "PYRT_FASTPATH": "1"})
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))
    with open(trace) as f:
        assert f.read().splitlines() == ["fast state", "fast kill", "fast delete"]


def _fast_launcher(rt):
    """pyruntime's compiled launcher (the one with the fast path), not a Python script"""
    if not rt.is_pyruntime:
        return False
    with open(shutil.which(rt.cmd[0]) or rt.cmd[0], "rb") as f:
        return f.read(4) == b"\x7fELF"


# lo is down in a new network namespace (the runtime leaves it so, as runc): the container
# brings it up (CAP_NET_ADMIN). The server's stdin is a pipe that never ends: busybox nc
# closes the connection when its stdin does.
TCP = ("ip link set lo up; exec </dev/null >/dev/null 2>&1; "
       "sleep 100000 | nc -l -p 5000 > /tcp.log & sleep 1; "
       "i=0; while :; do i=$((i+1)); echo $i; echo $i > /count.tmp; mv /count.tmp /count; "
       "sleep 0.2; done | nc 127.0.0.1 5000")


def tcp_last(b):
    with open(os.path.join(b.rootfs, "tcp.log")) as f:
        lines = f.read().split()
    return int(lines[-1]) if lines else 0


def test_established_tcp_in_its_own_network_namespace(rt, make_bundle, cid, pyrt_tmp):
    # the default config has its own network namespace
    b = start_counter(rt, make_bundle, cid, TCP, caps=["CAP_NET_ADMIN"])
    pid = rt.state(cid)["pid"]
    assert util.wait_for(lambda: tcp_last(b) >= 2, 30, 0.1)
    img = os.path.join(pyrt_tmp, "img")
    # criu refuses an established connection without --tcp-established: the container
    # stays as it was
    r = rt.run("checkpoint", "--image-path", img, cid)
    assert r.returncode != 0, r.stderr
    if rt.is_pyruntime:
        assert len(r.stderr.strip().splitlines()) == 1 and "checkpoint: criu failed" in r.stderr, \
            r.stderr
    s = rt.state(cid)
    assert s["status"] == "running" and s["pid"] == pid
    v = count(b)
    wait_count(b, v + 2)
    rt.ok("checkpoint", "--tcp-established", "--image-path", img, cid)
    v = tcp_last(b)
    rt.ok("restore", "-d", "--tcp-established", "--image-path", img, "--bundle", b.path, cid)
    # the same connection carries on: the server keeps receiving the sender's numbers
    assert util.wait_for(lambda: tcp_last(b) >= v + 3, 60, 0.1), (v, tcp_last(b))
    with open(os.path.join(b.rootfs, "tcp.log")) as f:
        got = [int(x) for x in f.read().split()]
    assert got == list(range(1, len(got) + 1)), "numbers lost or repeated over the connection"
    rt.ok("delete", "--force", cid)


TTY = ("i=0; while :; do i=$((i+1)); echo n=$i; echo $i > /count.tmp; mv /count.tmp /count; "
       "sleep 0.2; done")


def test_terminal_with_console_socket(rt, make_bundle, cid, pyrt_tmp):
    from test_tty import ConsoleServer, read_until
    b = make_bundle(["sh", "-c", TTY], terminal=True)
    b.config["root"]["readonly"] = False
    b.save()
    srv = ConsoleServer(os.path.join(pyrt_tmp, "c1.sock"))
    srv2 = None
    try:
        rt.ok("run", "-d", "--console-socket", srv.path, "--bundle", b.path, cid)
        assert "n=2" in read_until(srv.master(), "n=2")
        img = os.path.join(pyrt_tmp, "img")
        rt.ok("checkpoint", "--image-path", img, cid)
        v = count(b)
        srv2 = ConsoleServer(os.path.join(pyrt_tmp, "c2.sock"))
        rt.ok("restore", "-d", "--console-socket", srv2.path, "--image-path", img,
              "--bundle", b.path, cid)
        # a new master for the same terminal: the counter writes on
        out = read_until(srv2.master(), "n=%d" % (v + 3), timeout=60)
        assert "n=%d" % (v + 3) in out, out
        rt.ok("delete", "--force", cid)
    finally:
        srv.close()
        if srv2 is not None:
            srv2.close()
