"""The launcher's fast path (csrc/launcher.c, pyruntime/fastplan.py): start, state, kill
and delete of the ordinary case run from the plan create wrote, without the interpreter;
every other case falls back to the Python path, and the outcome (stdout, stderr, exit
status, state dir, cgroups) is the same with the fast path on and off (PYRT_FASTPATH=0).

PYRT_FASTPATH_TRACE=FILE makes the launcher append "fast CMD" or "fallback CMD: why" to
FILE: that is how these tests see which path ran. The suite as a whole also runs with
PYRT_FASTPATH=0 (run-tests.sh's `wheel` and `cgroup-v2` stages).
"""
import json
import os
import shutil
import subprocess
import time

import pytest

import util


def _fast_launcher(rt):
    if not rt.is_pyruntime:
        return None
    try:
        with open(rt.cmd[0], "rb") as f:
            return os.path.realpath(rt.cmd[0]) if f.read(4) == b"\x7fELF" else None
    except OSError:
        return None


@pytest.fixture
def fast(rt):
    if _fast_launcher(rt) is None:
        pytest.skip("pyruntime's compiled launcher only")
    return rt


def run(rt, tmp, *args, on=True, env=None):
    """rt.run with the trace on; -> (CompletedProcess, trace lines)."""
    trace = os.path.join(tmp, "trace")
    if os.path.exists(trace):
        os.unlink(trace)
    # explicit both ways: the suite also runs with PYRT_FASTPATH=0 in the environment
    e = {"PYRT_FASTPATH_TRACE": trace, "PYRT_FASTPATH": "1" if on else "0"}
    e.update(env or {})
    r = rt.run(*args, env=e)
    lines = []
    if os.path.exists(trace):
        with open(trace) as f:
            lines = f.read().splitlines()
    return r, lines


def outcome(r, *ids):
    """rc, stdout, stderr with the ids (and log timestamps) made comparable"""
    out, err = r.stdout, r.stderr
    for i, x in enumerate(ids):
        out, err = out.replace(x, "ID%d" % i), err.replace(x, "ID%d" % i)
    err = "\n".join(l.split(" level=", 1)[-1] for l in err.splitlines())
    try:
        s = json.loads(out)
    except ValueError:
        s = None
    if isinstance(s, dict):
        # `state` of twins: the same but for their own pid, bundle and creation time
        for k in ("bundle", "rootfs", "created"):
            out = out.replace(fastjson_str(s.get(k)), '"%s"' % k.upper())
        if s.get("pid"):
            out = out.replace('"pid": %d,' % s["pid"], '"pid": PID,')
    return r.returncode, out, err


def fastjson_str(v):
    return json.dumps(v, ensure_ascii=False) if isinstance(v, str) else "\0"


def state_dir(rt, cid):
    d = os.path.join(rt.root, cid)
    return sorted(os.listdir(d)) if os.path.isdir(d) else None


def cgroup_dirs(cid):
    out = []
    for top, dirs, _ in os.walk("/sys/fs/cgroup"):
        out += [os.path.join(top, d) for d in dirs if d == cid]
        dirs[:] = [d for d in dirs if top.count("/") < 6]
    return sorted(out)


def wait_stopped(rt, cid):
    assert util.wait_for(lambda: rt.state(cid)["status"] == "stopped", 10)


# ---- the fast path runs ----------------------------------------------------------------

def test_ordinary_lifecycle_runs_without_the_interpreter(fast, make_bundle, cid, pyrt_tmp):
    """A copy of the launcher whose interpreter cannot run at all: start, state, kill and
    delete still work (so no Python was started), and the trace says "fast" each time."""
    rt = fast
    b = make_bundle(["sleep", "1000"])
    rt.ok("create", "--bundle", b.path, cid)
    d = os.path.join(pyrt_tmp, "nopython")
    os.mkdir(d)
    exe = os.path.join(d, "pyruntime")
    shutil.copy(_fast_launcher(rt), exe)
    with open(exe + "-entry", "w") as f:
        f.write("#!/bin/false\n")
    trace = os.path.join(pyrt_tmp, "trace")
    env = dict(os.environ, PYRT_FASTPATH_TRACE=trace, PYRT_FASTPATH="1")

    def nopy(*args):
        return subprocess.run([exe, "--root", rt.root] + list(args), capture_output=True,
                              text=True, env=env, timeout=30, stdin=subprocess.DEVNULL)

    assert nopy("list").returncode != 0     # this copy really cannot start Python
    r = nopy("state", cid)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "created"
    assert nopy("start", cid).returncode == 0
    assert json.loads(nopy("state", cid).stdout)["status"] == "running"
    assert nopy("kill", cid, "KILL").returncode == 0
    assert util.wait_for(lambda: json.loads(nopy("state", cid).stdout)["status"] == "stopped", 10)
    assert cgroup_dirs(cid)
    r = nopy("delete", cid)
    assert r.returncode == 0, r.stderr
    assert state_dir(rt, cid) is None
    assert cgroup_dirs(cid) == []
    assert nopy("delete", "--force", cid).returncode == 0
    with open(trace) as f:
        lines = f.read().splitlines()
    assert lines[:4] == ["fast state", "fast start", "fast state", "fast kill"], lines
    assert lines[-2:] == ["fast delete", "fast delete"], lines
    assert not any(l.startswith("fallback") for l in lines), lines


