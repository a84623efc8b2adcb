"""Faults: the runtime killed mid-call, inits that die or are replaced, a state root that is
full or read-only, hooks that hang or leave daemons, containers that ignore SIGTERM.

After every fault: `state` tells the truth (no traceback), `delete --force` removes
everything (state dir, cgroups, the init) and the id can be reused. The autouse leak check
of conftest.py verifies "nothing left" once more after each test.

pyruntime only: the faults are injected with PYRUNTIME_FAULT (pyruntime/faults.py).
"""
import json
import os
import signal
import subprocess
import time

import pytest

import util

SLEEP = ["/bin/sleep", "1000"]


@pytest.fixture(autouse=True)
def _only_pyruntime(rt):
    if not rt.is_pyruntime:
        pytest.skip("fault injection points are pyruntime's (PYRUNTIME_FAULT)")


@pytest.fixture
def counts(pyrt_counts):
    return pyrt_counts


def cgroup_dirs(cid):
    """Cgroup directories named after the container, in every hierarchy."""
    out = []
    for top in os.listdir("/sys/fs/cgroup"):
        for cur, dirs, _ in os.walk(os.path.join("/sys/fs/cgroup", top)):
            out += [os.path.join(cur, d) for d in dirs if cid in d]
    return out


def raw_state(rt, cid):
    try:
        with open(os.path.join(rt.root, cid, "state.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def no_traceback(p):
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    return p


def inject(rt, counts, point, *args, **kw):
    """Run the command with the fault armed: the runtime must have died of SIGKILL."""
    p = rt.run(*args, env={"PYRUNTIME_FAULT": point}, **kw)
    assert p.returncode == -signal.SIGKILL, (point, p.returncode, p.stderr)
    counts["faults injected"] = counts.get("faults injected", 0) + 1
    return p


def state_truth(rt, cid, allowed):
    p = no_traceback(rt.run("state", cid))
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert s["status"] in allowed, s
    if s["status"] == "stopped":
        assert s["pid"] == 0, s
    else:
        assert util.pid_alive(s["pid"]), s
    # list agrees with state
    rows = json.loads(rt.ok("list", "--format", "json").stdout or "[]")
    assert [r["status"] for r in rows if r["id"] == cid] == [s["status"]]
    return s


def gone(rt, cid, pids):
    """Nothing of the container is left: state dir, cgroups, processes."""
    assert not os.path.exists(os.path.join(rt.root, cid))
    assert rt.run("state", cid).returncode == 1
    assert cgroup_dirs(cid) == []
    for pid, start in pids.items():
        assert util.wait_for(lambda: not util.pid_alive(pid, start), 5), "pid %d alive" % pid


def force_delete_and_reuse(rt, cid, bundle, pids):
    no_traceback(rt.ok("delete", "--force", cid))
    gone(rt, cid, pids)
    # the id is free again and works normally
    rt.ok("create", "--bundle", bundle.path, cid)
    rt.ok("start", cid)
    assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "--force", cid)
    gone(rt, cid, {})


def init_pids(rt, cid):
    s = raw_state(rt, cid)
    pid = s.get("pid") or 0
    return {pid: s.get("start_time")} if pid else {}


# ---- the runtime killed during create --------------------------------------------------

# point -> statuses `state` may truthfully report afterwards, and whether the init must die
CREATE_POINTS = {
    "create:state-dir": ({"stopped"}, True),
    "create:spawned": ({"stopped"}, True),
    "create:cgroup": ({"stopped"}, True),
    "create:go": ({"stopped"}, True),
    "create:sync": ({"stopped"}, True),
    # the init is READY (no PDEATHSIG any more) and waits for start: a created container
    "create:before-pidfile": ({"created"}, False),
}


@pytest.mark.parametrize("point", sorted(CREATE_POINTS))
def test_create_killed(rt, make_bundle, cid, pyrt_tmp, counts, point):
    allowed, init_dies = CREATE_POINTS[point]
    b = make_bundle(SLEEP)
    pid_file = os.path.join(pyrt_tmp, "pid")
    inject(rt, counts, point, "create", "--bundle", b.path, "--pid-file", pid_file, cid)
    assert not os.path.exists(pid_file)
    pids = init_pids(rt, cid)
    if init_dies:
        # the init had PDEATHSIG=SIGKILL (or waited for a GO that can never come)
        for pid, start in pids.items():
            assert util.wait_for(lambda: not util.pid_alive(pid, start), 5), \
                "init %d survived its runtime" % pid
    s = state_truth(rt, cid, allowed)
    if s["status"] == "created":
        # start works on what a killed create left in "created"
        rt.ok("start", cid)
        assert rt.state(cid)["status"] == "running"
    force_delete_and_reuse(rt, cid, b, pids)


def test_create_killed_stopped_needs_no_force(rt, make_bundle, cid, counts):
    """A create that died is a stopped container: plain `delete` removes it."""
    b = make_bundle(SLEEP)
    inject(rt, counts, "create:cgroup", "create", "--bundle", b.path, cid)
    pids = init_pids(rt, cid)
    assert cgroup_dirs(cid), "the fault point is after the cgroup is made"
    state_truth(rt, cid, {"stopped"})
    no_traceback(rt.ok("delete", cid))
    gone(rt, cid, pids)


def test_create_killed_by_signal_from_outside(rt, make_bundle, cid, pyrt_tmp, counts):
    """SIGKILL from outside while the init waits at the hooks sync (no fault point: the
    runtime is held there by a createRuntime hook that sleeps, if hooks are supported)."""
    _hooks_supported(rt, make_bundle, cid)
    b = make_bundle(SLEEP)
    marker = os.path.join(pyrt_tmp, "hook-ran")
    b.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo $$ > %s.tmp; mv %s.tmp %s; exec sleep 1000"
                                     % (marker, marker, marker)]}]}
    b.save()
    argv = rt.cmd + ["--root", rt.root, "create", "--bundle", b.path, cid]
    with open(os.path.join(pyrt_tmp, "err"), "w+") as err:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                             start_new_session=True)
        try:
            ok = util.wait_for(lambda: os.path.exists(marker) or p.poll() is not None, 20)
            if p.poll() is not None:
                err.seek(0)
                pytest.fail("create ended before the hook ran: %s" % err.read())
            assert ok
            pids = init_pids(rt, cid)
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    counts["faults injected"] = counts.get("faults injected", 0) + 1
    for pid, start in pids.items():
        assert util.wait_for(lambda: not util.pid_alive(pid, start), 5)
    state_truth(rt, cid, {"stopped", "creating"})
    # the hook process (a child of the killed runtime) is the hook's business, but it must
    # not keep the container: delete --force still removes everything
    with open(marker) as f:
        hook_pid = int(f.read())
    if util.pid_alive(hook_pid):
        os.kill(hook_pid, signal.SIGKILL)
    del b.config["hooks"]
    b.save()
    force_delete_and_reuse(rt, cid, b, pids)


