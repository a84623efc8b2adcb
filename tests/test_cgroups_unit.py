"""pyruntime.cgroups on this host (cgroup v1, hybrid): real cgroups under
/pyrt-test-<rand>/..., real child processes. Needs root."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from pyruntime import cgroups
from pyruntime.cgroups import common, devices
from pyruntime.errors import CgroupError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

V1 = cgroups.mode() in ("legacy", "hybrid")
needs_v1 = pytest.mark.skipif(not V1, reason="cgroup v1 host only (v2 has tests/v2)")

# A child that waits for a line on stdin (so it can be put in the cgroup first)
# then runs CODE.
GATED = "import sys, os\nsys.stdin.readline()\n"


def _name():
    return f"pyrt-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def procs():
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


@pytest.fixture
def make():
    """make(resources, path=None) -> created manager; destroyed afterwards."""
    mgrs = []

    def _make(resources=None, path=None, **kw):
        m = cgroups.new("c1", path or f"/{_name()}/c1", resources or {}, **kw)
        mgrs.append(m)
        m.create()
        return m

    yield _make
    for m in mgrs:
        m.destroy()
        for d in m.created:
            assert not os.path.exists(d)


def gated(procs, code):
    p = subprocess.Popen([sys.executable, "-c", GATED + code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    return p


def go(p, timeout=60):
    out, err = p.communicate("go\n", timeout=timeout)
    return p.returncode, out, err


def rd(d, f):
    with open(os.path.join(d, f)) as fh:
        return fh.read().strip()


# ------------------------------------------------------------------ paths


@pytest.mark.parametrize("bad", ["/", "//", "/a/../b", "../x", "a/..", "./a", "/a/./b", "/.."])
def test_refuses_dot_components_and_roots(bad):
    with pytest.raises(CgroupError):
        cgroups.new("c1", bad, {})


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs here")
def test_systemd_driver_refused():
    with pytest.raises(CgroupError, match="^systemd not running on this host, cannot use "
                                          "systemd cgroups manager$"):
        cgroups.new("c1", "system.slice:pyrt:c1", {}, systemd=True)


@needs_v1
def test_default_path_is_id_below_own_cgroup():
    own = common.read_proc_cgroup()
    m = cgroups.new("pyrt-default-id", None, {})
    mp = m.mounts[m.ctrl["memory"]]
    assert m.path("memory") == os.path.normpath(f"{mp}/{own['memory']}/pyrt-default-id")
    assert m.created == []            # new() creates nothing
    assert not os.path.exists(m.path("memory"))


@needs_v1
def test_absolute_path_is_below_each_mount_root():
    n = _name()
    m = cgroups.new("c1", f"/{n}/c1", {})
    for key, d in m.paths.items():
        assert d == f"{m.mounts[key]}/{n}/c1"


@needs_v1
def test_relative_path_lifecycle(make, procs):
    n = _name()
    m = make({"pids": {"limit": 50}}, path=f"{n}/c1")
    own = common.read_proc_cgroup()
    assert m.path("memory").endswith(f"{own['memory']}/{n}/c1".replace("//", "/"))
    m.apply()
    p = subprocess.Popen(["sleep", "60"])
    procs.append(p)
    m.add_pid(p.pid)
    cg = common.read_proc_cgroup(f"/proc/{p.pid}/cgroup")
    assert cg["pids"].endswith(f"/{n}/c1")
    assert m.pids() == [p.pid]
    m.kill_all(signal.SIGKILL)
    p.wait(10)
    assert p.returncode == -signal.SIGKILL
    m.destroy()
    assert not any(os.path.exists(d) for d in m.created)
    assert not os.path.exists(os.path.dirname(m.path("pids")))


# ------------------------------------------------------------------ resources


def _block_dev():
    for name in sorted(os.listdir("/sys/block")):
        if name.startswith(("vd", "sd", "nvme", "xvd")):
            with open(f"/sys/block/{name}/dev") as f:
                return tuple(int(x) for x in f.read().split(":"))
    return None


@needs_v1
def test_apply_every_supported_resource(make, procs):
    dev = _block_dev()
    res = {
        "memory": {"limit": 128 << 20, "reservation": 64 << 20, "swap": 256 << 20,
                   "swappiness": 10, "disableOOMKiller": False, "kernel": 1 << 30, "kernelTCP": 1 << 20},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "idle": 0,
                "cpus": "0", "mems": "0"},
        "pids": {"limit": 42},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}],
    }
    if dev:
        res["blockIO"] = {"throttleReadBpsDevice": [{"major": dev[0], "minor": dev[1], "rate": 1 << 20}],
                          "throttleWriteIOPSDevice": [{"major": dev[0], "minor": dev[1], "rate": 100}]}
    m = make(res)
    m.apply()
    mem, cpu, cs = m.path("memory"), m.path("cpu"), m.path("cpuset")
    assert rd(mem, "memory.limit_in_bytes") == str(128 << 20)
    assert rd(mem, "memory.memsw.limit_in_bytes") == str(256 << 20)
    assert rd(mem, "memory.soft_limit_in_bytes") == str(64 << 20)
    assert rd(mem, "memory.swappiness") == "10"
    assert rd(cpu, "cpu.shares") == "512"
    assert rd(cpu, "cpu.cfs_quota_us") == "50000"
    assert rd(cpu, "cpu.cfs_period_us") == "100000"
    assert rd(cpu, "cpu.cfs_burst_us") == "1000"
    assert rd(cs, "cpuset.cpus") == "0" and rd(cs, "cpuset.mems") == "0"
    assert rd(m.path("pids"), "pids.max") == "42"
    lst = rd(m.path("devices"), "devices.list").splitlines()
    assert "c 1:11 r" in lst and "c 1:3 rwm" in lst and "a *:* rwm" not in lst
    if dev:
        assert rd(m.path("blkio"), "blkio.throttle.read_bps_device") == f"{dev[0]}:{dev[1]} {1 << 20}"
        assert rd(m.path("blkio"), "blkio.throttle.write_iops_device") == f"{dev[0]}:{dev[1]} 100"
    p = subprocess.Popen(["sleep", "60"])
    procs.append(p)
    m.add_pid(p.pid)
    for key, d in m.dirs():
        assert str(p.pid) in rd(d, "cgroup.procs").split(), key
    assert m.pids() == [p.pid]


@needs_v1
def test_pids_limit_stops_forks(make, procs):
    m = make({"pids": {"limit": 4}})
    m.apply()
    p = gated(procs, "pids = []\ntry:\n"
                     "  for i in range(20):\n"
                     "    pid = os.fork()\n"
                     "    if pid == 0:\n      import time; time.sleep(10); os._exit(0)\n"
                     "    pids.append(pid)\n"
                     "except OSError as e:\n  print('fork failed', e.errno, len(pids))\n"
                     "for q in pids: os.kill(q, 9)\n")
    m.add_pid(p.pid)
    rc, out, err = go(p)
    assert rc == 0, err
    assert out.split() == ["fork", "failed", "11", "3"]


@needs_v1
def test_pids_limit_negative_is_max_zero_is_zero(make):
    m = make({"pids": {"limit": -1}})
    m.apply()
    assert rd(m.path("pids"), "pids.max") == "max"
    m.update({"pids": {"limit": 0}})
    assert rd(m.path("pids"), "pids.max") == "0"


@needs_v1
def test_memory_limit_oom_kills_and_counts(make, procs):
    m = make({"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    m.apply()
    before = m.oom_count()
    p = gated(procs, "b = bytearray(256 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')\n")
    m.add_pid(p.pid)
    rc, out, _ = go(p)
    assert rc == -signal.SIGKILL and "survived" not in out
    assert m.oom_count() == before + 1
    st = m.stats()["memory"]
    assert st["usage"]["limit"] == 32 << 20


@needs_v1
def test_update_check_before_update_refuses_limit_below_usage(make, procs):
    m = make({"memory": {"limit": 256 << 20}})
    m.apply()
    p = gated(procs, "b = bytearray(40 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
                     "print('ready', flush=True)\nsys.stdin.readline()\n")
    m.add_pid(p.pid)
    p.stdin.write("go\n")
    p.stdin.flush()
    assert p.stdout.readline().strip() == "ready"
    with pytest.raises(CgroupError, match=r"rejecting memory limit .*\(linux\.resources\.memory\.limit\)"):
        m.update({"memory": {"limit": 8 << 20, "checkBeforeUpdate": True}})
    assert rd(m.path("memory"), "memory.limit_in_bytes") == str(256 << 20)
    m.update({"memory": {"limit": 200 << 20, "checkBeforeUpdate": True}})
    assert rd(m.path("memory"), "memory.limit_in_bytes") == str(200 << 20)
    assert m.resources["memory"]["limit"] == 200 << 20


@needs_v1
def test_freeze_and_thaw(make, procs):
    m = make({})
    m.apply()
    p = subprocess.Popen(["sleep", "60"])
    procs.append(p)
    m.add_pid(p.pid)
    m.freeze()
    assert m.is_frozen()
    assert rd(m.path("freezer"), "freezer.state") == "FROZEN"
    with open(f"/proc/{p.pid}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] == "D"
    m.thaw()
    assert not m.is_frozen()
    # a thawed task leaves the freezer's D state when it is next scheduled: poll for it
    for _ in range(200):
        with open(f"/proc/{p.pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if state == "S":
            break
        time.sleep(0.01)
    assert state == "S"


@needs_v1
def test_devices_deny_then_allow_on_update(make, procs):
    code = ("try:\n  os.close(os.open('/dev/kmsg', os.O_RDONLY)); print('ok')\n"
            "except OSError as e: print('errno', e.errno)\n")
    m = make({"devices": [{"allow": False, "access": "rwm"}]})
    m.apply()
    p = gated(procs, code)
    m.add_pid(p.pid)
    assert go(p)[1].strip() == "errno 1"
    m.update({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 11, "access": "r"}]})
    p = gated(procs, code)
    m.add_pid(p.pid)
    assert go(p)[1].strip() == "ok"


@needs_v1
def test_kill_all_and_destroy_leave_nothing(procs):
    n = _name()
    m = cgroups.new("c1", f"/{n}/c1", {"pids": {"limit": 10}})
    m.create()
    try:
        m.apply()
        ps = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
        procs.extend(ps)
        for p in ps:
            m.add_pid(p.pid)
        assert sorted(m.pids()) == sorted(p.pid for p in ps)
        m.kill_all(signal.SIGKILL)
        for p in ps:
            assert p.wait(10) == -signal.SIGKILL
    finally:
        m.destroy()
    for key, d in m.dirs():
        assert not os.path.exists(d)
        assert not os.path.exists(os.path.join(m.mounts[key], n))
    m.destroy()  # idempotent


@needs_v1
def test_destroy_kills_remaining_processes(procs):
    m = cgroups.new("c1", f"/{_name()}/c1", {})
    m.create()
    p = subprocess.Popen(["sleep", "60"])
    procs.append(p)
    try:
        m.add_pid(p.pid)
    finally:
        m.destroy()
    assert p.wait(10) == -signal.SIGKILL
    assert not any(os.path.exists(d) for d in m.created)


@needs_v1
def test_state_round_trip(make, procs):
    m = make({"pids": {"limit": 7}})
    m.apply()
    p = subprocess.Popen(["sleep", "60"])
    procs.append(p)
    m.add_pid(p.pid)
    st = json.loads(json.dumps(m.to_state()))
    m2 = cgroups.from_state(st)
    assert m2.pids() == [p.pid]
    m2.freeze()
    assert m.is_frozen()
    m2.thaw()
    m2.update({"pids": {"limit": 9}})
    assert rd(m.path("pids"), "pids.max") == "9"
    assert m2.created == m.created


def _record(**kw):
    rec = {"driver": "v1", "id": "c1", "cgroups_path": "/x/c1",
           "paths": {"pids": "/sys/fs/cgroup/pids/x/c1"}, "mounts": {"pids": "/sys/fs/cgroup/pids"},
           "created": ["/sys/fs/cgroup/pids/x", "/sys/fs/cgroup/pids/x/c1"], "skipped": []}
    rec.update(kw)
    return rec


# records the state loader refused and the managers took (one check now: cgroups/record.py);
# each would point delete at a cgroup that is not the container's
@pytest.mark.parametrize("bad", [
    pytest.param({"cgroups_path": None, "id": None}, id="no-container-path"),
    pytest.param({"cgroups_path": "/x/../c1"}, id="dotdot-container-path"),
    pytest.param({"paths": {"pids": "/sys/fs/cgroup/pids/other"}}, id="leaf-not-the-containers"),
    pytest.param({"created": ["/sys/fs/cgroup/pids/y"]}, id="created-off-the-path"),
    pytest.param({"paths": [["pids", "/sys/fs/cgroup/pids/x/c1"]]}, id="paths-not-an-object"),
])
def test_from_state_refuses_a_record_not_naming_the_container(bad):
    assert cgroups.from_state(_record()).dirs() == [("pids", "/sys/fs/cgroup/pids/x/c1")]
    with pytest.raises(CgroupError, match="^cgroup state: "):
        cgroups.from_state(_record(**bad))


@needs_v1
def test_stats_shape_like_runc(make, procs):
    m = make({"memory": {"limit": 64 << 20}, "pids": {"limit": 20}})
    m.apply()
    p = subprocess.Popen(["sleep", "60"])
    procs.append(p)
    m.add_pid(p.pid)
    s = m.stats()
    json.dumps(s)
    assert set(s) == {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                      "network_interfaces"}
    assert set(s["cpu"]) == {"usage", "throttling"}
    assert {"kernel", "user"} <= set(s["cpu"]["usage"])
    assert s["pids"] == {"current": 1, "limit": 20}
    assert s["memory"]["usage"]["limit"] == 64 << 20
    assert set(s["memory"]) >= {"usage", "swap", "kernel", "kernelTCP", "raw"}
    assert "cpu_exclusive" in s["cpuset"] and s["cpuset"]["cpus"]


# ------------------------------------------------------------------ errors


@needs_v1
def test_write_error_names_file_and_key(make):
    m = make({"cpu": {"cpus": "4000-4001"}})
    with pytest.raises(CgroupError) as ei:
        m.apply()
    # the errno text depends on the kernel (EINVAL or ERANGE)
    assert re.fullmatch(r"cgroup: cpuset\.cpus: write 4000-4001: [a-z ]+ \(linux\.resources\.cpu\.cpus\)",
                        str(ei.value)), str(ei.value)


@needs_v1
def test_unified_refused_on_v1(make):
    m = make({"unified": {"memory.high": "1000000"}})
    with pytest.raises(CgroupError, match=r"linux\.resources\.unified"):
        m.apply()


@needs_v1
@pytest.mark.parametrize("res,key", [
    ({"network": {"classID": 1048577}}, "net_cls"),
    ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]}, "hugetlb"),
    ({"rdma": {"mlx5_1": {"hcaHandles": 3}}}, "rdma"),
])
def test_unmounted_controller_is_an_error_naming_the_key(make, res, key):
    m = make(res)
    if common.v1_hierarchies() and any(key in h["controllers"] for h in common.v1_hierarchies()):
        pytest.skip(f"{key} is mounted on this host")
    with pytest.raises(CgroupError, match=rf"{key} controller is not mounted \(linux\.resources\."):
        m.apply()


@needs_v1
def test_swappiness_out_of_range(make):
    m = make({"memory": {"swappiness": 101}})
    with pytest.raises(CgroupError, match=r"0-100 \(linux\.resources\.memory\.swappiness\)"):
        m.apply()


# ------------------------------------------------------------------ devices (pure)


def test_default_rules_and_linux_devices_dedup():
    rules = devices.normalize([{"allow": False, "access": "rwm"}])
    emu = devices.Emulator.build(rules)
    assert not emu.default_allow
    assert emu.rules[("c", 1, 3)] == "rwm"
    assert emu.rules[("c", -1, -1)] == "m"
    rules = devices.normalize([{"allow": False, "access": "rwm"}], [{"path": "/dev/null"}])
    assert ("c", 1, 3) not in devices.Emulator.build(rules).rules


def test_emulator_refuses_hole_in_wildcard():
    with pytest.raises(CgroupError, match="punch a hole"):
        devices.Emulator.build([(False, "a", -1, -1, "rwm"), (True, "c", 1, -1, "rw"),
                                (False, "c", 1, 3, "w")])


def test_emulator_transition_is_minimal():
    cur = devices.Emulator.from_list("c 1:3 rwm\nc 1:5 rwm\n")
    tgt = devices.Emulator.build([(False, "a", -1, -1, "rwm"), (True, "c", 1, 3, "r"),
                                  (True, "c", 1, 7, "rwm")])
    assert cur.transition(tgt) == [(False, "c 1:3 wm"), (False, "c 1:5 rwm"), (True, "c 1:7 rwm")]
    allow_all = devices.Emulator.from_list("a *:* rwm\n")
    assert allow_all.default_allow
    assert allow_all.transition(tgt)[0] == (False, "a *:* rwm")


def test_bad_device_rules():
    with pytest.raises(CgroupError, match=r"devices\[0\]\.access"):
        devices.normalize([{"allow": True}])
    with pytest.raises(CgroupError, match=r"devices\[0\]\.type"):
        devices.normalize([{"allow": True, "type": "x", "access": "r"}])


def test_bpf_program_shape():
    prog = devices.compile_program(devices.normalize([{"allow": False, "access": "rwm"}]))
    assert len(prog) % 8 == 0
    assert prog[-8:] == bytes([0x95, 0, 0, 0, 0, 0, 0, 0])  # exit
    assert prog[-16] == 0xb7 and prog[-12:-8] == b"\0\0\0\0"  # default deny: r0 = 0


# ------------------------------------------------------------------ conversions / mounts


def test_v1_to_v2_conversions_match_runc():
    assert common.shares_to_weight(1024) == 39
    assert common.shares_to_weight(2) == 1 and common.shares_to_weight(262144) == 10000
    assert common.blkio_weight_to_io_weight(10) == 1 and common.blkio_weight_to_io_weight(1000) == 10000
    assert common.swap_v1_to_v2(200, 100, "k") == 100
    assert common.swap_v1_to_v2(0, -1, "k") == -1
    with pytest.raises(CgroupError):
        common.swap_v1_to_v2(50, 100, "k")


def test_v1_mount_steps_comounted_and_ro():
    from pyruntime.cgroups.v1 import V1Manager
    m = V1Manager.from_state({
        "driver": "v1", "id": "c1", "cgroups_path": "/x/c1", "paths": {"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct/x/c1",
                                  "memory": "/sys/fs/cgroup/memory/x/c1",
                                  "name=systemd": "/sys/fs/cgroup/systemd/x/c1"},
        "mounts": {"cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct", "memory": "/sys/fs/cgroup/memory",
                   "name=systemd": "/sys/fs/cgroup/systemd"}})
    mnt = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
           "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    steps = m.mount_steps(mnt, False)
    assert steps[0]["fstype"] == "tmpfs" and steps[0]["data"] == "mode=755"
    binds = [s for s in steps if s["op"] == "mount" and s["fstype"] == "bind"]
    assert [(b["source"], b["target"]) for b in binds] == [
        ("/sys/fs/cgroup/cpu,cpuacct/x/c1", "/sys/fs/cgroup/cpu,cpuacct"),
        ("/sys/fs/cgroup/memory/x/c1", "/sys/fs/cgroup/memory"),
        ("/sys/fs/cgroup/systemd/x/c1", "/sys/fs/cgroup/systemd")]
    assert all(b["host_source"] and b["flags"] & common.MS_BIND for b in binds)
    links = {(s["linkname"], s["target"]) for s in steps if s["op"] == "symlink"}
    assert links == {("/sys/fs/cgroup/cpu", "cpu,cpuacct"), ("/sys/fs/cgroup/cpuacct", "cpu,cpuacct")}
    assert steps[-1]["op"] == "remount" and steps[-1]["target"] == "/sys/fs/cgroup"
    assert steps[-1]["flags"] & common.MS_RDONLY
    ns = m.mount_steps(mnt, True)
    cg = [s for s in ns if s["op"] == "mount" and s["fstype"] == "cgroup"]
    assert [s["data"] for s in cg] == ["cpu,cpuacct", "memory", "name=systemd"]
    assert all(s["flags"] & common.MS_RDONLY for s in cg)


@needs_v1
def test_destroy_of_paused_container(procs):
    m = cgroups.new("c1", f"/{_name()}/c1", {})
    m.create()
    p = subprocess.Popen(["sleep", "60"])
    procs.append(p)
    try:
        m.add_pid(p.pid)
        m.freeze()
        m.kill_all(signal.SIGTERM)        # stays paused: the signal waits
        assert m.is_frozen()
    finally:
        m.destroy()
    assert p.wait(10) in (-signal.SIGTERM, -signal.SIGKILL)
    assert not any(os.path.exists(d) for d in m.created)


@needs_v1
def test_destroy_never_walks_into_a_parent_it_made(procs):
    """A parent the manager made holds a neighbour's cgroup with a process in it:
    destroy removes the leaf only and signals nothing else."""
    n = _name()
    m = cgroups.new("c1", f"/{n}/c1", {})
    m.create()
    assert all(f"/{n}" in d for d in m.created)
    p = subprocess.Popen(["sleep", "60"])
    procs.append(p)
    nb = {key: os.path.join(m.mounts[key], n, "nb") for key, _d in m.dirs()}
    try:
        for key, d in nb.items():
            os.mkdir(d)
        common.write_file(nb["pids"], "cgroup.procs", str(p.pid), "test")
        assert m.destroy() == []
        assert p.poll() is None
        for key, d in m.dirs():
            assert not os.path.exists(d)
            assert os.path.isdir(nb[key]) and os.path.isdir(os.path.dirname(d))
    finally:
        p.kill()
        p.wait()
        for d in nb.values():
            common.rmdir_bounded(d)
            common.rmdir_bounded(os.path.dirname(d))


@needs_v1
def test_destroy_spares_processes_of_a_leaf_it_did_not_make(procs):
    n = _name()
    leaf = f"/{n}/c1"
    pre = cgroups.new("other", leaf, {})
    pre.create()          # someone else's cgroup, with their process in it
    p = subprocess.Popen(["sleep", "60"])
    procs.append(p)
    try:
        pre.add_pid(p.pid)
        m = cgroups.new("c1", leaf, {})
        m.create()
        assert not m.exclusive()
        busy = m.destroy()
        assert p.poll() is None
        assert busy and all(os.path.isdir(d) for d in busy)
    finally:
        p.kill()
        p.wait()
        pre.destroy()
    assert not any(os.path.exists(d) for d in pre.created)