def test_engine_globals_keep_the_fast_path(fast, make_bundle, cid, pyrt_tmp):
    """containerd passes --root, --log FILE, --log-format json (and --debug at debug
    level): still the fast path, and the log file is created as the Python path does."""
    rt = fast
    b = make_bundle(["sleep", "1000"])
    rt.ok("create", "--bundle", b.path, cid)
    log = os.path.join(pyrt_tmp, "log.json")
    g = ["--log", log, "--log-format", "json", "--debug"]
    for args in (["state", cid], ["start", cid], ["--log-format=text", "state", cid],
                 ["kill", cid, "9"]):
        r, tr = run(rt, pyrt_tmp, *(g + args))
        assert r.returncode == 0, r.stderr
        assert tr == ["fast " + next(a for a in args if not a.startswith("-"))], (args, tr)
    assert os.path.exists(log) and os.path.getsize(log) == 0
    wait_stopped(rt, cid)
    r, tr = run(rt, pyrt_tmp, *(g + ["delete", "-f", cid]))
    assert (r.returncode, tr) == (0, ["fast delete"]), r.stderr


@pytest.mark.parametrize("flags", [
    ["--systemd-cgroup=true"],
    ["--debug=false", "-systemd-cgroup=True"],
    ["--systemd-cgroup=0", "--debug=1"],
])
def test_boolean_globals_with_a_value_keep_the_fast_path(fast, make_bundle, cid, pyrt_tmp,
                                                         flags):
    """Engines with the systemd driver pass `--systemd-cgroup=true` to every command:
    still the fast path (the cgroup driver is the one create recorded), with the outcome
    of the Python path on a twin."""
    rt = fast
    a, b = _two(rt, make_bundle, cid)
    for step in (["state"], ["start"], ["state"], ["kill", "KILL"], ["delete"]):
        cmd, extra = step[0], step[1:]
        if cmd == "delete":
            for i in (a, b):
                wait_stopped(rt, i)
        on, tr = run(rt, pyrt_tmp, *(flags + [cmd, a] + extra))
        off, tr_off = run(rt, pyrt_tmp, *(flags + [cmd, b] + extra), on=False)
        assert (tr, tr_off) == (["fast " + cmd], []), (step, tr)
        assert outcome(on, a) == outcome(off, b), step
        assert state_dir(rt, a) == state_dir(rt, b), step
        assert [p.replace(a, "ID") for p in cgroup_dirs(a)] == \
            [p.replace(b, "ID") for p in cgroup_dirs(b)], step
    assert state_dir(rt, a) is None


# ---- the same outcome both ways ----------------------------------------------------------

def _two(rt, make_bundle, cid, args=("sleep", "1000"), **cfg):
    """Two containers alike but for their ids: one for each path."""
    ids = [cid, cid + "-b"]
    for i in ids:
        b = make_bundle(list(args))
        b.config.update(cfg)
        b.save()
        rt.ok("create", "--bundle", b.path, i)
    return ids