def _kill_procs_with_arg(needle):
    for ent in os.listdir("/proc"):
        if not ent.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % ent, "rb") as f:
                if needle.encode() in f.read():
                    os.kill(int(ent), signal.SIGKILL)
        except OSError:
            pass


# ---- start and delete ------------------------------------------------------------------

def test_start_killed_after_fifo_write(rt, make_bundle, cid, counts):
    b = make_bundle(SLEEP)
    rt.ok("create", "--bundle", b.path, cid)
    pids = init_pids(rt, cid)
    inject(rt, counts, "start:fifo-written", "start", cid)
    # the init got its byte and runs the process although exec.fifo is still there
    s = state_truth(rt, cid, {"running"})
    p = no_traceback(rt.run("start", cid))
    assert p.returncode == 1 and "cannot start an already running container" in p.stderr, p.stderr
    assert rt.state(cid)["pid"] == s["pid"]
    force_delete_and_reuse(rt, cid, b, pids)


def test_delete_killed_after_kill(rt, make_bundle, cid, counts):
    b = make_bundle(SLEEP)
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    pids = init_pids(rt, cid)
    assert cgroup_dirs(cid)
    inject(rt, counts, "delete:killed", "delete", "--force", cid)
    for pid, start in pids.items():
        assert not util.pid_alive(pid, start)
    state_truth(rt, cid, {"stopped"})
    # a stopped container: plain delete finishes the job
    no_traceback(rt.ok("delete", cid))
    gone(rt, cid, pids)
    force_delete_and_reuse(rt, cid, b, {})


