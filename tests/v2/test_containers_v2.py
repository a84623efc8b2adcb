"""Real busybox containers through the CLI on a cgroup v2-only host: resources, OOM and its
event, freeze (cgroup.freeze), kill --all (cgroup.kill), update, the eBPF device filter, and
delete leaving nothing. Runs in the qemu guest (tools/cgroup-v2-vm/run-v2-tests.sh) with the
fixtures of tests/conftest.py; skipped elsewhere. The guest is ~30x slower than the host:
each test keeps to a handful of runtime commands."""
import json
import os
import subprocess

import pytest

import util

CG = "/sys/fs/cgroup"


pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not util.cgroup2_unified(CG),
                                reason="needs root on a cgroup v2-only host")

WAIT_GO = "while [ ! -e /go ]; do sleep 0.05; done; "


def cg_dir(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                return os.path.normpath(CG + line.rstrip("\n")[3:])
    raise AssertionError("no v2 entry in /proc/%d/cgroup" % pid)


def rd(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


class Box:
    def __init__(self, rt, make_bundle, cid, script, resources=None, linux=None, start=True):
        self.rt, self.cid = rt, cid
        self.bundle = b = make_bundle(["sh", "-c", script])
        b.config["linux"]["resources"].update(resources or {})
        b.config["linux"].update(linux or {})
        b.save()
        self.out = b.path + ".out"
        with open(self.out, "w") as fh:
            r = rt.run("create", "--bundle", b.path, cid, stdout=fh, stderr=subprocess.STDOUT)
        assert r.returncode == 0, "create failed:\n" + self.output()
        self.pid = rt.state(cid)["pid"]
        self.cg = cg_dir(self.pid)
        if start:
            rt.ok("start", cid)

    def output(self):
        with open(self.out) as f:
            return f.read()

    def wait_output(self, marker, timeout=60):
        assert util.wait_for(lambda: marker in self.output(), timeout, 0.1), \
            "%r never appeared; output:\n%s" % (marker, self.output())

    def go(self):
        open(os.path.join(self.bundle.rootfs, "go"), "w").close()


def test_resources_and_cleanup(rt, make_bundle, cid):
    b = Box(rt, make_bundle, cid,
            "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; echo ready; exec sleep 1000",
            {"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 16 << 20},
             "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
             "pids": {"limit": 40}},
            {"cgroupsPath": "/%s/c1" % cid,
             "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount",
                                                  "cgroup")]})
    d = b.cg
    assert d == "%s/%s/c1" % (CG, cid)
    assert rd(d, "memory.max") == str(64 << 20)
    if os.path.exists(os.path.join(d, "memory.swap.max")):
        assert rd(d, "memory.swap.max") == str(32 << 20)  # memsw 96M - memory 64M
    assert rd(d, "memory.low") == str(16 << 20)
    assert rd(d, "cpu.max") == "50000 100000"
    assert rd(d, "cpu.weight") == "39"
    assert rd(d, "pids.max") == "40"
    b.wait_output("ready")
    assert b.output().split()[:2] == [str(64 << 20), "40"]  # its cgroup namespace's root
    ev = json.loads(rt.ok("events", "--stats", cid).stdout)
    assert ev["type"] == "stats" and ev["id"] == cid
    assert ev["data"]["pids"] == {"current": 1, "limit": 40}
    assert ev["data"]["memory"]["usage"]["limit"] == 64 << 20
    assert json.loads(rt.ok("ps", "-f", "json", cid).stdout) == [b.pid]
    rt.ok("delete", "--force", cid)
    assert not os.path.exists(d) and not os.path.exists(os.path.dirname(d))


