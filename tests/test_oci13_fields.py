"""OCI runtime-spec 1.3 fields applied (not refused): process.scheduler, process.ioPriority,
linux.memoryPolicy, linux.personality, process.execCPUAffinity, linux.netDevices; and
linux.intelRdt refused in one line where the host has no resctrl. Each effect is read from
inside the container (or from the host through the container's pid); each invalid value is
one line naming the field, with nothing left behind (the autouse leak check).

runc 1.1.5 predates these fields (it ignores them): the tests that check an effect are for
pyruntime only.
"""
import ctypes
import json
import os
import subprocess
import uuid

import pytest

import util


@pytest.fixture
def pyrt(rt):
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 predates the OCI 1.3 fields (it ignores them)")
    return rt


def sh_bundle(make_bundle, script, process=None, linux=None):
    b = make_bundle(["sh", "-c", script])
    b.config["process"].update(process or {})
    b.config["linux"].update(linux or {})
    b.save()
    return b


def run_out(rt, b, cid):
    return rt.ok("run", "--bundle", b.path, cid).stdout


def stat_fields(text):
    """/proc/PID/stat fields, 1-based as in proc(5), past the command name."""
    rest = text[text.rindex(")") + 2:].split()
    return {i + 3: v for i, v in enumerate(rest)}


def status_fields(text):
    return {k: v.strip() for k, _, v in (x.partition(":") for x in text.splitlines()) if v}


def one_line_error(r, *words):
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


# ---- process.scheduler ---------------------------------------------------------------------

@pytest.mark.parametrize("policy,num,nice", [("SCHED_BATCH", 3, 7), ("SCHED_OTHER", 0, 4),
                                              ("SCHED_IDLE", 5, 0)])
def test_scheduler_policy_and_nice(pyrt, make_bundle, cid, policy, num, nice):
    b = sh_bundle(make_bundle, "cat /proc/self/stat",
                  process={"scheduler": {"policy": policy, "nice": nice}})
    f = stat_fields(run_out(pyrt, b, cid))
    assert f[41] == str(num)      # policy
    if policy != "SCHED_IDLE":
        assert f[19] == str(nice)  # nice


RT_GROUP = os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us")  # v1, RT_GROUP_SCHED


@pytest.mark.parametrize("policy,num", [("SCHED_FIFO", 1), ("SCHED_RR", 2)])
def test_scheduler_realtime(pyrt, make_bundle, cid, policy, num):
    """Realtime: applied once the container's cgroup has realtime bandwidth (cgroup v1 with
    RT_GROUP_SCHED gives a new cgroup none); the init takes the policy after it is placed."""
    b = sh_bundle(make_bundle, "cat /proc/self/stat",
                  process={"scheduler": {"policy": policy, "priority": 10}})
    if RT_GROUP:
        b.config["linux"]["resources"]["cpu"] = {"realtimeRuntime": 10000,
                                                 "realtimePeriod": 1000000}
        b.save()
    f = stat_fields(run_out(pyrt, b, cid))
    assert (f[41], f[40]) == (str(num), "10")  # policy, rt_priority


def test_scheduler_realtime_refused_one_line(pyrt, make_bundle, cid):
    if not RT_GROUP:
        pytest.skip("no realtime group scheduling: a realtime policy is not refused here")
    b = sh_bundle(make_bundle, "true", process={"scheduler": {"policy": "SCHED_FIFO",
                                                              "priority": 10}})
    one_line_error(pyrt.run("run", "--bundle", b.path, cid), "process.scheduler",
                   "SCHED_FIFO", "operation not permitted", "realtimeRuntime")


def test_scheduler_deadline(pyrt, make_bundle, cid):
    b = sh_bundle(make_bundle, "cat /proc/self/stat", process={"scheduler": {
        "policy": "SCHED_DEADLINE", "runtime": 1000000, "deadline": 2000000,
        "period": 4000000}})
    assert stat_fields(run_out(pyrt, b, cid))[41] == "6"


class _SchedAttr(ctypes.Structure):
    _fields_ = [("size", ctypes.c_uint32), ("policy", ctypes.c_uint32),
                ("flags", ctypes.c_uint64), ("nice", ctypes.c_int32),
                ("priority", ctypes.c_uint32), ("runtime", ctypes.c_uint64),
                ("deadline", ctypes.c_uint64), ("period", ctypes.c_uint64)]