def _exec_points():
    try:
        import pyruntime.execproc as ep
    except ImportError:
        return []
    import inspect
    import re
    src = inspect.getsource(ep)
    return sorted(set(re.findall(r'faults\.at\("(exec:[\w.-]+)"\)', src)))


@pytest.mark.parametrize("point", _exec_points() or ["exec:none"])
def test_exec_killed(rt, make_bundle, cid, counts, point):
    if point == "exec:none":
        pytest.skip("pyruntime/execproc.py has no fault points (faults.at(\"exec:...\"))")
    b = make_bundle(SLEEP)
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    pids = init_pids(rt, cid)
    inject(rt, counts, point, "exec", cid, "/bin/sleep", "1000", timeout=30)
    # the container itself is unharmed by a dead exec
    state_truth(rt, cid, {"running"})
    assert rt.run("exec", cid, "/bin/true").returncode == 0
    force_delete_and_reuse(rt, cid, b, pids)


def test_exec_runtime_killed_while_process_runs(rt, make_bundle, cid, pyrt_tmp, counts):
    """A foreground `exec` killed (SIGKILL from outside) while its process runs: the
    container stays running and intact, and delete --force removes the orphaned process."""
    b = make_bundle(SLEEP)
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    pids = init_pids(rt, cid)
    marker = os.path.join(pyrt_tmp, "exec-pid")
    argv = rt.cmd + ["--root", rt.root, "exec", "--pid-file", marker, cid, "/bin/sleep", "999"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert util.wait_for(lambda: os.path.exists(marker) or p.poll() is not None, 20)
        assert p.poll() is None, "exec ended early: %s" % p.returncode
        with open(marker) as f:
            exec_pid = int(f.read())
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    counts["faults injected"] = counts.get("faults injected", 0) + 1
    state_truth(rt, cid, {"running"})
    assert util.pid_alive(exec_pid)
    assert rt.run("exec", cid, "/bin/true").returncode == 0
    pids[exec_pid] = util.start_time(exec_pid)
    force_delete_and_reuse(rt, cid, b, pids)


# ---- the init dies / its pid is reused ---------------------------------------------------

def test_init_dies_between_create_and_start(rt, make_bundle, cid):
    b = make_bundle(SLEEP)
    rt.ok("create", "--bundle", b.path, cid)
    s = rt.state(cid)
    os.kill(s["pid"], signal.SIGKILL)
    assert util.wait_for(lambda: not util.pid_alive(s["pid"]), 5)
    state_truth(rt, cid, {"stopped"})
    p = no_traceback(rt.run("start", cid))
    assert p.returncode == 1 and "cannot start a container that has stopped" in p.stderr, p.stderr
    no_traceback(rt.ok("delete", cid))
    gone(rt, cid, {})


@pytest.mark.parametrize("field", ["pid", "start_time"])
def test_pid_reused_by_unrelated_process(rt, make_bundle, cid, field):
    """The init died and its pid now belongs to someone else: the container is stopped,
    and neither kill nor delete touches that process."""
    b = make_bundle(SLEEP)
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    init = rt.state(cid)["pid"]
    stranger = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        path = os.path.join(rt.root, cid, "state.json")
        with open(path) as f:
            data = json.load(f)
        if field == "pid":
            # the init is gone; its pid is now the stranger's
            os.kill(init, signal.SIGKILL)
            assert util.wait_for(lambda: not util.pid_alive(init), 5)
            data["pid"] = stranger.pid
        else:
            # same pid number, different process instance (start time does not match)
            data["pid"] = stranger.pid
            data["start_time"] = (util.start_time(stranger.pid) or 0) + 12345
        with open(path, "w") as f:
            json.dump(data, f)
        s = state_truth(rt, cid, {"stopped"})
        assert s["pid"] == 0
        p = no_traceback(rt.run("kill", cid, "KILL"))
        assert p.returncode == 1 and "container not running" in p.stderr, p.stderr
        no_traceback(rt.ok("delete", "--force", cid))
        assert util.pid_alive(stranger.pid), "delete killed an unrelated process"
        assert stranger.poll() is None
        if field == "start_time":
            # the real init is still alive (and would still be in its cgroup): only the
            # cgroup cleanup of delete may kill it; make sure nothing is left
            util.wait_for(lambda: not util.pid_alive(init), 5)
        gone(rt, cid, {})
    finally:
        stranger.kill()
        stranger.wait()


# ---- the state root: full, read-only, garbage -------------------------------------------

def _mount_tmpfs(path, opts):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "pyrt-faults", path],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip("cannot mount tmpfs: " + r.stderr)


