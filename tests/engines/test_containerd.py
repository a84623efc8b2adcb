"""containerd 1.6 (Debian's package) running its containers on pyruntime through the runc
shim v2 (io.containerd.runc.v2), driven with `ctr`.

The daemon runs under a temp dir (own socket, root, state, runtime root, fifo dir); the CRI
plugin is disabled here (test_cri.py covers it). Containers go through
`ctr run --runc-binary <wrapper>`: the wrapper execs pyruntime and records every call with
its exit status, so tests can check exactly what containerd asked of the runtime.
"""
import json
import os
import signal
import time

import pytest

import daemons
import engutil

pytestmark = pytest.mark.skipif(engutil.have("containerd", "ctr", "containerd-shim-runc-v2")
                                is not None, reason="containerd is not installed "
                                "(tools/engines/install.sh)")

NS = "pyrt"
sandbox = engutil.make_sandbox_fixture("ctd")

# only what ctr needs: no CRI (test_cri.py)
CONFIG = daemons.containerd_config(debug=True)


class Ctd:
    def __init__(self, sb, images):
        self.sb = sb
        self.rroot = sb.mkdir("runc-root")     # pyruntime's --root (per namespace below)
        self.fifo = sb.mkdir("fifo")
        self.calls_log = sb.path("calls.log")
        self.wrapper = daemons.calls_wrapper(sb, self.calls_log)
        self.sock = daemons.start_containerd(sb, CONFIG)
        self.ctr_ok("images", "import", images.archive)
        self.image = images.name
        self.n = 0

    def ctr(self, *args, **kw):
        return daemons.ctr(self.sock, NS, *args, **kw)

    def ctr_ok(self, *args, **kw):
        return daemons.ctr(self.sock, NS, *args, check=True, **kw)

    def new_id(self, what):
        self.n += 1
        return "pyrt-%s-%d" % (what, self.n)

    def run_args(self, cid, *opts, cgroup=None):
        # A cgroup path under our own name: cleanup removes whatever is left below it.
        return (["run", "--runc-binary", self.wrapper, "--runc-root", self.rroot,
                 "--fifo-dir", self.fifo, "--cgroup", cgroup or "/%s/%s" % (self.sb.tag, cid)]
                + list(opts) + [self.image, cid])

    def run(self, cid, args, *opts, cgroup=None, **kw):
        return self.ctr(*self.run_args(cid, *opts, cgroup=cgroup), *args, **kw)

    def tasks(self):
        out = {}
        for line in self.ctr_ok("tasks", "ls").stdout.splitlines()[1:]:
            f = line.split()
            out[f[0]] = (int(f[1]), f[2])
        return out

    def ps(self, cid):
        return [int(l.split()[0]) for l in self.ctr_ok("tasks", "ps", cid).stdout.splitlines()[1:]]

    def wait_status(self, cid, status, timeout=30):
        engutil.wait_for(lambda: self.tasks().get(cid, (0, None))[1] == status, timeout,
                         what="%s %s" % (cid, status))

    def remove(self, cid):
        self.ctr("tasks", "kill", "-s", "KILL", cid)
        self.ctr("tasks", "rm", "-f", cid)
        self.ctr("containers", "rm", cid)

    def pyrt_state(self, cid):
        r = engutil.run([engutil.PYRUNTIME, "--root", os.path.join(self.rroot, NS),
                         "state", cid])
        return json.loads(r.stdout) if r.returncode == 0 else None

    def calls(self, cid):
        return engutil.wrapper_calls(self.calls_log, cid)


@pytest.fixture(scope="module")
def ctd(sandbox, images):
    c = Ctd(sandbox, images)
    yield c
    # Anything a failed test left: removed through the engine first, then by sandbox cleanup.
    for cid in list(c.tasks()):
        c.remove(cid)
    for line in c.ctr("containers", "ls", "-q").stdout.split():
        c.ctr("containers", "rm", line)


def test_run_output_and_exit_code(ctd):
    cid = ctd.new_id("run")
    r = ctd.run(cid, ["sh", "-c", "echo out; echo err >&2; cat /etc/layer2; exit 3"], "--rm")
    assert r.returncode == 3, r.stderr
    assert r.stdout.split() == ["out", "two"]  # the second image layer is visible
    assert "err" in r.stderr
    assert ctd.calls(cid)[0][1][0] == "create", "containerd did not use pyruntime"
    assert all(rc == 0 for rc, _ in ctd.calls(cid)), ctd.calls(cid)
    assert cid not in ctd.tasks()


