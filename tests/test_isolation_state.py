"""What the runtime owns, and only that, is what delete removes:

- delete --force of a container sharing its cgroupsPath with another leaves the other
  running (runc does too, with a warning about the cgroup it could not remove);
- a damaged state.json never makes the runtime forget a live container: delete --force
  still finds and kills its init and removes its cgroups; state/list say one line;
- a create killed at any moment leaves nothing that delete --force cannot remove.

Each with and without a user namespace where it applies.
"""
import json
import os
import random
import signal
import subprocess
import time

import pytest

import util

CG = "/sys/fs/cgroup"
T = 10  # a command waiting on someone else's cgroup fails the test


V2 = util.cgroup2_unified(CG)  # v2-only (the qemu guest): one hierarchy at CG itself


def _cgroups():
    with open("/proc/self/mountinfo") as f:
        return any(l.split(" - ")[1].split()[0] in ("cgroup", "cgroup2") for l in f)


pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not _cgroups(),
                                reason="needs root and mounted cgroups")


def pids_dir(rel):
    """The host dir of cgroup `rel` holding the pids controller (v1: its own hierarchy)."""
    return os.path.join(CG, "" if V2 else "pids", rel.lstrip("/"))


def userns(config):
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def bundle(make_bundle, args=("sleep", "1000"), user=False, pidns=True, cgpath=None):
    b = make_bundle(list(args))
    if user:
        userns(b.config)
        os.chown(b.rootfs, 100000, 100000)
    if not pidns:
        b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                           if n["type"] != "pid"]
    if cgpath:
        b.config["linux"]["cgroupsPath"] = cgpath
    b.save()
    return b


def cgroup_dirs(name):
    out = []
    for top, dirs, _files in os.walk(CG):
        out += [os.path.join(top, d) for d in dirs if name in d]
    return out


# ---- item 6: delete --force kills only its own container ---------------------------------

def _sharing_params():
    # the guest (~40x slower) runs one per namespace variant, both ways of deleting
    guest = {"pidns-force", "pidns-userns-plain-after-kill", "no-pidns-force"}
    for ns, user, pidns in (("pidns", False, True), ("pidns-userns", True, True),
                            ("no-pidns", False, False)):
        for how in ("force", "plain-after-kill"):
            name = "%s-%s" % (ns, how)
            yield pytest.param(user, pidns, how, id=name,
                               marks=[pytest.mark.guest] if name in guest else [])


@pytest.mark.parametrize("user,pidns,how", list(_sharing_params()))
def test_delete_force_spares_container_sharing_the_cgroup(rt, make_bundle, cid, user, pidns,
                                                          how):
    if not pidns and not rt.is_pyruntime:
        pytest.skip("runc 1.1 kills every process of the cgroup of a container without "
                    "a pid namespace, the neighbour's too")
    shared = "/%s-shared" % cid
    a, b = cid + "-a", cid + "-b"
    pids = {}
    for c in (a, b):
        bd = bundle(make_bundle, user=user, pidns=pidns, cgpath=shared)
        r = util.call_ok(rt, "create", "--bundle", bd.path, c, timeout=T)
        if c == b:  # runc warns that b joins a cgroup with a's processes in it
            assert "container's cgroup is not empty: 1 process(es) found" in r.stderr, r.stderr
        rt.ok("start", c, timeout=T)
        pids[c] = rt.state(c)["pid"]
    if how == "force":
        r = rt.ok("delete", "--force", a, timeout=T)
    else:
        rt.ok("kill", a, "KILL", timeout=T)
        assert util.wait_for(lambda: rt.state(a)["status"] == "stopped", 5)
        r = rt.ok("delete", a, timeout=T)
    assert util.wait_for(lambda: not util.pid_alive(pids[a]), 5)
    assert util.pid_alive(pids[b]), "delete --force of a killed b"
    assert rt.state(b)["status"] == "running"
    # the shared cgroup stays for b, and delete says so (runc: "Failed to remove cgroup")
    assert "Failed to remove" in r.stderr, r.stderr
    assert os.path.isdir(pids_dir(shared))
    rt.ok("delete", "--force", b, timeout=T)
    assert util.wait_for(lambda: not util.pid_alive(pids[b]), 5)
    assert cgroup_dirs(cid + "-shared") == []