@pytest.fixture
def tmpfs_root(rt):
    """The test's state root on its own tiny tmpfs (unmounted before the leak check)."""
    _mount_tmpfs(rt.root, "size=64k,nr_inodes=64,mode=0711")
    yield rt.root
    subprocess.run(["umount", "-l", rt.root], check=False)


def _fill(path):
    """Fill the filesystem: blocks and (nearly all) inodes."""
    n = 0
    try:
        with open(os.path.join(path, "filler"), "wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
                n += 1
    except OSError:
        pass
    return n


def _mount_snapshot():
    return sorted((m[1], m[2]) for m in util.mounts())


def assert_clean_failure(rt, p, cid, root):
    no_traceback(p)
    assert p.returncode == 1, (p.returncode, p.stderr)
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, p.stderr
    assert not os.path.exists(os.path.join(root, cid))
    assert not [n for n in os.listdir(root) if ".tmp." in n], os.listdir(root)
    assert cgroup_dirs(cid) == []


def test_state_root_full(rt, make_bundle, cid, tmpfs_root):
    b = make_bundle(SLEEP)
    assert _fill(tmpfs_root) > 0
    p = rt.run("create", "--bundle", b.path, cid)
    assert_clean_failure(rt, p, cid, tmpfs_root)
    assert "no space left on device" in p.stderr.lower(), p.stderr


def test_state_root_full_keeps_existing_state(rt, make_bundle, cid, tmpfs_root):
    """A container created before the disk filled up stays intact and manageable: a
    failed state write never truncates state.json (writes are atomic)."""
    b = make_bundle(SLEEP)
    rt.ok("create", "--bundle", b.path, cid)
    before = open(os.path.join(tmpfs_root, cid, "state.json")).read()
    _fill(tmpfs_root)
    p = no_traceback(rt.run("create", "--bundle", b.path, cid + "-2"))
    assert p.returncode == 1
    assert not os.path.exists(os.path.join(tmpfs_root, cid + "-2"))
    # start unlinks the fifo, kill/state write nothing: all work on a full disk
    rt.ok("start", cid)
    assert rt.state(cid)["status"] == "running"
    assert json.loads(open(os.path.join(tmpfs_root, cid, "state.json")).read()) == json.loads(before)
    os.unlink(os.path.join(tmpfs_root, "filler"))
    rt.ok("delete", "--force", cid)
    gone(rt, cid, {})


def test_state_root_read_only(rt, make_bundle, cid, tmpfs_root):
    b = make_bundle(SLEEP)
    subprocess.run(["mount", "-o", "remount,ro", tmpfs_root], check=True)
    p = rt.run("create", "--bundle", b.path, cid)
    assert_clean_failure(rt, p, cid, tmpfs_root)
    assert "read-only file system" in p.stderr.lower(), p.stderr
    p = no_traceback(rt.run("list"))
    assert p.returncode == 0


# ---- hooks ------------------------------------------------------------------------------

def _hooks_supported(rt, make_bundle, cid):
    b = make_bundle(["/bin/true"])
    b.config["hooks"] = {"createRuntime": [{"path": "/bin/true"}]}
    b.save()
    p = rt.run("create", "--bundle", b.path, cid + "-probe")
    rt.run("delete", "--force", cid + "-probe")
    if p.returncode != 0:
        pytest.skip("hooks do not work yet: " + p.stderr.strip())


def test_hook_that_hangs_times_out(rt, make_bundle, cid):
    _hooks_supported(rt, make_bundle, cid)
    b = make_bundle(SLEEP)
    b.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sleep", "args": ["sleep", "1000"], "timeout": 1}]}
    b.save()
    p = no_traceback(rt.run("create", "--bundle", b.path, cid, timeout=30))
    assert p.returncode == 1, p.stderr
    assert "timeout" in p.stderr.lower() or "timed out" in p.stderr.lower(), p.stderr
    gone(rt, cid, {})
    assert util.wait_for(lambda: not _procs_with_args(["sleep", "1000"], rt), 5)


def _procs_with_args(args, rt):
    """Host processes `args` whose parent is gone or is a runtime of this test."""
    out = []
    want = "\0".join(args).encode() + b"\0"
    for ent in os.listdir("/proc"):
        if not ent.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % ent, "rb") as f:
                if f.read() != want:
                    continue
            with open("/proc/%s/environ" % ent, "rb") as f:
                if rt.root.encode() not in f.read():
                    continue
        except OSError:
            continue
        out.append(int(ent))
    return out


