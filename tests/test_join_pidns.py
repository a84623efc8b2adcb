"""A container whose init joins an existing pid namespace (Kubernetes shareProcessNamespace,
`docker run --pid container:X`).

pyruntime builds such a container's root in a process outside that pid namespace and forks
the init into it once pivoted (docs/threat-model.md; the attacker's view is
tests/test_isolation_exe.py). What a container and its engine see must not change for it:
the init and its procfs are the pid namespace's, /proc mount options and lxcfs-style binds
under /proc hold, hooks run in the container's pid namespace, the recorded pid is the
init's, and nothing of the builder remains.
"""
import os

import pytest

import util


def _neighbour(rt, make_bundle, cid, userns):
    b = make_bundle(args=["/bin/sleep", "600"])
    if userns:
        _map(b)
    b.save()
    rt.ok("run", "-d", "-b", b.path, cid)
    return rt.state(cid)["pid"]


def _map(b, path=None):
    b.config["linux"]["namespaces"].append(dict(type="user", **({"path": path} if path else {})))
    b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    for root, dirs, files in os.walk(b.rootfs):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), 100000, 100000)
    os.chown(b.rootfs, 100000, 100000)


def _joining(make_bundle, npid, userns, script):
    b = make_bundle(args=["/bin/sh", "-c", script])
    b.config["linux"]["namespaces"] = [
        {"type": "pid", "path": "/proc/%d/ns/pid" % npid}, {"type": "mount"},
        {"type": "ipc"}, {"type": "uts"}, {"type": "network"}]
    if userns:
        _map(b, "/proc/%d/ns/user" % npid)
    return b


@pytest.mark.guest
@pytest.mark.parametrize("userns", [False, True])
def test_joined_pid_namespace(rt, make_bundle, cid, pyrt_tmp, userns):
    npid = _neighbour(rt, make_bundle, cid + "-n", userns)
    os.chmod(pyrt_tmp, 0o755)
    # an lxcfs-style file bound over a procfs file (a host source under /proc)
    uptime = os.path.join(pyrt_tmp, "uptime")
    with open(uptime, "w") as f:
        f.write("4242.00 4242.00\n")
    hook_dir = os.path.join(pyrt_tmp, "hook")
    os.mkdir(hook_dir)
    os.chmod(hook_dir, 0o777)
    script = ("readlink /proc/self/ns/pid; cat /proc/1/cmdline; echo; cat /proc/uptime; "
              "grep ' /proc ' /proc/self/mountinfo; echo done; sleep 600")
    b = _joining(make_bundle, npid, userns, script)
    for m in b.config["mounts"]:
        if m["destination"] == "/proc":
            m["options"] = ["nosuid", "noexec", "nodev", "hidepid=2"]
    b.config["mounts"].append({"destination": "/proc/uptime", "type": "bind", "source": uptime,
                               "options": ["bind", "ro"]})
    b.config["hooks"] = {"createContainer": [{"path": "/bin/sh", "args": [
        "sh", "-c", "readlink /proc/self/ns/pid > %s/ns" % hook_dir]}]}
    b.save()
    out_path = os.path.join(pyrt_tmp, "out")
    pid_file = os.path.join(pyrt_tmp, "pid")
    bid = cid + "-j"
    with open(out_path, "w") as out:
        r = rt.run("create", "-b", b.path, "--pid-file", pid_file, bid, stdout=out)
    assert r.returncode == 0, r.stderr
    pid = rt.state(bid)["pid"]
    with open(pid_file) as f:
        assert int(f.read()) == pid
    target = os.readlink("/proc/%d/ns/pid" % npid)
    # the recorded pid is the init, already in the pid namespace (not its builder)
    assert os.readlink("/proc/%d/ns/pid" % pid) == target
    assert util.ns_pid(pid) != 1
    with open(os.path.join(hook_dir, "ns")) as f:
        assert f.read().strip() == target
    rt.ok("start", bid)
    assert util.wait_for(lambda: "done" in _read(out_path), 20), _read(out_path)
    lines = _read(out_path).splitlines()
    assert lines[0] == target
    assert lines[1].startswith("/bin/sleep"), lines     # pid 1: the neighbour's init
    assert lines[2] == "4242.00 4242.00"
    opts = lines[3].split()
    assert {"nosuid", "nodev", "noexec"} <= set(opts[5].split(",")), lines[3]
    assert "hidepid=invisible" in lines[3] or "hidepid=2" in lines[3], lines[3]
    rt.ok("delete", "-f", bid)


def test_joined_pid_namespace_run_leaves_no_builder(rt, make_bundle, cid):
    """Foreground run: the runtime waits for its init; the process that built the root
    must not linger as its zombie child meanwhile."""
    import subprocess
    npid = _neighbour(rt, make_bundle, cid + "-n", False)
    b = _joining(make_bundle, npid, False, "sleep 3")
    b.save()
    p = subprocess.Popen(rt.cmd + ["--root", rt.root, "run", "-b", b.path, cid + "-j"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    try:
        assert util.wait_for(lambda: os.path.exists(os.path.join(rt.root, cid + "-j", "state.json"))
                             and rt.state(cid + "-j")["status"] == "running", 20)
        pid = rt.state(cid + "-j")["pid"]
        kids = util.children(p.pid)
        assert pid in kids, (pid, kids)
        # (the launcher's cgroup warm-up child is not the runtime's business here)
        zombies = [k for k in kids if (util.proc_stat(k) or ("?",))[0] == "Z"
                   and _comm(k) != "pyrt-cg-warmup"]
        assert zombies == [], [(k, _comm(k)) for k in zombies]
    finally:
        assert p.wait(30) == 0, p.stderr.read()
        p.stderr.close()


def _read(path):
    with open(path) as f:
        return f.read()


def _comm(pid):
    try:
        return _read("/proc/%d/comm" % pid).strip()
    except OSError:
        return None