# ---- item 7: a damaged state file never makes the runtime forget a live container --------

DAMAGE = {
    "truncated": lambda raw: raw[:len(raw) // 2],
    "random": lambda raw: os.urandom(len(raw)),
    "null": lambda raw: b"null",
    "wrong-types": lambda raw: json.dumps(
        dict(json.loads(raw), pid="1", start_time=[], cgroup={"paths": 5},
             status=7, creator_pid="x")).encode(),
}


# the guest runs a torn file without and a well-formed wrong one with a user namespace
GUEST_DAMAGE = {("truncated", False), ("wrong-types", True)}


@pytest.mark.parametrize("damage,user", [
    pytest.param(d, u, id="%s-%s" % (d, "userns" if u else "host-ids"),
                 marks=[pytest.mark.guest] if (d, u) in GUEST_DAMAGE else [])
    for d in sorted(DAMAGE) for u in (False, True)])
def test_damaged_state_never_forgets_a_live_container(rt, make_bundle, cid, damage, user):
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's state file")
    b = bundle(make_bundle, ["sh", "-c", "sleep 1000 & exec sleep 1001"], user=user)
    util.call_ok(rt, "run", "--detach", "--bundle", b.path, cid, timeout=T)
    init = rt.state(cid)["pid"]
    kids = util.wait_for(lambda: util.children(init) or None, 5) or []
    assert kids
    dirs = cgroup_dirs(cid)
    assert dirs
    path = os.path.join(rt.root, cid, "state.json")
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(DAMAGE[damage](raw))
    for args in (("state", cid), ("list",), ("kill", cid, "0")):
        p = rt.run(*args, timeout=T)
        assert "Traceback" not in p.stderr, (args, p.stderr)
        assert len(p.stderr.strip().splitlines()) <= 1, (args, p.stderr)
        if args[0] == "state":
            assert p.returncode == 1 and "corrupt state" in p.stderr, p.stderr
    # plain delete refuses: the container still runs
    p = rt.run("delete", cid, timeout=T)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert util.pid_alive(init)
    # --force finds it anyway: init and its child dead, cgroups and state gone
    p = rt.run("delete", "--force", cid, timeout=T)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    for pid in [init] + kids:
        assert util.wait_for(lambda: not util.pid_alive(pid), 5), "pid %d survived" % pid
    assert [d for d in dirs if os.path.exists(d)] == []
    assert not os.path.exists(os.path.join(rt.root, cid))
    # the id is free again
    util.call_ok(rt, "run", "--detach", "--bundle", b.path, cid, timeout=T)
    rt.ok("delete", "--force", cid, timeout=T)


def test_damaged_state_of_stopped_container_plain_delete(rt, make_bundle, cid):
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's state file")
    b = bundle(make_bundle)
    util.call_ok(rt, "run", "--detach", "--bundle", b.path, cid, timeout=T)
    init = rt.state(cid)["pid"]
    rt.ok("kill", cid, "KILL", timeout=T)
    assert util.wait_for(lambda: not util.pid_alive(init), 5)
    with open(os.path.join(rt.root, cid, "state.json"), "wb") as f:
        f.write(b"{")
    p = rt.run("delete", cid, timeout=T)
    assert p.returncode == 0, p.stderr
    assert cgroup_dirs(cid) == []
    assert not os.path.exists(os.path.join(rt.root, cid))


def test_state_file_saying_only_creating_is_listed(rt, cid):
    # list skips a directory without state.json; a state.json whose record is only
    # {"status": "creating"} is a (dead) container's: list shows what state shows
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's state file")
    os.mkdir(os.path.join(rt.root, cid))
    with open(os.path.join(rt.root, cid, "state.json"), "w") as f:
        f.write('{"status": "creating"}')
    assert rt.state(cid)["status"] == "stopped"
    p = rt.ok("list", "-q")
    assert p.stdout.split() == [cid] and p.stderr == "", p
    rt.ok("delete", cid, timeout=T)
    assert rt.container_ids() == []


@pytest.mark.guest
def test_damaged_owned_record_cannot_point_at_a_foreign_process(rt, make_bundle, cid):
    """Both files damaged, owned.json naming a stranger (right start time): the stranger
    is not in the container's cgroup, so it is never signalled."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's state files")
    b = bundle(make_bundle)
    util.call_ok(rt, "run", "--detach", "--bundle", b.path, cid, timeout=T)
    init = rt.state(cid)["pid"]
    stranger = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        d = os.path.join(rt.root, cid)
        with open(os.path.join(d, "owned.json")) as f:
            owned = json.load(f)
        owned.update(pid=stranger.pid, start_time=util.start_time(stranger.pid))
        with open(os.path.join(d, "owned.json"), "w") as f:
            json.dump(owned, f)
        with open(os.path.join(d, "state.json"), "wb") as f:
            f.write(b"null")
        p = rt.run("delete", "--force", cid, timeout=T)
        assert "Traceback" not in p.stderr, p.stderr
        assert stranger.poll() is None, "a stranger named in owned.json was killed"
        # the container's own processes are found in its cgroup instead
        assert p.returncode == 0, p.stderr
        assert util.wait_for(lambda: not util.pid_alive(init), 5)
        assert cgroup_dirs(cid) == []
    finally:
        stranger.kill()
        stranger.wait()
        try:
            os.kill(init, signal.SIGKILL)
        except ProcessLookupError:
            pass  # dead and already reaped (a v2 guest's PID 1 reaps at once)


@pytest.mark.guest
def test_hostile_owned_record_cannot_point_at_a_foreign_cgroup(rt, make_bundle, cid):
    """Both files damaged, owned.json naming a bait cgroup with a process in it: the
    record is refused (its paths are not named for the container), the bait is never
    touched, and delete --force refuses in one line while the container's own cgroup
    still holds its processes instead of forgetting them."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's state files")
    b = bundle(make_bundle)
    util.call_ok(rt, "run", "--detach", "--bundle", b.path, cid, timeout=T)
    init = rt.state(cid)["pid"]
    bait = pids_dir(cid + "-bait")
    with util.cgroup_with_a_process(bait) as stranger:
        d = os.path.join(rt.root, cid)
        with open(os.path.join(d, "owned.json")) as f:
            owned = json.load(f)
        key, mp = ("", CG) if V2 else ("pids", CG + "/pids")
        owned["cgroup"].update(paths={key: bait}, mounts={key: mp},
                               created=[bait], skipped=[], cgroups_path="/" + cid + "-bait")
        with open(os.path.join(d, "owned.json"), "w") as f:
            json.dump(owned, f)
        with open(os.path.join(d, "state.json"), "wb") as f:
            f.write(b"null")
        p = rt.run("delete", "--force", cid, timeout=T)
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "delete --force again" in p.stderr, p.stderr
        assert util.pid_alive(init) and os.path.isdir(d)
        assert stranger.poll() is None and os.path.isdir(bait)
        os.kill(init, signal.SIGKILL)
        assert util.wait_for(lambda: not util.pid_alive(init), 5)
        p = rt.run("delete", "--force", cid, timeout=T)
        assert p.returncode == 0, p.stderr
        assert stranger.poll() is None and os.path.isdir(bait)
        assert not os.path.exists(d)