def test_oom_kill_and_event(rt, make_bundle, cid, pyrt_tmp):
    b = Box(rt, make_bundle, cid,
            WAIT_GO + "dd if=/dev/zero of=/dev/null bs=128M count=1; echo dd-exit=$?; "
            "exec sleep 1000",
            {"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    if os.path.exists(os.path.join(b.cg, "memory.swap.max")):
        assert rd(b.cg, "memory.swap.max") == "0"
    evout = os.path.join(pyrt_tmp, "events.out")
    with open(evout, "w") as fh:
        ev = subprocess.Popen(rt.cmd + ["--root", rt.root, "events", "--interval", "300ms", cid],
                              stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def lines():
            return util.json_lines(evout)
        assert util.wait_for(lambda: any(e["type"] == "stats" for e in lines()), 120, 0.1)
        b.go()
        b.wait_output("dd-exit=")
        assert "dd-exit=137" in b.output()
        assert util.wait_for(lambda: {"type": "oom", "id": cid} in lines(), 60, 0.1), lines()
        kv = dict(l.split() for l in rd(b.cg, "memory.events").splitlines())
        assert int(kv["oom_kill"]) >= 1
        rt.ok("kill", cid, "KILL")
        assert ev.wait(60) == 0  # the stream ends when the container stops
    finally:
        if ev.poll() is None:
            ev.kill()
            ev.wait()


def test_freeze_and_kill_all(rt, make_bundle, cid):
    # no pid namespace: the background child would outlive the init without kill --all
    b = Box(rt, make_bundle, cid, "sleep 1000 & echo started; exec sleep 1001",
            linux={"namespaces": [{"type": "mount"}, {"type": "uts"}]})
    b.wait_output("started")
    pids = json.loads(rt.ok("ps", "-f", "json", cid).stdout)
    assert len(pids) == 2 and b.pid in pids
    rt.ok("pause", cid)
    assert rt.state(cid)["status"] == "paused"
    assert rd(b.cg, "cgroup.freeze") == "1" and "frozen 1" in rd(b.cg, "cgroup.events")
    r = rt.run("pause", cid)
    assert r.returncode == 1 and "container not running" in r.stderr
    rt.ok("resume", cid)
    assert rt.state(cid)["status"] == "running"
    assert "frozen 0" in rd(b.cg, "cgroup.events")
    r = rt.run("resume", cid)
    assert r.returncode == 1 and "container not paused" in r.stderr
    rt.ok("pause", cid)
    rt.ok("kill", "--all", cid, "KILL")  # cgroup.kill: works on a frozen cgroup too
    assert util.wait_for(lambda: not any(util.pid_alive(p) for p in pids), 30)
    rt.ok("kill", "--all", cid, "KILL")  # stopped: still exit 0
    rt.ok("delete", cid)
    assert not os.path.exists(b.cg)


def test_update_live(rt, make_bundle, cid):
    b = Box(rt, make_bundle, cid, WAIT_GO + "for i in 1 2 3 4 5 6; do sleep 1000 & done; "
            "echo forked-all; exec sleep 1000",
            {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}})
    rt.ok("update", "--memory", "96M", "--cpu-quota", "20000", "--cpu-period", "100000", cid)
    assert rd(b.cg, "memory.max") == str(96 << 20)
    assert rd(b.cg, "cpu.max") == "20000 100000"
    res = {"devices": [{"allow": False, "access": "rwm"}], "memory": {"limit": 80 << 20},
           "cpu": {"shares": 2}, "pids": {"limit": 3}}
    rt.ok("update", "-r", "-", cid, input=json.dumps(res))
    assert rd(b.cg, "memory.max") == str(80 << 20)
    assert rd(b.cg, "cpu.weight") == "1"
    assert rd(b.cg, "cpu.max") == "20000 100000"  # earlier values stay
    assert rd(b.cg, "pids.max") == "3"
    b.go()
    b.wait_output("can't fork")
    assert "forked-all" not in b.output()


def test_ebpf_device_filter(rt, make_bundle, cid):
    devs = [{"path": "/dev/xloop0", "type": "b", "major": 7, "minor": 0, "fileMode": 0o666},
            {"path": "/dev/xloop1", "type": "b", "major": 7, "minor": 1, "fileMode": 0o666}]
    b = Box(rt, make_bundle, cid,
            "cat /dev/xloop0 >/dev/null; cat /dev/xloop1 >/dev/null; "
            "echo x > /dev/full; echo full=$?; echo x > /dev/null && echo devnull-open; "
            "echo done; exec sleep 1000",
            {"devices": [{"allow": False, "access": "rwm"},
                         {"allow": True, "type": "b", "major": 7, "minor": 1, "access": "r"}]},
            {"devices": devs, "cgroupsPath": "%s/c1" % cid})
    b.wait_output("done")
    out = b.output()
    assert "'/dev/xloop0': Operation not permitted" in out
    assert "'/dev/xloop1': Operation not permitted" not in out
    assert "devnull-open" in out and "full=1" in out
    rt.ok("delete", "--force", cid)
    assert not os.path.exists(b.cg) and not os.path.exists(os.path.dirname(b.cg))


def test_hugetlb_limits(rt, make_bundle, cid):
    # Debian's kernel has the hugetlb controller and 2 MB pages on x86-64; this host's v1
    # hierarchy has no hugetlb, so this is where hugepageLimits are checked for real.
    with open(os.path.join(CG, "cgroup.controllers")) as f:
        assert "hugetlb" in f.read().split()
    b = Box(rt, make_bundle, cid, "exec sleep 1000",
            {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
    assert rd(b.cg, "hugetlb.2MB.max") == str(4 << 20)
    if os.path.exists(os.path.join(b.cg, "hugetlb.2MB.rsvd.max")):
        assert rd(b.cg, "hugetlb.2MB.rsvd.max") == str(4 << 20)
    # runc's update does not take hugepageLimits: accepted, and the limit stays
    r = rt.run("update", "--resources", "-", cid,
               input=json.dumps({"hugepageLimits": [{"pageSize": "2MB", "limit": 8 << 20}]}))
    assert r.returncode == 0, r.stderr
    assert rd(b.cg, "hugetlb.2MB.max") == str(4 << 20)
    rt.ok("delete", "--force", cid)
    assert not os.path.exists(b.cg)
