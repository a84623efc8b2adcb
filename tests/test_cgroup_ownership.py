"""delete touches only the container's own cgroups (v1 / hybrid host, and v2: the guest).

Two containers a and b under one parent cgroup P, which a created, b created, or neither
did (the test makes it and removes it). Deleting a (plain after a kill, or --force) must
remove a's leaf dirs in every hierarchy and nothing of b's: b keeps running in its
cgroups, P stays while b is in it, and no command waits on b's directories (a short
command timeout turns a wait into a failure). Also run against runc (PYRT_RUNTIME=runc).
"""
import os

import pytest

import util

CG = "/sys/fs/cgroup"
T = 10  # seconds: a delete that waits on someone else's cgroup fails the test


def _mode():
    with open("/proc/self/mountinfo") as f:
        fs = [(l.split(" - ")[0].split()[4], l.split(" - ")[1].split()[0]) for l in f]
    if any(mp == CG and t == "cgroup2" for mp, t in fs):
        return "unified"
    return "v1" if any(t == "cgroup" for _mp, t in fs) else "none"


pytestmark = pytest.mark.skipif(os.geteuid() != 0 or _mode() == "none",
                                reason="needs root and mounted cgroups")


def hierarchies():
    """Mount points of every cgroup hierarchy: v1 ones and the hybrid cgroup2 one, or the
    single cgroup2 one at CG on a v2-only host."""
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


def cgroup_lines(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        return [l.rstrip("\n") for l in f]


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


# the guest (~40x slower) runs each neighbour state with each way of deleting, and each
# maker of P at least once
GUEST = {"running-force-a", "running-plain-b", "stopped-force-neither", "stopped-plain-a"}


@pytest.mark.parametrize("neighbour,how,maker", [
    pytest.param(n, h, m, id="%s-%s-%s" % (n, h, m),
                 marks=[pytest.mark.guest] if "%s-%s-%s" % (n, h, m) in GUEST else [])
    for n in ("running", "stopped") for h in ("force", "plain") for m in ("a", "b", "neither")])
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
    unified hierarchy too (hybrid), and delete removes it. On v2-only the runtime's own
    cgroup has processes in it, so the id goes below its parent (no internal processes)."""
    b = make_bundle(["sleep", "1000"])
    util.call_ok(rt, "run", "--detach", "--bundle", b.path, cid, timeout=T)
    pid = rt.state(cid)["pid"]
    with open("/proc/self/cgroup") as f:
        own = [l.rstrip("\n")[3:] for l in f if l.startswith("0::")][0]
    v2 = _mode() == "unified"
    want = os.path.join(os.path.dirname(own) if v2 else own, cid)
    assert unified_line(pid) == ["0::" + want]
    unified = [mp for mp in hierarchies() if mp.endswith("/unified") or v2]
    assert unified
    rt.ok("delete", "--force", cid, timeout=T)
    for mp in unified:
        assert not os.path.exists(mp + want)


@pytest.mark.guest
def test_cgroups_made_inside_the_leaf_go_with_it(rt, make_bundle, cid, parent):
    """A workload with a cgroup namespace makes a cgroup inside its own and moves a
    process there: delete --force kills it and removes both, in every hierarchy; P (made
    by the test) stays."""
    script = ("sleep 1000 & k=$!; for d in /sys/fs/cgroup /sys/fs/cgroup/*; do "
              "[ -e $d/cgroup.procs ] && mkdir $d/inner && echo $k > $d/inner/cgroup.procs; "
              "done; exec sleep 1001")
    b = make_bundle(["sh", "-c", script])
    b.config["linux"]["namespaces"].append({"type": "cgroup"})
    for m in b.config["mounts"]:
        if m["destination"] == "/sys/fs/cgroup":
            m["options"] = [o for o in m["options"] if o != "ro"]
    leaf = parent + "/" + cid
    b.config["linux"]["cgroupsPath"] = leaf
    b.save()
    made = []
    for d in dirs_of(parent):
        os.mkdir(d)
        made.append(d)
    util.call_ok(rt, "run", "--detach", "--bundle", b.path, cid, timeout=T)
    init = rt.state(cid)["pid"]
    kid = util.wait_for(lambda: (util.children(init) or [None])[0], 10)
    assert kid
    # v2: the one hierarchy; v1: those the container can move it in (not cpuset: a new
    # one has no cpus) -- the hybrid unified one is not mounted in the container
    moved = util.wait_for(lambda: [l for l in cgroup_lines(kid)
                                   if l.endswith(":" + leaf + "/inner")], 10)
    assert moved, cgroup_lines(kid)
    assert existing(dirs_of(leaf + "/inner"))
    rt.ok("delete", "--force", cid, timeout=T)
    assert util.wait_for(lambda: not util.pid_alive(kid), 5)
    assert existing(dirs_of(leaf)) == []
    assert existing(dirs_of(parent)) == made
