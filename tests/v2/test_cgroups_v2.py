"""pyruntime.cgroups on a cgroup v2-only host. Runs inside the qemu guest:
tools/cgroup-v2-vm/run-v2-tests.sh. Skipped elsewhere."""

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from pyruntime import cgroups
from pyruntime.cgroups import common, devices
from pyruntime.errors import CgroupError

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or cgroups.mode() != "unified", reason="needs root on a cgroup v2-only host")

GATED = "import sys, os\nsys.stdin.readline()\n"
DEVTEST = ("try:\n  os.close(os.open('/dev/null', os.O_WRONLY)); print('ok')\n"
           "except OSError as e: print('errno', e.errno)\n")


def _name():
    return f"pyrt-v2-{uuid.uuid4().hex[:8]}"


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
    mgrs = []

    def _make(resources=None, path=None, **kw):
        m = cgroups.new("c1", path or f"/{_name()}/c1", resources or {}, **kw)
        mgrs.append(m)
        m.create()
        return m

    yield _make
    for m in mgrs:
        m.destroy()
        assert not any(os.path.exists(d) for d in m.created)


def gated(procs, code):
    p = subprocess.Popen([sys.executable, "-c", GATED + code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    return p


def go(p, timeout=120):
    out, err = p.communicate("go\n", timeout=timeout)
    return p.returncode, out, err


def rd(d, f):
    with open(os.path.join(d, f)) as fh:
        return fh.read().strip()


def test_paths():
    n = _name()
    m = cgroups.new("c1", f"/{n}/c1", {})
    assert m.driver == "v2" and m.leaf == f"/sys/fs/cgroup/{n}/c1"
    own = common.read_proc_cgroup()[""]
    d = cgroups.new("pyrt-default", None, {})
    assert d.leaf == os.path.normpath(f"/sys/fs/cgroup/{os.path.dirname(own)}/pyrt-default")
    for bad in ("/", "/a/../b", "..", "./x"):
        with pytest.raises(CgroupError):
            cgroups.new("c1", bad, {})


def test_resources_written_with_runc_conversions(make):
    m = make({
        "memory": {"limit": 128 << 20, "swap": 192 << 20, "reservation": 32 << 20,
                   "swappiness": 30, "disableOOMKiller": False},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": -1},
        "unified": {"memory.high": str(100 << 20)},
    })
    m.apply()
    d = m.leaf
    assert rd(d, "memory.max") == str(128 << 20)
    assert rd(d, "memory.swap.max") == str(64 << 20)     # memsw 192M - memory 128M
    assert rd(d, "memory.low") == str(32 << 20)
    assert rd(d, "memory.high") == str(100 << 20)
    assert rd(d, "cpu.weight") == "39"                    # runc: 1 + (1024-2)*9999/262142
    assert rd(d, "cpu.max") == "50000 100000"
    assert rd(d, "cpuset.cpus") == "0"
    assert rd(d, "pids.max") == "max"
    m.update({"cpu": {"shares": 2}, "pids": {"limit": 0}})
    assert rd(d, "cpu.weight") == "1" and rd(d, "pids.max") == "0"


def test_blkio_weight_converted(make):
    m = make({})
    if not os.path.exists(os.path.join(m.leaf, "io.weight")) and \
            not os.path.exists(os.path.join(m.leaf, "io.bfq.weight")):
        pytest.skip("no io weight file in this kernel")
    m.update({"blockIO": {"weight": 1000}})
    if os.path.exists(os.path.join(m.leaf, "io.bfq.weight")):
        assert rd(m.leaf, "io.bfq.weight").split()[-1] == "1000"
    else:
        assert rd(m.leaf, "io.weight") == "default 10000"


def test_unsupported_on_v2_errors_name_the_key(make):
    for res, key in (({"cpu": {"realtimeRuntime": 1000}}, "cpu.realtimeRuntime"),
                     ({"network": {"classID": 1}}, "network"),
                     ({"unified": {"nosuchctl.max": "1"}}, "unified.nosuchctl.max")):
        m = make(res)
        with pytest.raises(CgroupError, match=rf"\(linux\.resources\.{key}\)"):
            m.apply()


def test_memory_oom(make, procs):
    m = make({"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    m.apply()
    assert rd(m.leaf, "memory.swap.max") == "0"
    before = m.oom_count()
    p = gated(procs, "b = bytearray(256 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('survived')\n")
    m.add_pid(p.pid)
    rc, out, _ = go(p)
    assert rc == -signal.SIGKILL and "survived" not in out
    assert m.oom_count() == before + 1


def test_pids_limit(make, procs):
    m = make({"pids": {"limit": 4}})
    m.apply()
    p = gated(procs, "pids = []\ntry:\n"
                     "  for i in range(20):\n"
                     "    pid = os.fork()\n"
                     "    if pid == 0:\n      import time; time.sleep(30); os._exit(0)\n"
                     "    pids.append(pid)\n"
                     "except OSError as e:\n  print('fork failed', e.errno, len(pids))\n"
                     "for q in pids: os.kill(q, 9)\n")
    m.add_pid(p.pid)
    rc, out, err = go(p)
    assert rc == 0, err
    assert out.split() == ["fork", "failed", "11", "3"]


def test_freeze_thaw_and_cgroup_kill(make, procs):
    m = make({})
    m.apply()
    ps = [subprocess.Popen(["sleep", "120"]) for _ in range(2)]
    procs.extend(ps)
    for p in ps:
        m.add_pid(p.pid)
    assert sorted(m.pids()) == sorted(p.pid for p in ps)
    m.freeze()
    assert m.is_frozen() and "frozen 1" in rd(m.leaf, "cgroup.events")
    m.thaw()
    assert not m.is_frozen() and "frozen 0" in rd(m.leaf, "cgroup.events")
    assert os.path.exists(os.path.join(m.leaf, "cgroup.kill"))
    m.kill_all(signal.SIGKILL)
    for p in ps:
        assert p.wait(30) == -signal.SIGKILL


def test_ebpf_device_filter_deny_then_allow(make, procs):
    # listing /dev/null in linux.devices drops runc's default allow rule for it
    m = make({"devices": [{"allow": False, "access": "rwm"}]},
             linux_devices=[{"path": "/dev/null", "type": "c", "major": 1, "minor": 3}])
    m.apply()
    assert devices.attached_count(m.leaf) == 1
    p = gated(procs, DEVTEST)
    m.add_pid(p.pid)
    assert go(p)[1].strip() == "errno 1"
    m.update({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}]})
    assert devices.attached_count(m.leaf) == 1        # replaced, not stacked
    p = gated(procs, DEVTEST)
    m.add_pid(p.pid)
    assert go(p)[1].strip() == "ok"


def test_default_device_rules_allow_null_and_deny_others(make, procs):
    m = make({"devices": [{"allow": False, "access": "rwm"}]})
    m.apply()
    p = gated(procs, DEVTEST + "try:\n  os.close(os.open('/dev/kmsg', os.O_RDONLY)); print('kmsg ok')\n"
                               "except OSError as e: print('kmsg errno', e.errno)\n")
    m.add_pid(p.pid)
    assert go(p)[1].split("\n")[:2] == ["ok", "kmsg errno 1"]


def test_stats_state_and_destroy(procs):
    n = _name()
    m = cgroups.new("c1", f"/{n}/c1", {"memory": {"limit": 64 << 20}, "pids": {"limit": 20}})
    m.create()
    try:
        m.apply()
        p = subprocess.Popen(["sleep", "120"])
        procs.append(p)
        m.add_pid(p.pid)
        s = m.stats()
        json.dumps(s)
        assert set(s) == {"cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                          "network_interfaces"}
        assert s["pids"] == {"current": 1, "limit": 20}
        assert s["memory"]["usage"]["limit"] == 64 << 20
        m2 = cgroups.from_state(json.loads(json.dumps(m.to_state())))
        assert m2.pids() == [p.pid]
        steps = m2.mount_steps({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}, False)
        assert steps[0]["fstype"] == "cgroup2" and steps[0]["flags"] & common.MS_RDONLY
        assert steps[0]["fallback"][0]["source"] == "/sys/fs/cgroup"
    finally:
        m.destroy()   # kills the sleep
    assert p.wait(30) == -signal.SIGKILL
    assert not os.path.exists(f"/sys/fs/cgroup/{n}")
