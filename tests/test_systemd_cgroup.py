"""--systemd-cgroup on a host without systemd as PID 1 (this one): refused in one line, as
runc refuses it, leaving nothing; and the driver's pure parts (cgroupsPath, slice
expansion, annotation values, the resource -> property mapping) against runc 1.1's
rules. The driver itself runs in the qemu guest with systemd (tests/systemd/)."""
import os

import pytest

from pyruntime.cgroups import systemd as sd
from pyruntime.errors import CgroupError

NOT_RUNNING = "systemd not running on this host, cannot use systemd cgroups manager"


@pytest.mark.skipif(os.path.isdir("/run/systemd/system"), reason="systemd runs here")
@pytest.mark.parametrize("cmd", ["create", "run"])
def test_refused_without_systemd(rt, make_bundle, cid, cmd):
    b = make_bundle(["true"])
    b.config["linux"]["cgroupsPath"] = "system.slice:pyrt:" + cid
    b.save()
    r = rt.run("--systemd-cgroup", cmd, "--bundle", b.path, cid)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert r.stderr.strip().endswith('%s failed: %s"' % (cmd, NOT_RUNNING)), r.stderr
    assert rt.container_ids() == []   # and the autouse leak check finds nothing


def test_cgroups_path_and_slices():
    assert sd.parse_path("", "c1") == ("system.slice", "runc-c1.scope", "c1")
    assert sd.parse_path(":p:n", "c1") == ("system.slice", "p-n.scope", "n")
    assert sd.parse_path("a-b.slice:p:n", "c1") == ("a-b.slice", "p-n.scope", "n")
    assert sd.parse_path("a.slice:p:x.slice", "c1") == ("a.slice", "x.slice", "x.slice")
    assert sd.expand_slice("a-b-c.slice") == "/a.slice/a-b.slice/a-b-c.slice"
    assert sd.expand_slice("-.slice") == "/"
    for bad in ("a--b.slice", "-a.slice", "a-.slice", ".slice", "a/b.slice", "a.slic"):
        with pytest.raises(CgroupError, match="^invalid slice name: "):
            sd.expand_slice(bad)
    with pytest.raises(CgroupError, match='^expected cgroupsPath to be of format "slice:prefix:name" '
                                          'for systemd cgroups, got "a:b" instead$'):
        sd.parse_path("a:b", "c1")
    # the unit name is a path component too: nothing that could leave the slice's dir
    for bad in ("s.slice:p:../../x", "s.slice:p:a/b", "s.slice:p:a b"):
        with pytest.raises(CgroupError, match="is not valid"):
            sd.parse_path(bad, "c1")


def test_annotation_values():
    got = sd.annotation_props({
        "org.systemd.property.TimeoutStopUSec": "uint64 123456789",
        "org.systemd.property.TimeoutStopSec": "5",        # Sec -> USec, seconds -> us
        "org.systemd.property.CollectMode": "'inactive-or-failed'",
        "org.systemd.property.Delegate": "true",
        "org.systemd.property.Wants": "['a.service', \"b.service\"]",
        "org.systemd.property.DeviceAllow": "@as []",
        "other.annotation": "ignored",
    })
    assert got == [("TimeoutStopUSec", ("t", 123456789)), ("TimeoutStopUSec", ("t", 5000000)),
                   ("CollectMode", ("s", "inactive-or-failed")), ("Delegate", ("b", True)),
                   ("Wants", ("as", ["a.service", "b.service"])), ("DeviceAllow", ("as", []))]
    for key, val, msg in (("Ab", "1", "name incorrect: too short"),
                          ("A1b", "1", "name incorrect: contains non-alphabetic character"),
                          ("Abc", "'x", "value parse error"),
                          ("TimeoutSec", "'x'", "value parse error: not a number"),
                          ("Abc", "uint16 70000", "value parse error")):
        with pytest.raises(CgroupError, match=msg):
            sd.annotation_props({"org.systemd.property." + key: val})


def test_resource_properties_as_runc():
    r = {"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 16 << 20},
         "cpu": {"shares": 1024, "quota": 33333, "period": 100000, "cpus": "0-2,9"},
         "pids": {"limit": -1}, "unified": {"memory.high": "max", "io.weight": "50"}}
    props = dict(sd.resource_props(r, None, 252, with_devices=False))
    assert props == {"MemoryMax": ("t", 64 << 20), "MemoryLow": ("t", 16 << 20),
                     "MemorySwapMax": ("t", 32 << 20), "CPUWeight": ("t", 39),
                     "CPUQuotaPeriodUSec": ("t", 100000),
                     "CPUQuotaPerSecUSec": ("t", 340000),   # 333330 rounded up to whole %
                     "TasksMax": ("t", 2 ** 64 - 1), "AllowedCPUs": ("ay", b"\x07\x02"),
                     "MemoryHigh": ("t", 2 ** 64 - 1)}
    # systemd older than 242/244: no period, no cpuset properties (the files still get them)
    old = dict(sd.resource_props(r, None, 241, with_devices=False))
    assert "CPUQuotaPeriodUSec" not in old and "AllowedCPUs" not in old
    devs = sd.resource_props({"devices": [{"allow": False, "access": "rwm"}]}, None, 252)
    assert devs[:2] == [("DevicePolicy", ("s", "strict")), ("DeviceAllow", ("a(ss)", []))]
    allow = devs[2][1][1]
    assert allow[:2] == [("block-*", "m"), ("char-*", "m")] and ("char-pts", "rwm") in allow
    assert ("/dev/char/1:3", "rwm") in allow
    assert sd.resource_props({"devices": [{"allow": True, "access": "rwm"}]}, None, 252) == [
        ("DevicePolicy", ("s", "auto")), ("DeviceAllow", ("a(ss)", []))]


def test_features_report_the_systemd_driver(rt):
    import json
    cg = json.loads(rt.ok("features").stdout)["linux"]["cgroup"]
    assert cg["systemd"] is True
    if rt.is_pyruntime:
        assert cg["systemdUser"] is False   # no user-manager (rootless) support