def test_run_with_tty(ctd):
    cid = ctd.new_id("tty")
    rc, out = engutil.run_pty(daemons.ctr_argv(ctd.sock, NS) + ctd.run_args(
        cid, "--rm", "-t") + ["sh", "-c", "tty; test -t 0 && echo stdin-is-tty"])
    assert rc == 0, out
    assert "/dev/pts/0" in out or "/dev/console" in out
    assert "stdin-is-tty" in out


def test_detached_state_ps_signal_delete(ctd):
    cid = ctd.new_id("detach")
    script = 'trap "echo got-usr1; exit 7" USR1; sleep 1000 & wait'
    r = ctd.run(cid, ["sh", "-c", script], "-d")
    assert r.returncode == 0, r.stderr
    try:
        pid, status = ctd.tasks()[cid]
        assert status == "RUNNING"
        st = ctd.pyrt_state(cid)
        assert st and st["status"] == "running" and st["pid"] == pid
        assert st["bundle"].startswith(ctd.sb.dir)
        pids = engutil.wait_for(lambda: len(ctd.ps(cid)) == 2 and ctd.ps(cid), what="child")
        assert pid in pids
        ctd.ctr_ok("tasks", "kill", "-s", "USR1", cid)
        ctd.wait_status(cid, "STOPPED")
        r = ctd.ctr_ok("tasks", "rm", cid)
        assert "exit code 7" in r.stdout + r.stderr
        assert ctd.pyrt_state(cid) is None
        assert cid not in ctd.tasks()
    finally:
        ctd.remove(cid)
    ops = [c[1][0] for c in ctd.calls(cid)]
    assert ops[:2] == ["create", "start"] and "ps" in ops and "kill" in ops, ops
    kill = [a for rc, a in ctd.calls(cid) if a[0] == "kill"][0]
    assert kill[-1] in ("10", "USR1", "SIGUSR1"), kill


def test_exit_status_reported(ctd):
    cid = ctd.new_id("status")
    ctd.run(cid, ["sh", "-c", "exit 42"], "-d", check=True)
    try:
        ctd.wait_status(cid, "STOPPED")
        # `ctr tasks ls` shows no status; `tasks delete` reports the exit status.
        r = ctd.ctr_ok("tasks", "rm", cid)
        assert "exit code 42" in r.stdout + r.stderr
    finally:
        ctd.remove(cid)


def test_kill_all(ctd):
    cid = ctd.new_id("killall")
    # The init ignores TERM; its children (forked before the trap) do not.
    ctd.run(cid, ["sh", "-c", "sleep 1000 & sleep 1000 & trap '' TERM; wait; sleep 1000"],
            "-d", check=True)
    try:
        init = ctd.tasks()[cid][0]
        children = engutil.wait_for(lambda: set(ctd.ps(cid)) - {init} if len(
            ctd.ps(cid)) == 3 else None, what="3 processes")
        ctd.ctr_ok("tasks", "kill", "--all", "-s", "TERM", cid)
        engutil.wait_for(lambda: not children & set(ctd.ps(cid)), what="children killed")
        assert ctd.tasks()[cid] == (init, "RUNNING")
        ctd.ctr_ok("tasks", "kill", "--all", "-s", "KILL", cid)
        ctd.wait_status(cid, "STOPPED")
        ctd.ctr_ok("tasks", "rm", cid)
    finally:
        ctd.remove(cid)
    assert ["kill", "--all", cid, "15"] in [a for rc, a in ctd.calls(cid) if rc == 0]


def test_engine_cleanup_calls_exit_zero(ctd):
    """containerd runs `kill --all` on a stopped container that shares another's pid
    namespace and `delete --force` on an already-deleted one: both must exit 0."""
    a, b = ctd.new_id("pidns-a"), ctd.new_id("pidns-b")
    ctd.run(a, ["sleep", "1000"], "-d", check=True)
    try:
        pid = ctd.tasks()[a][0]
        r = ctd.run(b, ["sh", "-c", "ps -o pid,args; exit 4"], "--rm",
                    "--with-ns", "pid:/proc/%d/ns/pid" % pid)
        assert r.returncode == 4, r.stderr
        assert "sleep 1000" in r.stdout  # b sees a's processes
        ctd.ctr_ok("tasks", "kill", "-s", "KILL", a)
        ctd.wait_status(a, "STOPPED")
        ctd.ctr_ok("tasks", "rm", a)
    finally:
        ctd.remove(a)
    calls_b = ctd.calls(b)
    assert (0, ["kill", "--all", b, "9"]) in calls_b, calls_b
    deletes = [c for c in calls_b if c[1][0] == "delete"]
    assert (0, ["delete", "--force", b]) in deletes, calls_b
    assert all(rc == 0 for rc, _ in calls_b), calls_b
    assert all(rc == 0 for rc, _ in ctd.calls(a)), ctd.calls(a)