def test_hook_forks_a_daemon(rt, make_bundle, cid, pyrt_tmp):
    """A hook that leaves a daemon behind does not hang create (the daemon keeps the
    hook's stdout/stderr open) and does not stop delete from removing everything."""
    _hooks_supported(rt, make_bundle, cid)
    b = make_bundle(SLEEP)
    tag = os.path.join(pyrt_tmp, "daemon-tag")
    b.config["hooks"] = {"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", "sleep 1000 %s & echo started" % tag]}]}
    b.save()
    try:
        p = no_traceback(rt.run("create", "--bundle", b.path, cid, timeout=30))
        assert p.returncode == 0, p.stderr
        rt.ok("start", cid)
        rt.ok("delete", "--force", cid)
        gone(rt, cid, init_pids(rt, cid))
    finally:
        _kill_procs_with_arg(tag)


# ---- stubborn and messy containers ---------------------------------------------------------

def test_container_ignoring_sigterm(rt, make_bundle, cid):
    b = make_bundle(["/bin/sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    pid = rt.state(cid)["pid"]
    rt.ok("kill", cid, "TERM")
    time.sleep(0.3)
    assert rt.state(cid)["status"] == "running"
    p = no_traceback(rt.run("delete", cid))
    assert p.returncode == 1 and "is not stopped" in p.stderr, p.stderr
    rt.ok("delete", "--force", cid)
    gone(rt, cid, {pid: None})


def test_zombie_producing_init(rt, make_bundle, cid):
    """An init that never reaps its children: state stays right, delete cleans up."""
    b = make_bundle(["/bin/sh", "-c", "for i in 1 2 3 4 5; do /bin/true & done; exec sleep 1000"])
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    s = rt.state(cid)

    def zombies():
        return [c for c in util.children(s["pid"]) if (util.proc_stat(c) or ("",))[0] == "Z"]
    assert util.wait_for(lambda: len(zombies()) == 5, 10), zombies()
    assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "--force", cid)
    gone(rt, cid, {s["pid"]: None})


def test_daemon_without_pid_namespace(rt, make_bundle, cid):
    """No pid namespace: killing the init leaves its daemon; delete --force must still
    remove every process of the container (they are all in its cgroup)."""
    b = make_bundle(["/bin/sh", "-c", "sleep 1000 & exec sleep 1001"])
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                       if n["type"] != "pid"]
    b.save()
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    s = rt.state(cid)
    kids = util.wait_for(lambda: util.children(s["pid"]) or None, 5) or []
    # `sleep 1000 &` was forked by sh before it exec'd sleep 1001: a child of the init
    assert kids
    no_traceback(rt.ok("delete", "--force", cid))
    gone(rt, cid, {p: None for p in kids + [s["pid"]]})