def _forged_records(rec, cid):
    """Records of a container with cgroupsPath /<cid> that the state loader once took and
    only the cgroup managers refused (or neither did): each must make `state` say the file
    is corrupt, before any command acts on it."""
    key = next(k for k in rec["paths"] if k in ("", "pids"))
    mp, leaf = rec["mounts"][key], rec["paths"][key]
    one = dict(rec, paths={key: leaf}, mounts={key: mp}, skipped=[])
    return {
        # the container's path spelt so that the hierarchy root is one of its dirs
        "created-names-the-root": dict(one, cgroups_path="/%s/%s" % (os.path.basename(mp), cid),
                                       created=[mp, leaf]),
        "mount-not-a-string": dict(one, mounts={key: mp, "x": 7}, created=[leaf]),
        "mount-outside-the-cgroup-root": dict(
            one, mounts={key: "/tmp"}, paths={key: "/tmp/" + cid}, created=["/tmp/" + cid]),
        "mount-beside-the-cgroup-root": dict(
            one, mounts={key: CG + "x"}, paths={key: CG + "x/" + cid}, created=[CG + "x/" + cid]),
    }


@pytest.mark.parametrize("forgery", ["created-names-the-root", "mount-not-a-string",
                                     "mount-outside-the-cgroup-root",
                                     "mount-beside-the-cgroup-root"])