@pytest.mark.parametrize("stage", ["created", "running", "paused", "stopped"])
def test_state_is_the_same_both_ways(fast, make_bundle, cid, pyrt_tmp, stage):
    rt = fast
    b = make_bundle(["sleep", "1000"])
    b.config["annotations"] = {"a\"b": "quote \" and \\ and \u00e9 \n", "z": "1"}
    b.save()
    rt.ok("create", "--bundle", b.path, cid)
    if stage != "created":
        rt.ok("start", cid)
    if stage == "paused":
        rt.ok("pause", cid)
    if stage == "stopped":
        rt.ok("kill", cid, "KILL")
        wait_stopped(rt, cid)
    on, tr = run(rt, pyrt_tmp, "state", cid)
    off, tr_off = run(rt, pyrt_tmp, "state", cid, on=False)
    assert tr == ["fast state"] and tr_off == []
    assert (on.returncode, on.stdout, on.stderr) == (off.returncode, off.stdout, off.stderr)
    assert json.loads(on.stdout)["status"] == stage
    if stage == "paused":
        rt.ok("resume", cid)


@pytest.mark.parametrize("steps", [
    [["start"]],
    [["start"], ["kill"], ["kill", "KILL"]],     # SIGTERM: pid 1 without a handler ignores it
    [["start"], ["kill", "sigkill"], ["delete"]],
    [["kill", "SIGKILL"], ["delete", "--force"]],
    [["start"], ["kill", "9"], ["delete", "-f"], ["delete", "--force"]],
])
def test_commands_are_the_same_both_ways(fast, make_bundle, cid, pyrt_tmp, steps):
    """Each step on one container with the fast path, on its twin without: same output,
    exit status, state dir and cgroups; and the fast one did take the fast path."""
    rt = fast
    a, b = _two(rt, make_bundle, cid)
    for step in steps:
        cmd, rest = step[0], step[1:]
        flags = [x for x in rest if x.startswith("-")]
        extra = [x for x in rest if not x.startswith("-")]
        if cmd == "delete":
            for i in (a, b):
                if state_dir(rt, i) is not None:
                    wait_stopped(rt, i)
        on, tr = run(rt, pyrt_tmp, cmd, *flags, a, *extra)
        off, tr_off = run(rt, pyrt_tmp, cmd, *flags, b, *extra, on=False)
        assert tr == ["fast " + cmd], tr
        assert tr_off == []
        assert outcome(on, a) == outcome(off, b), step
        assert state_dir(rt, a) == state_dir(rt, b), step
        assert [p.replace(a, "ID") for p in cgroup_dirs(a)] == \
            [p.replace(b, "ID") for p in cgroup_dirs(b)], step
    for i in (a, b):
        if state_dir(rt, i) is not None:
            rt.ok("delete", "--force", i)


@pytest.mark.parametrize("started", [False, True], ids=["created", "running"])
def test_delete_force_of_a_live_container_is_the_same_both_ways(fast, make_bundle, cid,
                                                                 pyrt_tmp, started):
    """delete --force of a created or running container (CRI removes a created one, a
    failed start leaves one): the launcher kills the init, named by a pidfd and its start
    time, waits for it and removes the container, leaving what the Python path leaves."""
    rt = fast
    a, b = _two(rt, make_bundle, cid)
    inits = {}
    for i in (a, b):
        if started:
            rt.ok("start", i)
        s = rt.state(i)
        inits[i] = (s["pid"], util.proc_stat(s["pid"])[1])
        assert util.pid_alive(*inits[i])
    on, tr = run(rt, pyrt_tmp, "delete", "--force", a)
    off, tr_off = run(rt, pyrt_tmp, "delete", "--force", b, on=False)
    assert tr == ["fast delete"], tr
    assert tr_off == []
    assert outcome(on, a) == outcome(off, b) == (0, "", "")
    for i in (a, b):
        assert state_dir(rt, i) is None
        assert cgroup_dirs(i) == []
        assert not util.pid_alive(*inits[i])


# ---- everything else falls back ----------------------------------------------------------

def _falls_back(rt, tmp, a, b, args_a, args_b, cmd, env=None):
    on, tr = run(rt, tmp, *args_a, env=env)
    off, _ = run(rt, tmp, *args_b, on=False, env=env)
    assert len(tr) == 1 and tr[0].startswith("fallback %s" % cmd), tr
    assert outcome(on, a) == outcome(off, b)
    assert state_dir(rt, a) == state_dir(rt, b)
    return on, tr[0]


