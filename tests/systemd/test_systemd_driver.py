"""The systemd cgroup driver (--systemd-cgroup) against runc's, in the qemu guest booted with
systemd as PID 1 (tools/cgroup-v2-vm/run-v2-tests.sh with V2_SYSTEMD=1 V2_TESTS=tests/systemd;
run-tests.sh stage `systemd`). runc 1.1.5 on the same guest is the oracle: the same config
must give a unit whose `systemctl show` properties equal runc's. Skipped where systemd is
not PID 1 (tests/test_systemd_cgroup.py covers the refusal there). Each runtime command
costs ~1 s in the emulated guest: few per test."""
import os
import subprocess

import pytest

import conftest
import util

CG = "/sys/fs/cgroup"
T = 300   # per runtime command: the emulated guest is slow (imports alone take seconds)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.isdir("/run/systemd/system") or not util.cgroup2_unified(CG),
    reason="needs root, systemd as PID 1 and a cgroup v2 host (the qemu guest's systemd mode)")

RESOURCES = {"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 16 << 20},
             "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
             "pids": {"limit": 40}}
ANNOTATIONS = {"org.systemd.property.TimeoutStopSec": "uint64 123",
               "org.systemd.property.CollectMode": "'inactive-or-failed'"}
# differ between any two units, whoever made them
VOLATILE = {"InvocationID", "ControlGroupId", "MemoryCurrent", "MemoryAvailable", "MemoryPeak",
            "CPUUsageNSec", "TasksCurrent", "Id", "Names", "ControlGroup", "FragmentPath",
            "EffectiveCPUs", "EffectiveMemoryNodes",
            # runc 1.1 sets resources with SetUnitProperties after the start (drop-in files,
            # and systemd then asks for a daemon-reload); pyruntime passes them to the start
            "DropInPaths", "NeedDaemonReload"}


def show(unit):
    out = subprocess.run(["systemctl", "show", unit], capture_output=True, text=True,
                         timeout=60).stdout
    props = {}
    for line in out.splitlines():
        k, _, v = line.partition("=")
        if k in props:
            props[k] += "\n" + v     # DeviceAllow= and friends: one line per entry
        else:
            props[k] = v
    return props


def comparable(props, name):
    return {k: v.replace(name, "NAME") for k, v in props.items()
            if k not in VOLATILE and "Timestamp" not in k and not k.startswith(("IO", "IP"))}


def rd(d, f):
    with open(os.path.join(d, f)) as fh:
        return fh.read().strip()