def test_forged_cgroup_record_is_refused_on_load(rt, make_bundle, cid, forgery):
    """One check for the record (cgroups/record.py): what the managers refused, loading the
    state refuses too, and delete --force still finds the container through owned.json."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's state file")
    b = bundle(make_bundle, cgpath="/" + cid)
    util.call_ok(rt, "run", "--detach", "--bundle", b.path, cid, timeout=T)
    init = rt.state(cid)["pid"]
    dirs = cgroup_dirs(cid)
    path = os.path.join(rt.root, cid, "state.json")
    with open(path) as f:
        st = json.load(f)
    st["cgroup"] = _forged_records(st["cgroup"], cid)[forgery]
    with open(path, "w") as f:
        json.dump(st, f)
    p = rt.run("state", cid, timeout=T)
    assert p.returncode == 1 and "corrupt state" in p.stderr, (p.returncode, p.stdout, p.stderr)
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    p = rt.run("delete", "--force", cid, timeout=T)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    assert util.wait_for(lambda: not util.pid_alive(init), 5)
    assert [d for d in dirs if os.path.exists(d)] == []
    assert not os.path.exists(os.path.join(rt.root, cid))


@pytest.mark.skipif(V2, reason="one hierarchy at /sys/fs/cgroup itself: no other root "
                                "below a cgroup mount to name")
def test_forged_record_cannot_name_a_hierarchy_root(rt, make_bundle, cid):
    """A record claiming /sys/fs/cgroup (the tmpfs the v1 hierarchies are mounted on) as
    its mount passes every string rule while its leaf, /sys/fs/cgroup/pids, is the pids
    hierarchy's root: every process on the host. The managers check the host before acting
    on a record: `ps` (which only reads) must refuse it instead of listing pid 1. Only
    read-only commands see the forged record: the real one is back before delete."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's state file")
    root = os.path.join(CG, "pids")
    if not os.path.ismount(root):
        pytest.skip("no pids hierarchy at " + root)
    b = bundle(make_bundle)
    util.call_ok(rt, "run", "--detach", "--bundle", b.path, cid, timeout=T)
    path = os.path.join(rt.root, cid, "state.json")
    with open(path, "rb") as f:
        raw = f.read()
    forged = dict(json.loads(raw), cgroup={
        "driver": "v1", "mode": "hybrid", "id": cid, "cgroups_path": "/pids",
        "paths": {"pids": root}, "mounts": {"pids": CG}, "created": [], "skipped": []})
    try:
        with open(path, "w") as f:
            json.dump(forged, f)
        p = rt.run("ps", "-f", "json", cid, timeout=T)
        listed = json.loads(p.stdout) if p.returncode == 0 else []
        assert 1 not in listed and os.getpid() not in listed, "ps listed the host's processes"
        assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "cgroup" in p.stderr and "Traceback" not in p.stderr, p.stderr
    finally:
        with open(path, "wb") as f:
            f.write(raw)
    rt.ok("delete", "--force", cid, timeout=T)


# ---- item 8: create killed at any moment, then delete --force, leaves nothing -------------

@pytest.mark.guest
@pytest.mark.parametrize("user", [False, True], ids=["host-ids", "userns"])
def test_create_killed_at_random_moments(rt, make_bundle, cid, pyrt_ctx, user):
    if not rt.is_pyruntime:
        pytest.skip("runc killed mid-create leaves its cgroups (not its promise)")
    b = bundle(make_bundle, user=user, cgpath=None)
    rng = random.Random(os.getpid())
    found = []
    # the emulated v2 guest is ~40x slower: fewer rounds, spread over its longer create
    rounds = int(os.environ.get("PYRT_KILL_ROUNDS", "40"))
    max_delay = float(os.environ.get("PYRT_KILL_MAX_DELAY", "0.1"))
    for i in range(rounds):
        c = "%s-%d" % (cid, i)
        pyrt_ctx.ids.add(c)
        p = subprocess.Popen(rt.cmd + ["--root", rt.root, "create", "--bundle", b.path, c],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.002, max_delay))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        pyrt_ctx.scan_runtime(rt)
        r = rt.run("delete", "--force", c, timeout=T)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
        problems = pyrt_ctx.leak_check()
        if problems:
            found.append((i, problems))
    assert found == []