def _sched_getattr(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    a = _SchedAttr()
    # SYS_sched_getattr (x86_64)
    r = libc.syscall(315, pid, ctypes.byref(a), ctypes.sizeof(a), 0)
    assert r == 0, os.strerror(ctypes.get_errno())
    return a


def test_scheduler_deadline_parameters(pyrt, make_bundle, cid):
    """Each number reaches its own field of sched_setattr (runtime, deadline, period are
    all u64 and in a fixed order; a flag and nice beside them): read back from the host."""
    if os.uname().machine != "x86_64":
        pytest.skip("syscall number for x86_64")
    b = sh_bundle(make_bundle, "sleep 60", process={"scheduler": {
        "policy": "SCHED_DEADLINE", "runtime": 1100000, "deadline": 2300000,
        "period": 4700000, "flags": ["SCHED_FLAG_RESET_ON_FORK"]}})
    pyrt.ok("create", "--bundle", b.path, cid)
    try:
        a = _sched_getattr(pyrt.state(cid)["pid"])
        assert (a.policy, a.runtime, a.deadline, a.period) == (6, 1100000, 2300000, 4700000)
        assert a.flags & 0x01   # SCHED_FLAG_RESET_ON_FORK
    finally:
        pyrt.run("delete", "-f", cid)


def test_scheduler_nice_negative(pyrt, make_bundle, cid):
    # nice is the one signed field of sched_attr
    b = sh_bundle(make_bundle, "sleep 60",
                  process={"scheduler": {"policy": "SCHED_OTHER", "nice": -7}})
    pyrt.ok("create", "--bundle", b.path, cid)
    try:
        a = _sched_getattr(pyrt.state(cid)["pid"])
        assert (a.policy, a.nice) == (0, -7)
    finally:
        pyrt.run("delete", "-f", cid)


# ---- process.ioPriority ----------------------------------------------------------------------

def _ioprio_get(pid):
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    v = libc.syscall(252, 1, pid, 0)  # SYS_ioprio_get (x86_64), IOPRIO_WHO_PROCESS
    assert v >= 0, os.strerror(ctypes.get_errno())
    return v >> 13, v & 0x1fff


@pytest.mark.parametrize("cls,num,prio", [("IOPRIO_CLASS_BE", 2, 5), ("IOPRIO_CLASS_RT", 1, 2),
                                           ("IOPRIO_CLASS_IDLE", 3, 7)])
def test_io_priority(pyrt, make_bundle, cid, cls, num, prio):
    b = sh_bundle(make_bundle, "ionice; sleep 60",
                  process={"ioPriority": {"class": cls, "priority": prio}})
    pyrt.ok("create", "--bundle", b.path, cid)
    try:
        pid = pyrt.state(cid)["pid"]
        assert _ioprio_get(pid) == (num, prio)   # set before the container's program runs
        pyrt.ok("start", cid)
        out = pyrt.ok("exec", cid, "ionice", "-p", "1").stdout  # busybox reads it inside
        name = {1: "realtime", 2: "best-effort", 3: "idle"}[num]
        assert name in out, out
    finally:
        pyrt.run("delete", "-f", cid)


# ---- linux.memoryPolicy ------------------------------------------------------------------------

@pytest.mark.parametrize("mode,nodes,flags,shown", [
    ("MPOL_BIND", "0", [], "bind:0"),
    ("MPOL_INTERLEAVE", "0", [], "interleave:0"),
    ("MPOL_PREFERRED", "0", [], "prefer:0"),
    ("MPOL_LOCAL", "", [], "local"),
    ("MPOL_BIND", "0", ["MPOL_F_STATIC_NODES"], "bind=static:0"),
])
def test_memory_policy(pyrt, make_bundle, cid, mode, nodes, flags, shown):
    mp = {"mode": mode, "flags": flags}
    if nodes:
        mp["nodes"] = nodes
    b = sh_bundle(make_bundle, "head -n 1 /proc/self/numa_maps", linux={"memoryPolicy": mp})
    out = run_out(pyrt, b, cid)
    assert out.split()[1] == shown, out


# ---- linux.personality -------------------------------------------------------------------------

def test_personality_linux32(pyrt, make_bundle, cid):
    b = sh_bundle(make_bundle, "uname -m", linux={"personality": {"domain": "LINUX32"}})
    assert run_out(pyrt, b, cid).strip() == "i686"


def test_personality_linux(pyrt, make_bundle, cid):
    b = sh_bundle(make_bundle, "uname -m", linux={"personality": {"domain": "LINUX"}})
    assert run_out(pyrt, b, cid).strip() == os.uname().machine


def test_personality_holds_for_exec(pyrt, make_bundle, cid):
    b = sh_bundle(make_bundle, "sleep 60", linux={"personality": {"domain": "LINUX32"}})
    pyrt.ok("run", "-d", "--bundle", b.path, cid)
    try:
        assert pyrt.ok("exec", cid, "uname", "-m").stdout.strip() == "i686"
    finally:
        pyrt.run("delete", "-f", cid)


# ---- process.execCPUAffinity ---------------------------------------------------------------

def _cpus(text):
    return status_fields(text)["Cpus_allowed_list"]


def test_exec_cpu_affinity_from_process_file(pyrt, make_bundle, cid, pyrt_tmp):
    if os.cpu_count() < 2:
        pytest.skip("needs two CPUs")
    b = sh_bundle(make_bundle, "sleep 60")
    pyrt.ok("run", "-d", "--bundle", b.path, cid)
    try:
        base = dict(b.config["process"], args=["cat", "/proc/self/status"])
        for aff, want in (({"initial": "0", "final": "1"}, "1"), ({"final": "0"}, "0"),
                          ({"initial": "1"}, "0-1")):  # no final: the cgroup's CPUs
            p = os.path.join(pyrt_tmp, "process.json")
            with open(p, "w") as f:
                json.dump(dict(base, execCPUAffinity=aff), f)
            assert _cpus(pyrt.ok("exec", "--process", p, cid).stdout) == want, aff
    finally:
        pyrt.run("delete", "-f", cid)


def test_exec_cpu_affinity_from_config(pyrt, make_bundle, cid):
    """config.json's process is exec's default; the init itself is not bound (the spec:
    not applicable to the container's init process)."""
    if os.cpu_count() < 2:
        pytest.skip("needs two CPUs")
    b = sh_bundle(make_bundle, "grep Cpus_allowed_list /proc/self/status; sleep 60",
                  process={"execCPUAffinity": {"final": "1"}})
    pyrt.ok("run", "-d", "--bundle", b.path, cid)
    try:
        pid = pyrt.state(cid)["pid"]
        with open("/proc/%d/status" % pid) as f:
            assert _cpus(f.read()) == "0-1"
        assert _cpus(pyrt.ok("exec", cid, "cat", "/proc/self/status").stdout) == "1"
    finally:
        pyrt.run("delete", "-f", cid)


# ---- linux.netDevices ---------------------------------------------------------------------------

@pytest.fixture
def dummy():
    """A host interface of the test's own: a dummy, or where the kernel has no dummy
    driver one end of a veth pair (its peer stays on the host)."""
    tag = uuid.uuid4().hex[:8]
    name, peer = "pyrt" + tag, "pyrq" + tag
    r = subprocess.run(["ip", "link", "add", name, "type", "dummy"], capture_output=True)
    if r.returncode != 0:
        subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer],
                       check=True)
    yield name
    for n in (name, peer):
        if os.path.exists("/sys/class/net/" + n):
            subprocess.run(["ip", "link", "del", n], check=False)


