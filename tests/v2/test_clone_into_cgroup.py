"""The init is born in its cgroup on cgroup v2 (clone3 CLONE_INTO_CGROUP): no migration, and
no moment in the cgroup of the runtime that made it. Where the kernel (or a seccomp filter
around the runtime, as Docker's default profile) refuses clone3, the runtime clones the old
way and moves the init. Runs in the qemu guest (tools/cgroup-v2-vm/run-v2-tests.sh).

The proof that nothing of the container ever ran in the runtime's cgroup: the runtime is
started in a cgroup of the test's own whose pids.max leaves room for the runtime and the
init stub only. An init cloned there (the old way) is refused with EAGAIN; one born in
its own cgroup is never counted there."""
import ctypes
import os
import struct

import pytest

import util

CG = "/sys/fs/cgroup"

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not util.cgroup2_unified(CG),
                                reason="needs root on a cgroup v2-only host")


def cg_of(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                return os.path.normpath(CG + line.rstrip("\n")[3:])
    raise AssertionError("no v2 entry in /proc/%d/cgroup" % pid)


def rd(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


@pytest.fixture
def runner(cid):
    if "pids" not in rd(CG, "cgroup.subtree_control").split():
        with open(os.path.join(CG, "cgroup.subtree_control"), "w") as f:
            f.write("+pids")
    r = util.PidsRunner(os.path.join(CG, "runner-" + cid))
    yield r
    r.close()


bundle = util.sleeper_in
create = util.create_from


def test_init_born_in_its_cgroup(rt, make_bundle, cid, runner):
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's own placement (runc clones into its own cgroup, then moves)")
    b = bundle(make_bundle, cid)
    leaf = "%s/%s/c1" % (CG, cid)
    plan = rt.ok("plan", "--bundle", b.path, cid).stdout
    assert '"clone_into_cgroup": "%s"' % leaf in plan, plan
    r, log = create(rt, b, cid, runner)
    assert r.returncode == 0, r.stderr + log
    pid = rt.state(cid)["pid"]
    assert cg_of(pid) == leaf
    assert "born in its cgroup %s (clone3 CLONE_INTO_CGROUP)" % leaf in log, log
    # nothing of the container was ever counted in the runtime's cgroup, nor in the
    # leaf's parent (created for it, never populated but through the leaf)
    assert runner.refused() == 0
    assert rd(runner.dir, "pids.current") == "0"
    assert rd(leaf, "pids.current") == "1"
    assert rd(os.path.dirname(leaf), "cgroup.procs") == ""
    # the runtime's handle on the cgroup dir stays out of the container
    fds = {os.readlink("/proc/%d/fd/%s" % (pid, fd)) for fd in os.listdir("/proc/%d/fd" % pid)}
    assert not any(t.startswith(CG) for t in fds), fds
    rt.ok("delete", "--force", cid)
    assert not os.path.exists(os.path.dirname(leaf))


def test_old_way_is_counted_in_the_runtimes_cgroup(rt, make_bundle, cid, runner):
    """The check above can fail: an init cloned the old way (PYRT_CLONE_INTO_CGROUP=0, or
    runc) is a third task in the runtime's cgroup, which pids.max 2 refuses."""
    if not rt.is_pyruntime:
        pytest.skip("the switch is pyruntime's")
    r, log = create(rt, bundle(make_bundle, cid), cid, runner,
                    env={"PYRT_CLONE_INTO_CGROUP": "0"})
    assert r.returncode != 0, log
    assert "resource temporarily unavailable" in (r.stderr + log).lower(), r.stderr + log
    assert runner.refused() >= 1
    assert not os.path.exists(os.path.join(CG, cid))


AUDIT_ARCH_X86_64 = 0xc000003e
SYS_CLONE3 = 435
ENOSYS = 38


def _refuse_clone3():
    """A seccomp filter like Docker's default profile: clone3 fails with ENOSYS."""
    def ins(code, k, jt=0, jf=0):
        return struct.pack("HBBI", code, jt, jf, k)
    prog = b"".join([
        ins(0x20, 4),                                   # ld arch
        ins(0x15, AUDIT_ARCH_X86_64, 1, 0),             # jeq x86_64 ? next+1 : next
        ins(0x06, 0x7fff0000),                          # ret ALLOW
        ins(0x20, 0),                                   # ld nr
        ins(0x15, SYS_CLONE3, 0, 1),                    # jeq clone3 ? next : next+1
        ins(0x06, 0x00050000 | ENOSYS),                 # ret ERRNO(ENOSYS)
        ins(0x06, 0x7fff0000),                          # ret ALLOW
    ])
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = struct.pack("HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
    fbuf = ctypes.create_string_buffer(fprog, len(fprog))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    if libc.prctl(38, 1, 0, 0, 0) != 0:                 # PR_SET_NO_NEW_PRIVS
        os._exit(120)
    if libc.prctl(22, 2, ctypes.addressof(fbuf), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        os._exit(121)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the filter is x86_64's")
def test_clone3_refused_falls_back_to_a_move(rt, make_bundle, cid, runner):
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's own placement")
    with open(os.path.join(runner.dir, "pids.max"), "w") as f:
        f.write("max")   # the old way puts the init in the runtime's cgroup first
    r, log = create(rt, bundle(make_bundle, cid), cid, runner,
                    preexec=_refuse_clone3)
    assert r.returncode == 0, r.stderr + log
    leaf = "%s/%s/c1" % (CG, cid)
    pid = rt.state(cid)["pid"]
    assert cg_of(pid) == leaf
    assert ("clone3 CLONE_INTO_CGROUP %s: function not implemented; moving it there"
            % leaf) in log, log
    rt.ok("delete", "--force", cid)
    assert not os.path.exists(os.path.join(CG, cid))



def test_exec_born_in_the_containers_cgroup(rt, make_bundle, cid, runner):
    """exec's process the same way: born in the container's leaf, never a task of the
    runtime's cgroup (pids.max 2); the old way (PYRT_CLONE_INTO_CGROUP=0) is refused."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's own placement")
    b = bundle(make_bundle, cid)
    leaf = "%s/%s/c1" % (CG, cid)
    rt.ok("run", "-d", "--bundle", b.path, cid)
    try:
        util.exec_born(rt, cid, runner, b.path + ".exec.log", "cat", "/proc/self/cgroup")
        r = rt.run("exec", cid, "true", preexec_fn=runner.enter,
                   env={"PYRT_WARMUP": "0", "PYRT_CLONE_INTO_CGROUP": "0"})
        assert r.returncode != 0
        assert "resource temporarily unavailable" in r.stderr.lower(), r.stderr
        assert rd(leaf, "pids.current") == "1"
    finally:
        rt.ok("delete", "--force", cid)
    assert not os.path.exists(os.path.join(CG, cid))


def test_exec_into_a_cgroup_namespace_is_born_there_too(rt, make_bundle, cid, runner):
    """With nsdelegate (this guest's mount) clone3 CLONE_INTO_CGROUP wants both cgroups
    visible from the caller's cgroup namespace: the stub clones first and the process then
    joins the container's cgroup namespace itself. It sees its cgroup as the init does."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's own placement")
    b = bundle(make_bundle, cid)
    b.config["linux"]["namespaces"].append({"type": "cgroup"})
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid)
    try:
        out = util.exec_born(rt, cid, runner, b.path + ".exec.log", "cat", "/proc/self/cgroup")
        assert out.strip() == "0::/", out
    finally:
        rt.ok("delete", "--force", cid)
    assert not os.path.exists(os.path.join(CG, cid))