def cg_of(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        return CG + f.read().strip().split("::", 1)[1]


def runc(rt):
    r = conftest.Runtime(rt.ctx, ["runc"], "runc")
    rt.ctx.runtimes.append(r)   # the leak check force-deletes its containers too
    return r


def bundle(make_bundle, cgroups_path, resources=None, annotations=None, script="sleep 1000"):
    b = make_bundle(["sh", "-c", script])
    b.config["linux"]["cgroupsPath"] = cgroups_path
    b.config["linux"]["resources"].update(resources or {})
    if annotations:
        b.config["annotations"] = dict(annotations)
    b.save()
    return b


def gone(unit, d):
    return show(unit).get("LoadState") == "not-found" and not os.path.exists(d)


def test_unit_and_properties_equal_runcs(rt, make_bundle, cid):
    b = bundle(make_bundle, "pyrt-sd.slice:pyrt:" + cid, RESOURCES, ANNOTATIONS)
    rt.ok("--systemd-cgroup", "create", "--bundle", b.path, cid, timeout=T)
    unit = "pyrt-%s.scope" % cid
    d = "%s/pyrt.slice/pyrt-sd.slice/%s" % (CG, unit)
    assert cg_of(rt.state(cid)["pid"]) == d
    mine = show(unit)
    assert mine["ActiveState"] == "active" and mine["Slice"] == "pyrt-sd.slice"
    assert mine["Delegate"] == "yes" and mine["Description"] == "libcontainer container " + cid
    assert mine["MemoryMax"] == str(64 << 20) and mine["TasksMax"] == "40"
    assert mine["TimeoutStopUSec"] == "2min 3s" and mine["CollectMode"] == "inactive-or-failed"
    # the fs part as runc's: files systemd has no property for, and the same values
    assert rd(d, "memory.max") == str(64 << 20) and rd(d, "memory.low") == str(16 << 20)
    assert rd(d, "memory.swap.max") == str(32 << 20) and rd(d, "pids.max") == "40"
    assert rd(d, "cpu.max") == "50000 100000" and rd(d, "cpu.weight") == "39"
    assert rd(d, "cpuset.cpus") == "0"

    oracle = runc(rt)
    rid = cid + "-r"
    rb = bundle(make_bundle, "pyrt-sd.slice:pyrt:" + rid, RESOURCES, ANNOTATIONS)
    oracle.ok("--systemd-cgroup", "create", "--bundle", rb.path, rid, timeout=T)
    theirs = show("pyrt-%s.scope" % rid)
    a, b_ = comparable(mine, cid), comparable(theirs, rid)
    diff = {k: (a.get(k), b_.get(k)) for k in set(a) | set(b_) if a.get(k) != b_.get(k)}
    assert not diff, diff
    oracle.ok("delete", "--force", rid, timeout=T)

    rt.ok("delete", "--force", cid, timeout=T)
    assert gone(unit, d)


def test_default_path_update_pause_exec_delete(rt, make_bundle, cid):
    b = bundle(make_bundle, "", {"pids": {"limit": 50}})
    rt.ok("--systemd-cgroup", "create", "--bundle", b.path, cid, timeout=T)
    unit = "runc-%s.scope" % cid
    d = "%s/system.slice/%s" % (CG, unit)
    assert cg_of(rt.state(cid)["pid"]) == d
    rt.ok("start", cid, timeout=T)
    rt.ok("update", "--memory", str(32 << 20), "--pids-limit", "30", "--cpu-quota", "20000", cid, timeout=T)
    p = show(unit)
    assert (p["MemoryMax"], p["TasksMax"], p["CPUQuotaPerSecUSec"]) == (str(32 << 20), "30", "200ms")
    assert (rd(d, "memory.max"), rd(d, "pids.max")) == (str(32 << 20), "30")
    assert rd(d, "cpu.max") == "20000 100000"
    rt.ok("pause", cid, timeout=T)
    assert rt.state(cid)["status"] == "paused" and rd(d, "cgroup.freeze") == "1"
    rt.ok("resume", cid, timeout=T)
    assert rt.state(cid)["status"] == "running" and rd(d, "cgroup.freeze") == "0"
    out = rt.ok("exec", cid, "cat", "/proc/self/cgroup", timeout=T).stdout
    assert out.strip() == "0::/system.slice/" + unit   # no cgroup namespace: the host path
    rt.ok("delete", "--force", cid, timeout=T)
    assert gone(unit, d)


def test_nested_slice_run_and_root_slice(rt, make_bundle, cid):
    # a-b.slice is a.slice/a-b.slice; `run` removes the unit with the container
    b = bundle(make_bundle, "pyrt-x-y.slice:pfx:" + cid, script="cat /proc/self/cgroup")
    r = rt.ok("--systemd-cgroup", "run", "--bundle", b.path, cid, timeout=T)
    assert r.stdout.strip() == "0::/pyrt.slice/pyrt-x.slice/pyrt-x-y.slice/pfx-%s.scope" % cid
    assert gone("pfx-%s.scope" % cid, "%s/pyrt.slice/pyrt-x.slice/pyrt-x-y.slice/pfx-%s.scope"
                % (CG, cid))
    # "-.slice" is the root slice
    b2 = bundle(make_bundle, "-.slice:pfx:" + cid + "-root")
    rt.ok("--systemd-cgroup", "create", "--bundle", b2.path, cid + "-root", timeout=T)
    unit = "pfx-%s-root.scope" % cid
    assert cg_of(rt.state(cid + "-root")["pid"]) == "%s/%s" % (CG, unit)
    assert show(unit)["Slice"] == "-.slice"
    rt.ok("delete", "--force", cid + "-root", timeout=T)
    assert gone(unit, "%s/%s" % (CG, unit))


@pytest.mark.parametrize("path,annotations", [
    ("system.slice:only-two", None),
    ("bad.slic:p:n", None),
    ("pyrt--x.slice:p:n", None),
    ("system.slice:p:n", {"org.systemd.property.Ab": "1"}),
    ("system.slice:p:n", {"org.systemd.property.TimeoutStopSec": "'soon'"}),
], ids=["two-fields", "not-a-slice", "empty-slice-component", "short-property",
        "sec-not-a-number"])
def test_bad_config_one_line_as_runc(rt, make_bundle, cid, path, annotations):
    outs = []
    for r in (rt, runc(rt)):
        b = bundle(make_bundle, path.replace(":n", ":" + cid), annotations=annotations)
        res = r.run("--systemd-cgroup", "create", "--bundle", b.path, cid, timeout=T)
        assert res.returncode == 1, res
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1, res.stderr
        outs.append(lines[0].split("failed: ", 1)[1].rstrip('"'))
    assert outs[0] == outs[1]
    assert not os.path.exists("%s/system.slice/p-%s.scope" % (CG, cid))


def test_property_systemd_refuses_undone(rt, make_bundle, cid):
    # systemd's own refusal of a unit property (here an annotation's): one line naming the
    # unit, nothing left (the leak check: state dir, unit cgroup, init process)
    b = bundle(make_bundle, "system.slice:pyrt:" + cid,
               annotations={"org.systemd.property.NoSuchThing": "'x'"})
    r = rt.run("--systemd-cgroup", "create", "--bundle", b.path, cid, timeout=T)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert 'unable to start unit \\"pyrt-%s.scope' % cid in r.stderr, r.stderr
    assert "NoSuchThing" in r.stderr, r.stderr
    assert rt.container_ids() == []
    assert show("pyrt-%s.scope" % cid).get("LoadState") in ("not-found", None)


def test_leftover_unit_of_that_name_is_joined(rt, make_bundle, cid):
    # as runc: StartTransientUnit's UnitExists is no error; the init joins that unit's cgroup
    # (and `delete` stops the unit, leftover processes included)
    unit = "pyrt-%s.scope" % cid
    left = subprocess.Popen(["systemd-run", "--quiet", "--scope", "--unit", unit,
                             "--slice", "system.slice", "-p", "Delegate=yes", "sleep", "1000"],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert util.wait_for(lambda: show(unit).get("ActiveState") == "active", 60, 0.2)
        b = bundle(make_bundle, "system.slice:pyrt:" + cid)
        rt.ok("--systemd-cgroup", "create", "--bundle", b.path, cid, timeout=T)
        d = "%s/system.slice/%s" % (CG, unit)
        assert cg_of(rt.state(cid)["pid"]) == d and cg_of(left.pid) == d
        rt.ok("delete", "--force", cid, timeout=T)
        assert left.wait(timeout=60) is not None
        assert util.wait_for(lambda: gone(unit, d), 30, 0.2)
    finally:
        if left.poll() is None:
            left.kill()
            left.wait()
