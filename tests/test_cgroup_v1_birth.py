"""The init is born in its cgroups on a cgroup v1 (or hybrid) host too: the init stub, one
thread, writes "0" into each v1 hierarchy's `tasks` file of the container before it clones
the init (no threadgroup lock, so no RCU grace period), and a hybrid host's unified
hierarchy takes clone3 CLONE_INTO_CGROUP. tests/v2/test_clone_into_cgroup.py is the v2
half.

The proof that nothing of the container ever ran in the runtime's cgroup: the runtime is
started in a v1 pids cgroup of the test's own whose pids.max leaves room for the runtime
and the init stub only. An init cloned there (the old way, PYRT_CLONE_INTO_CGROUP=0) is
refused with EAGAIN; one born in its own cgroups is never counted there."""
import os

import pytest

import util

CG = "/sys/fs/cgroup"
PIDS = os.path.join(CG, "pids")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or util.cgroup2_unified(CG) or not os.path.isdir(PIDS),
    reason="needs root on a cgroup v1 (or hybrid) host with the pids hierarchy")


def rd(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def cgroups_of(pid):
    """hierarchy (controllers, or "" for the unified one) -> path, from /proc/PID/cgroup"""
    out = {}
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            _, ctrl, path = line.rstrip("\n").split(":", 2)
            out[ctrl] = path
    return out


@pytest.fixture
def runner(cid):
    r = util.PidsRunner(os.path.join(PIDS, "runner-" + cid), "r")
    yield r
    r.close()


bundle = util.sleeper_in
create = util.create_from


def test_init_born_in_its_v1_cgroups(rt, make_bundle, cid, runner):
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's own placement (runc clones into its own cgroup, then moves)")
    b = bundle(make_bundle, cid)
    plan = rt.ok("plan", "--bundle", b.path, cid).stdout
    assert '"%s/pids/%s/c1/tasks"' % (CG, cid) in plan, plan
    r, log = create(rt, b, cid, runner)
    assert r.returncode == 0, r.stderr + log
    pid = rt.state(cid)["pid"]
    assert "init %d: born in its cgroup v1 hierarchies" % pid in log, log
    assert "moving it there" not in log, log
    where = cgroups_of(pid)
    for ctrl in ("pids", "memory", "devices", "freezer", "cpuset"):
        if any(ctrl in k.split(",") for k in where):
            path = next(v for k, v in where.items() if ctrl in k.split(","))
            assert path == "/%s/c1" % cid, (ctrl, where)
    if "" in where and os.path.isdir(os.path.join(CG, "unified")):
        assert where[""] == "/%s/c1" % cid, where
    # nothing of the container was ever counted in the runtime's cgroup
    assert runner.refused() == 0
    assert runner.count() == "0"
    assert rd(os.path.join(PIDS, cid, "c1"), "pids.current") == "1"
    # the stub's handles on the tasks files stay out of the container
    fds = {os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)}
    assert not any(t.startswith(CG) for t in fds), fds
    # the device rules are the config's (written at the init's cgroup sync)
    rules = rd(os.path.join(CG, "devices", cid, "c1"), "devices.list").splitlines()
    assert "a *:* rwm" not in rules and "c 1:3 rwm" in rules, rules
    rt.ok("delete", "--force", cid)
    assert not os.path.exists(os.path.join(PIDS, cid))


def test_old_way_is_counted_in_the_runtimes_cgroup(rt, make_bundle, cid, runner):
    """The check above can fail: an init cloned the old way (PYRT_CLONE_INTO_CGROUP=0, or
    runc) is a third task in the runtime's cgroup, which pids.max 2 refuses."""
    if not rt.is_pyruntime:
        pytest.skip("the switch is pyruntime's")
    b = bundle(make_bundle, cid)
    plan = rt.ok("plan", "--bundle", b.path, cid, env={"PYRT_CLONE_INTO_CGROUP": "0"}).stdout
    assert "cgroup_join" not in plan and "clone_into_cgroup" not in plan, plan
    r, log = create(rt, b, cid, runner, env={"PYRT_CLONE_INTO_CGROUP": "0"})
    assert r.returncode != 0, log
    assert "resource temporarily unavailable" in (r.stderr + log).lower(), r.stderr + log
    assert not os.path.exists(os.path.join(PIDS, cid))


def test_a_failed_join_moves_the_init(rt, make_bundle, cid, runner):
    """A `tasks` write the kernel refuses leaves the runtime to move the init, which then
    fails the way the old path did: one line, nothing left. Refused here: a realtime
    runtime (so a realtime stub and init) joining a v1 cpu cgroup with no realtime
    bandwidth (cpu.rt_runtime_us 0, a new cgroup's)."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's own placement")
    if not os.path.exists(os.path.join(CG, "cpu", "cpu.rt_runtime_us")):
        pytest.skip("no realtime group scheduling")
    with open(os.path.join(runner.dir, "pids.max"), "w") as f:
        f.write("max")   # the init is cloned where the stub stopped: the runner
    b = bundle(make_bundle, cid)

    def realtime():
        runner.enter()
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))

    log = b.path + ".log"
    r = rt.run("--debug", "--log", log, "create", "--bundle", b.path, cid,
               env={"PYRT_WARMUP": "0"}, preexec_fn=realtime)
    with open(log) as f:
        log = f.read()
    assert r.returncode != 0, log
    assert "joining its cgroup v1 hierarchies: invalid argument; moving it there" in log, log
    assert "invalid argument" in r.stderr.lower(), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert rt.container_ids() == []
    assert not os.path.exists(os.path.join(PIDS, cid))


def test_exec_born_in_the_containers_v1_cgroups(rt, make_bundle, cid, runner):
    """exec's process the same way: born in the container's cgroups, never counted in the
    runtime's (pids.max 2 there); the old way (PYRT_CLONE_INTO_CGROUP=0) is refused."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's own placement")
    b = bundle(make_bundle, cid)
    rt.ok("run", "-d", "--bundle", b.path, cid)
    try:
        out = util.exec_born(rt, cid, runner, b.path + ".exec.log", "cat", "/proc/self/cgroup")
        where = dict(line.split(":", 2)[1:] for line in out.splitlines())
        assert where["pids"] == "/%s/c1" % cid, where
        r = rt.run("exec", cid, "true", preexec_fn=runner.enter,
                   env={"PYRT_WARMUP": "0", "PYRT_CLONE_INTO_CGROUP": "0"})
        assert r.returncode != 0
        assert "resource temporarily unavailable" in r.stderr.lower(), r.stderr
    finally:
        rt.ok("delete", "--force", cid)
    assert not os.path.exists(os.path.join(PIDS, cid))


def test_exec_into_a_cgroup_namespace(rt, make_bundle, cid, runner):
    """A container with a cgroup namespace of its own: the process joins it after it was
    born in the cgroups (the stub's clone3 for the unified hierarchy wants the runtime's
    cgroup namespace), and sees its cgroups as the init does: the namespace's root."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's own placement")
    b = bundle(make_bundle, cid)
    b.config["linux"]["namespaces"].append({"type": "cgroup"})
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid)
    try:
        out = util.exec_born(rt, cid, runner, b.path + ".exec.log", "cat", "/proc/self/cgroup")
        init = rt.ok("exec", cid, "cat", "/proc/1/cgroup").stdout
        assert out == init and "pids:/\n" in out, (out, init)
    finally:
        rt.ok("delete", "--force", cid)
    assert not os.path.exists(os.path.join(PIDS, cid))