def test_runtime_error_reaches_user(ctd):
    """containerd reads the last error of pyruntime's --log (json lines) and shows it."""
    cid = ctd.new_id("noexec")
    r = ctd.run(cid, ["/no/such/binary"], "--rm")
    try:
        assert r.returncode != 0
        assert "/no/such/binary" in r.stderr and "no such file or directory" in r.stderr, \
            r.stderr
        create = [c for c in ctd.calls(cid) if c[1][0] == "create"]
        assert create and create[0][0] == 1
        # Nothing left of the failed container in pyruntime's root.
        assert ctd.pyrt_state(cid) is None
    finally:
        ctd.remove(cid)


def test_metrics(ctd):
    cid = ctd.new_id("metrics")
    ctd.run(cid, ["sleep", "1000"], "-d", check=True)
    try:
        out = ctd.ctr_ok("tasks", "metrics", cid).stdout
        assert "pids.current" in out and "memory.usage_in_bytes" in out
        pids = [l.split()[1] for l in out.splitlines() if l.startswith("pids.current")]
        assert pids == ["1"]
    finally:
        ctd.remove(cid)


def test_pause_resume(ctd):
    cid = ctd.new_id("pause")
    ctd.run(cid, ["sleep", "1000"], "-d", check=True)
    try:
        ctd.ctr_ok("tasks", "pause", cid)
        assert ctd.tasks()[cid][1] == "PAUSED"
        assert ctd.pyrt_state(cid)["status"] == "paused"
        ctd.ctr_ok("tasks", "resume", cid)
        assert ctd.tasks()[cid][1] == "RUNNING"
        assert ctd.pyrt_state(cid)["status"] == "running"
    finally:
        ctd.remove(cid)


def test_exec(ctd):
    cid = ctd.new_id("exec")
    ctd.run(cid, ["sleep", "1000"], "-d", check=True)
    try:
        r = ctd.ctr("tasks", "exec", "--fifo-dir", ctd.fifo, "--exec-id", "e1", cid,
                    "sh", "-c", "echo in-exec; exit 5")
        assert r.returncode == 5, r.stderr
        assert r.stdout == "in-exec\n"
        rc, out = engutil.run_pty(daemons.ctr_argv(ctd.sock, NS) + [
            "tasks", "exec", "--fifo-dir", ctd.fifo, "--exec-id", "e2", "-t", cid,
            "sh", "-c", "tty"])
        assert rc == 0, out
        assert out.strip().startswith("/dev/pts/"), out
    finally:
        ctd.remove(cid)


def test_delete_of_parent_creator_spares_neighbour(ctd):
    """Issue 18: a's create made the parent cgroup P, b runs in P too. Deleting the stopped
    a must remove a's leaves only, not wait for P to empty (it exited 1 after 37 s): b keeps
    running in its cgroups. The short command timeout turns a wait into a failure."""
    a, b = ctd.new_id("i18-a"), ctd.new_id("i18-b")
    parent = "/%s-i18" % ctd.sb.tag
    ctd.run(a, ["sleep", "1000"], "-d", cgroup=parent + "/" + a, check=True)
    try:
        ctd.run(b, ["sleep", "1000"], "-d", cgroup=parent + "/" + b, check=True)
        pid = ctd.tasks()[b][0]
        dirs = engutil.proc_cgroup_dirs(pid, parent + "/" + b)
        assert dirs and all(engutil.in_cgroup(pid, d) for d in dirs), dirs
        ctd.ctr_ok("tasks", "kill", "-s", "KILL", a)
        ctd.wait_status(a, "STOPPED")
        r = ctd.ctr("tasks", "rm", a, timeout=15)
        assert r.returncode == 0, r.stderr
        assert a not in ctd.tasks() and ctd.pyrt_state(a) is None
        assert ctd.tasks()[b] == (pid, "RUNNING")
        assert all(engutil.in_cgroup(pid, d) for d in dirs), dirs
        assert not [d for d in engutil.cgroup_dirs([a]) if (parent + "/") in d], "a's leaves"
        assert all(rc == 0 for rc, _ in ctd.calls(a)), ctd.calls(a)
    finally:
        ctd.remove(a)
        ctd.remove(b)
        engutil.rmdir_cgroup(parent)