def test_net_device_moved_and_renamed(pyrt, make_bundle, cid, dummy):
    b = sh_bundle(make_bundle, "ls /sys/class/net",
                  linux={"netDevices": {dummy: {"name": "ctr0"}}})
    out = run_out(pyrt, b, cid).split()
    assert "ctr0" in out and dummy not in out, out


def test_net_device_back_to_host_on_delete(pyrt, make_bundle, cid, dummy):
    b = sh_bundle(make_bundle, "sleep 60", linux={"netDevices": {dummy: {}}})
    pyrt.ok("create", "--bundle", b.path, cid)
    try:
        assert not os.path.exists("/sys/class/net/" + dummy)
        pyrt.ok("start", cid)
        assert dummy in pyrt.ok("exec", cid, "ip", "link").stdout
    finally:
        pyrt.ok("delete", "-f", cid)
    assert os.path.exists("/sys/class/net/" + dummy)


def test_net_device_renamed_back_to_host_name(pyrt, make_bundle, cid, dummy):
    b = sh_bundle(make_bundle, "sleep 60", linux={"netDevices": {dummy: {"name": "eth7"}}})
    pyrt.ok("run", "-d", "--bundle", b.path, cid)
    try:
        assert "eth7" in pyrt.ok("exec", cid, "ls", "/sys/class/net").stdout.split()
    finally:
        pyrt.ok("delete", "-f", cid)
    assert os.path.exists("/sys/class/net/" + dummy)