@pytest.mark.parametrize("case", [
    "start-running", "start-stopped", "start-poststart", "start-paused",
    "kill-all", "kill-stopped", "kill-rt-signal", "kill-bad-signal", "kill-extra-arg",
    "delete-running", "delete-force-paused", "delete-force-poststop", "delete-poststop",
    "delete-missing", "delete-cgroup-busy",
    "state-rewritten", "state-damaged", "plan-not-owned", "plan-writable", "plan-torn",
    "global-rootless", "global-log-format", "global-unknown", "global-bool-value",
    "log-unopenable",
    "fault-injection", "invalid-id", "delete-flag-after-id",
])
def test_unusual_cases_fall_back(fast, make_bundle, cid, pyrt_tmp, case):
    rt = fast
    cfg = {}
    args = ("sleep", "1000")
    if case == "start-poststart":
        cfg["hooks"] = {"poststart": [{"path": "/bin/true"}]}
    if case in ("delete-poststop", "delete-force-poststop"):
        cfg["hooks"] = {"poststop": [{"path": "/bin/true"}]}
    a, b = _two(rt, make_bundle, cid, args, **cfg)
    both = (a, b)
    cmd = case.split("-")[0]
    if cmd in ("plan", "state", "global", "log", "fault", "invalid"):
        cmd = "state"
    argv = {"start": ["start", "{}"], "kill": ["kill", "{}"], "delete": ["delete", "{}"],
            "state": ["state", "{}"]}[cmd]
    env = None
    if case in ("start-running", "kill-stopped", "kill-all", "kill-rt-signal",
                "kill-bad-signal", "kill-extra-arg", "delete-running",
                "delete-force-paused", "delete-force-poststop", "start-stopped",
                "delete-poststop", "delete-cgroup-busy", "start-paused"):
        for i in both:
            rt.ok("start", i)
    if case in ("kill-stopped", "start-stopped", "delete-poststop"):
        for i in both:
            rt.ok("kill", i, "KILL")
            wait_stopped(rt, i)
    if case in ("start-paused", "delete-force-paused"):
        # a frozen init cannot die until thawed: Python's delete thaws it
        for i in both:
            rt.ok("pause", i)
    if case == "kill-all":
        argv = ["kill", "--all", "{}", "KILL"]
    elif case == "kill-rt-signal":
        argv = ["kill", "{}", "RTMIN+1"]
    elif case == "kill-bad-signal":
        argv = ["kill", "{}", "NOSUCH"]
    elif case == "kill-extra-arg":
        argv = ["kill", "{}", "TERM", "extra"]
    elif case in ("delete-force-paused", "delete-force-poststop"):
        argv = ["delete", "--force", "{}"]
    elif case == "delete-missing":
        argv = ["delete", "{}-missing"]
    elif case == "delete-flag-after-id":
        argv = ["delete", "{}", "--force"]
    elif case == "delete-cgroup-busy":
        # the init is gone but a process of someone else's is in the container's cgroup:
        # whose it is and what to do is Python's to decide
        for i in both:
            st = rt.state(i)
            procs = [p for p in cgroup_dirs(i) if "/pids/" in p or p.startswith("/sys/fs/cgroup/" + i)]
            holder = subprocess.Popen(["sleep", "1000"])
            pyrt_tmp_holders.append(holder)
            with open(os.path.join(procs[0], "cgroup.procs"), "w") as f:
                f.write(str(holder.pid))
            os.kill(st["pid"], 9)
        for i in both:
            wait_stopped(rt, i)
    elif case == "state-rewritten":
        for i in both:   # the same content, a new file: not the one the plan was made for
            p = os.path.join(rt.root, i, "state.json")
            data = open(p, "rb").read()
            os.unlink(p)
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, 0o600)
    elif case == "state-damaged":
        for i in both:
            with open(os.path.join(rt.root, i, "state.json"), "r+b") as f:
                f.seek(5)
                f.write(b"\x00garbage")
    elif case in ("plan-not-owned", "plan-writable", "plan-torn"):
        p = os.path.join(rt.root, a, "fast.plan")
        if case == "plan-not-owned":
            os.chown(p, 1000, 1000)
        elif case == "plan-writable":
            os.chmod(p, 0o622)
        else:
            data = open(p).read()
            with open(p, "w") as f:
                f.write(data[:len(data) // 2])
    elif case == "global-rootless":
        argv = ["--rootless", "false"] + argv
    elif case == "global-log-format":
        argv = ["--log-format", "xml"] + argv
    elif case == "global-unknown":
        argv = ["--no-such-option"] + argv
    elif case == "global-bool-value":
        argv = ["--systemd-cgroup=yes"] + argv     # Python's usage error, one implementation
    elif case == "log-unopenable":
        argv = ["--log", os.path.join(pyrt_tmp, "no", "such", "dir", "log")] + argv
    elif case == "fault-injection":
        env = {"PYRUNTIME_FAULT": "create:go"}
    elif case == "invalid-id":
        argv = ["state", "{}/.."]
    try:
        on, line = _falls_back(rt, pyrt_tmp, a, b, [x.replace("{}", a) for x in argv],
                               [x.replace("{}", b) for x in argv], cmd, env)
        if case.startswith("plan-"):
            # only the damaged plan: the twin's intact one is still taken
            r, tr = run(rt, pyrt_tmp, "state", b)
            assert tr == ["fast state"]
            assert outcome(r, b) == outcome(on, a)
    finally:
        for h in pyrt_tmp_holders:
            h.kill()
            h.wait()
        del pyrt_tmp_holders[:]
        for i in both:
            if state_dir(rt, i) is not None:
                if case == "start-paused":
                    rt.run("resume", i)
                rt.run("delete", "--force", i)
            # a delete that found the cgroup busy left it (both ways): ours to remove
            for d in sorted(cgroup_dirs(i), key=len, reverse=True):
                if util.wait_for(lambda: _empty(d), 10):
                    os.rmdir(d)


pyrt_tmp_holders = []


def _empty(d):
    try:
        with open(os.path.join(d, "cgroup.procs")) as f:
            return not f.read().strip()
    except FileNotFoundError:
        return True


def test_switch_off_means_no_fast_path_at_all(fast, make_bundle, cid, pyrt_tmp):
    rt = fast
    b = make_bundle(["sleep", "1000"])
    rt.ok("create", "--bundle", b.path, cid)
    for args in (["state", cid], ["start", cid], ["kill", cid, "KILL"]):
        r, tr = run(rt, pyrt_tmp, *args, on=False)
        assert r.returncode == 0 and tr == [], (args, tr)
    wait_stopped(rt, cid)
    r, tr = run(rt, pyrt_tmp, "delete", cid, on=False)
    assert r.returncode == 0 and tr == []
    r, tr = run(rt, pyrt_tmp, "delete", "--force", cid + "-none", on=False)
    assert r.returncode == 0 and tr == []


def test_plan_written_at_create_is_private(fast, make_bundle, cid):
    rt = fast
    b = make_bundle(["sleep", "1000"])
    rt.ok("create", "--bundle", b.path, cid)
    st = os.stat(os.path.join(rt.root, cid, "fast.plan"))
    assert st.st_mode & 0o777 == 0o600 and st.st_uid == os.geteuid()
    rt.ok("delete", "--force", cid)


def _take_pid(pid, tries=200):
    """A process of ours with exactly this (free) pid, through ns_last_pid; None if
    another process on the machine kept taking it."""
    for _ in range(tries):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        p = subprocess.Popen(["sleep", "1000"], start_new_session=True)
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    return None


def test_kill_of_a_reused_pid_is_refused(fast, make_bundle, cid, pyrt_tmp):
    """The init died and a stranger now has its pid, the plan and state.json untouched:
    the launcher's pidfd + start-time check refuses it, Python reports the container
    stopped, and no command touches the stranger."""
    rt = fast
    b = make_bundle(["sleep", "1000"])
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    init = rt.state(cid)["pid"]
    os.kill(init, 9)
    assert util.wait_for(lambda: not os.path.exists("/proc/%d" % init), 10)
    stranger = _take_pid(init)
    if stranger is None:
        pytest.skip("pid %d kept being taken by other processes" % init)
    try:
        for sig in ("KILL", "TERM", "9"):
            r, tr = run(rt, pyrt_tmp, "kill", cid, sig)
            assert len(tr) == 1 and tr[0].startswith("fallback kill"), tr
            assert r.returncode == 1 and "container not running" in r.stderr, r.stderr
            assert stranger.poll() is None
        r, tr = run(rt, pyrt_tmp, "state", cid)
        assert tr == ["fast state"] and json.loads(r.stdout)["status"] == "stopped"
        assert json.loads(r.stdout)["pid"] == 0
        r, tr = run(rt, pyrt_tmp, "delete", cid)
        assert r.returncode == 0 and tr == ["fast delete"], (r.stderr, tr)
        assert state_dir(rt, cid) is None and cgroup_dirs(cid) == []
        assert stranger.poll() is None, "delete touched an unrelated process"
    finally:
        stranger.kill()
        stranger.wait()
