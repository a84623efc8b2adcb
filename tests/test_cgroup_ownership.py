"""delete touches only the container's own cgroups (v1 / hybrid host).

Two containers a and b under one parent cgroup P, which a created, b created, or neither
did (the test makes it and removes it). Deleting a (plain after a kill, or --force) must
remove a's leaf dirs in every hierarchy and nothing of b's: b keeps running in its
cgroups, P stays while b is in it, and no command waits on b's directories (a short
command timeout turns a wait into a failure). Also run against runc (PYRT_RUNTIME=runc).
"""
import os

import pytest

import util

T = 10  # seconds: a delete that waits on someone else's cgroup fails the test


pytestmark = util.needs_root_on_cgroup_v1()


def hierarchies():
    """Mount points of every cgroup hierarchy (v1 ones and the hybrid cgroup2 one)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.rstrip("\n").split(" - ")
            if right.split()[0] in ("cgroup", "cgroup2"):
                out.append(left.split()[4])
    return sorted(set(out))


def dirs_of(rel):
    return [os.path.join(mp, rel.lstrip("/")) for mp in hierarchies()]


def existing(paths):
    return [p for p in paths if os.path.isdir(p)]


def start(rt, make_bundle, cid, cgpath, run=True):
    b = make_bundle(["sleep", "1000"])
    b.config["linux"]["cgroupsPath"] = cgpath
    b.save()
    util.call_ok(rt, "create", "--bundle", b.path, cid, timeout=T)
    pid = rt.state(cid)["pid"]
    if run:
        rt.ok("start", cid, timeout=T)
    return pid


def unified_line(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        return [l.rstrip("\n") for l in f if l.startswith("0::")]


@pytest.fixture
def parent(cid):
    """P, named after the test's container id; removed (if empty) at the end."""
    p = "/" + cid + "-P"
    yield p
    for d in existing(dirs_of(p)):
        for sub in sorted((os.path.join(d, x) for x in os.listdir(d)
                           if os.path.isdir(os.path.join(d, x))), reverse=True):
            try:
                os.rmdir(sub)
            except OSError:
                pass
        try:
            os.rmdir(d)
        except OSError:
            pass


@pytest.mark.guest
@pytest.mark.parametrize("maker", ["a", "b", "neither"])
@pytest.mark.parametrize("how", ["force", "plain"])
@pytest.mark.parametrize("neighbour", ["running", "stopped"])
def test_delete_leaves_neighbour_cgroups(rt, make_bundle, cid, parent, maker, how, neighbour):
    a, b = cid + "-a", cid + "-b"
    pa_, pb_ = parent + "/" + a, parent + "/" + b
    made = []
    if maker == "neither":
        for d in dirs_of(parent):
            os.mkdir(d)
            made.append(d)
    order = (b, a) if maker == "b" else (a, b)
    pids = {}
    for c in order:
        pids[c] = start(rt, make_bundle, c, pa_ if c == a else pb_)
    assert unified_line(pids[a]) == ["0::" + pa_]
    assert unified_line(pids[b]) == ["0::" + pb_]
    b_dirs = dirs_of(pb_)
    assert existing(b_dirs) == b_dirs
    if neighbour == "stopped":
        rt.ok("kill", b, "KILL", timeout=T)
        assert util.wait_for(lambda: not util.pid_alive(pids[b]), 5)
    if how == "plain":
        rt.ok("kill", a, "KILL", timeout=T)
        assert util.wait_for(lambda: not util.pid_alive(pids[a]), 5)
        rt.ok("delete", a, timeout=T)
    else:
        rt.ok("delete", "--force", a, timeout=T)
    assert a not in rt.container_ids()
    assert existing(dirs_of(pa_)) == []
    # b untouched: every dir, its process, its state
    assert existing(b_dirs) == b_dirs
    assert existing(dirs_of(parent)) == dirs_of(parent)
    if neighbour == "running":
        assert util.pid_alive(pids[b])
        assert rt.state(b)["status"] == "running"
        assert unified_line(pids[b]) == ["0::" + pb_]
    else:
        assert rt.state(b)["status"] == "stopped"
    rt.ok("delete", "--force", b, timeout=T)
    assert existing(b_dirs) == []
    if maker == "neither":
        # P was never a container's: it stays
        assert existing(dirs_of(parent)) == made


@pytest.mark.guest
def test_parent_made_by_the_container_goes_when_empty(rt, make_bundle, cid, parent):
    leaf = parent + "/" + cid
    pid = start(rt, make_bundle, cid, leaf)
    assert unified_line(pid) == ["0::" + leaf]
    rt.ok("delete", "--force", cid, timeout=T)
    assert existing(dirs_of(leaf)) == []
    if rt.is_pyruntime:
        assert existing(dirs_of(parent)) == []   # runc leaves it (the fixture removes it)


def test_default_cgroup_in_unified_hierarchy(rt, make_bundle, cid):
    """No cgroupsPath: the container's cgroup is the id below the runtime's own, in the
    unified hierarchy too, and delete removes it."""
    b = make_bundle(["sleep", "1000"])
    util.call_ok(rt, "run", "--detach", "--bundle", b.path, cid, timeout=T)
    pid = rt.state(cid)["pid"]
    with open("/proc/self/cgroup") as f:
        own = [l.rstrip("\n")[3:] for l in f if l.startswith("0::")][0]
    want = os.path.join(own, cid)
    assert unified_line(pid) == ["0::" + want]
    unified = [mp for mp in hierarchies() if mp.endswith("/unified")]
    rt.ok("delete", "--force", cid, timeout=T)
    for mp in unified:
        assert not os.path.exists(mp + want)