def test_net_device_missing_one_line(pyrt, make_bundle, cid):
    b = sh_bundle(make_bundle, "true", linux={"netDevices": {"pyrtnosuchdev": {}}})
    one_line_error(pyrt.run("run", "--bundle", b.path, cid), "linux.netDevices", "pyrtnosuchdev")


def test_net_device_failure_gives_the_first_back(pyrt, make_bundle, cid, dummy):
    b = sh_bundle(make_bundle, "true", linux={"netDevices": {dummy: {}, "pyrtnosuchdev": {}}})
    one_line_error(pyrt.run("run", "--bundle", b.path, cid), "linux.netDevices")
    assert os.path.exists("/sys/class/net/" + dummy)


def test_net_device_needs_own_netns(pyrt, make_bundle, cid, dummy):
    b = sh_bundle(make_bundle, "true", linux={"netDevices": {dummy: {}}})
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                       if n["type"] != "network"]
    b.save()
    one_line_error(pyrt.run("run", "--bundle", b.path, cid), "linux.netDevices")
    assert os.path.exists("/sys/class/net/" + dummy)


# ---- invalid values: one line naming the field, nothing created -------------------------------

BAD = [
    ("process", {"scheduler": {"policy": "SCHED_ISO"}}, "process.scheduler.policy"),
    ("process", {"scheduler": {"policy": "SCHED_OTHER", "nice": 40}}, "scheduler.nice"),
    ("process", {"scheduler": {"policy": "SCHED_DEADLINE", "runtime": 10, "deadline": 5,
                               "period": 1}}, "process.scheduler"),
    ("process", {"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 9}}, "ioPriority"),
    ("process", {"ioPriority": {"class": "IOPRIO_CLASS_X"}}, "ioPriority"),
    ("process", {"execCPUAffinity": {"final": "3-1"}}, "process.execCPUAffinity.final"),
    ("process", {"execCPUAffinity": {"initial": "99999"}}, "process.execCPUAffinity.initial"),
    ("linux", {"memoryPolicy": {"mode": "MPOL_BIND"}}, "linux.memoryPolicy.nodes"),
    ("linux", {"memoryPolicy": {"mode": "MPOL_LOCAL", "nodes": "0"}}, "linux.memoryPolicy.nodes"),
    ("linux", {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags":
                                ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]}},
     "linux.memoryPolicy.flags"),
    ("linux", {"memoryPolicy": {"mode": "MPOL_BIND", "nodes": "63"}}, "linux.memoryPolicy"),
    ("linux", {"personality": {"domain": "LINUX", "flags": ["BOGUS"]}}, "linux.personality.flags"),
    ("linux", {"personality": {"domain": "WINDOWS"}}, "personality"),
    ("linux", {"personality": {"flags": []}}, "linux.personality.domain"),
    ("linux", {"netDevices": {"a/b": {}}}, "linux.netDevices"),
    ("linux", {"netDevices": {"eth0": {"name": "x" * 16}}}, "linux.netDevices.eth0.name"),
    ("linux", {"intelRdt": {"closID": "c1"}}, "linux.intelRdt"),
]


@pytest.mark.parametrize("section,value,field", BAD, ids=[b[2] + "-%d" % i for i, b in enumerate(BAD)])
def test_invalid_values_one_line(pyrt, make_bundle, cid, section, value, field):
    if "intelRdt" in value and os.path.isdir("/sys/fs/resctrl/info"):
        pytest.skip("the host has resctrl")
    b = make_bundle(["true"])
    b.config[section].update(value)
    b.save()
    one_line_error(pyrt.run("run", "--bundle", b.path, cid), field)
    assert pyrt.container_ids() == []


def test_invalid_exec_process_one_line(pyrt, make_bundle, cid, pyrt_tmp):
    b = sh_bundle(make_bundle, "sleep 60")
    pyrt.ok("run", "-d", "--bundle", b.path, cid)
    try:
        for bad, field in (({"execCPUAffinity": {"final": "x"}}, "execCPUAffinity.final"),
                           ({"execCPUAffinity": {"initial": "2-1"}}, "execCPUAffinity.initial"),
                           ({"scheduler": {"policy": "SCHED_ISO"}}, "process.scheduler")):
            p = os.path.join(pyrt_tmp, "process.json")
            with open(p, "w") as f:
                json.dump(dict(b.config["process"], args=["true"], **bad), f)
            one_line_error(pyrt.run("exec", "--process", p, cid), field)
    finally:
        pyrt.run("delete", "-f", cid)


# ---- features ---------------------------------------------------------------------------------

def test_features_lists_what_works(pyrt):
    doc = json.loads(pyrt.ok("features").stdout)
    assert doc["linux"]["netDevices"] == {"enabled": True}
    assert doc["linux"]["intelRdt"] == {"enabled": False}


def test_plan_shows_the_steps(pyrt, make_bundle):
    b = make_bundle(["true"])
    b.config["process"]["scheduler"] = {"policy": "SCHED_BATCH", "nice": 3}
    b.config["process"]["ioPriority"] = {"class": "IOPRIO_CLASS_BE", "priority": 4}
    b.config["linux"]["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0"}
    b.config["linux"]["personality"] = {"domain": "LINUX32"}
    b.save()
    plan = json.loads(pyrt.ok("plan", "-b", b.path).stdout)
    ops = [s["op"] for s in plan["steps"]]
    for op in ("sched", "ioprio", "mempolicy", "personality"):
        assert op in ops
    # all before the container's identity is taken, and so before exec
    assert max(ops.index(o) for o in ("sched", "ioprio", "mempolicy", "personality")) \
        < ops.index("identity")


def test_exec_process_scheduler_and_io_priority(pyrt, make_bundle, cid, pyrt_tmp):
    """`exec --process` applies the process's own scheduler and I/O priority."""
    b = sh_bundle(make_bundle, "sleep 60")
    pyrt.ok("run", "-d", "--bundle", b.path, cid)
    try:
        p = os.path.join(pyrt_tmp, "process.json")
        with open(p, "w") as f:
            json.dump(dict(b.config["process"], args=["sh", "-c", "cat /proc/self/stat; ionice"],
                           scheduler={"policy": "SCHED_BATCH", "nice": 6},
                           ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 6}), f)
        out = pyrt.ok("exec", "--process", p, cid).stdout
        stat, _, ionice = out.partition("\n")
        f = stat_fields(stat)
        assert (f[41], f[19]) == ("3", "6")
        assert "best-effort" in ionice and "6" in ionice, ionice
        # the init keeps its own (none set)
        init = stat_fields(open("/proc/%d/stat" % pyrt.state(cid)["pid"]).read())
        assert (init[41], init[19]) == ("0", "0")
    finally:
        pyrt.run("delete", "-f", cid)


@pytest.fixture
def netns():
    name = "pyrtns" + uuid.uuid4().hex[:8]
    subprocess.run(["ip", "netns", "add", name], check=True)
    yield name
    subprocess.run(["ip", "netns", "del", name], check=False)


def test_net_device_joined_netns_back_after_exit(pyrt, make_bundle, cid, dummy, netns):
    """A joined network namespace outlives the container: its devices come back on delete
    even after the container's processes are gone."""
    b = sh_bundle(make_bundle, "ls /sys/class/net", linux={"netDevices": {dummy: {"name": "in0"}}})
    for n in b.config["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = "/run/netns/" + netns
    b.save()
    pyrt.ok("create", "--bundle", b.path, cid)
    try:
        pyrt.ok("start", cid)
        util.wait_for(lambda: pyrt.state(cid)["status"] == "stopped")
        assert not os.path.exists("/sys/class/net/" + dummy)
    finally:
        pyrt.ok("delete", "-f", cid)
    assert os.path.exists("/sys/class/net/" + dummy)
    inside = subprocess.run(["ip", "netns", "exec", netns, "ls", "/sys/class/net"],
                            capture_output=True, text=True).stdout.split()
    assert "in0" not in inside


def test_net_device_host_netns_path_refused(pyrt, make_bundle, cid, dummy):
    b = sh_bundle(make_bundle, "true", linux={"netDevices": {dummy: {}}})
    for n in b.config["linux"]["namespaces"]:
        if n["type"] == "network":
            n["path"] = "/proc/%d/ns/net" % os.getpid()  # the host's (ours)
    b.save()
    one_line_error(pyrt.run("run", "--bundle", b.path, cid), "linux.netDevices")
    assert os.path.exists("/sys/class/net/" + dummy)


def test_net_device_back_when_create_fails_later(pyrt, make_bundle, cid, dummy):
    """A create that fails after the move (here: no such program) gives the device back
    before the init, and its namespace, go."""
    b = make_bundle(["/no/such/program"])
    b.config["linux"]["netDevices"] = {dummy: {"name": "ctr1"}}
    b.save()
    one_line_error(pyrt.run("create", "--bundle", b.path, cid), "no/such/program")
    assert os.path.exists("/sys/class/net/" + dummy)
