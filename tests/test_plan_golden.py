"""The plan is the contract between the runtime and its init: a change to what the init
does must show up in review. For each config in spec-fixtures/ (and the default `spec`,
rootful and rootless), the plan built from it and from fixed host facts is compared with
a checked-in expected plan (tests/golden/plans/). The planner looks at nothing on the host
(pyruntime.hostfacts gathers that first), so the result is the same on every machine.

After an intended change, regenerate and review the diff:
    PYRT_GOLDEN_UPDATE=1 .venv/bin/python -m pytest -q tests/test_plan_golden.py

The second half checks that the plan `create` runs is the plan `pyruntime plan` prints
(both log its sha256 with --debug)."""
import json
import os
import re
from pathlib import Path

import pytest

from pyruntime import cgroups, config as config_mod, plan as plan_mod, specgen

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "spec-fixtures" / "configs"
GOLDEN = Path(__file__).resolve().parent / "golden" / "plans"
BUNDLE = "/bundle"   # where the plans say the bundle is, whatever the temp dir was

CASES = sorted(p.stem for p in FIXTURES.glob("*.json")) + ["default-spec", "default-spec-rootless"]


def _spec(name):
    if name == "default-spec":
        return specgen.default_spec()
    if name == "default-spec-rootless":
        return specgen.default_spec(rootless=True)
    return json.loads((FIXTURES / ("%s.json" % name)).read_text())


def _config(tmp_path, spec):
    bundle = tmp_path / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    (bundle / "config.json").write_text(json.dumps(spec))
    config = config_mod.load(str(bundle))
    # the plan names the rootfs: the same fixed path on every machine
    config["_rootfs"] = BUNDLE + "/rootfs"
    return config


def _fixed_facts(config):
    """What hostfacts.gather would find, fixed: every bind source an existing directory
    (/sys is sysfs), no tmpfs mount point in the (empty) rootfs, no passwd (HOME=/)."""
    linux = config.get("linux") or {}
    sources = {}
    for m in config.get("mounts") or ():
        opts = m.get("options") or ()
        if m.get("type") == "bind" or "bind" in opts or "rbind" in opts:
            src = plan_mod.resolve_host_source(m.get("source") or "", BUNDLE)
            sources[src] = {"dir": True, "sys": src == "/sys", "proc": False}
    seccomp = None
    if linux.get("seccomp"):
        # the compiled program depends on the host's libseccomp: a fixed stand-in
        # (tests/test_seccomp_* cover the compiler)
        notify = any(s.get("action") == "SCMP_ACT_NOTIFY"
                     for s in linux["seccomp"].get("syscalls") or ())
        seccomp = {"program": bytes.fromhex("060000000000ff7f"), "flags": 0, "notify": notify}
    return {
        "last_cap": 40, "apparmor_exec": "/proc/self/attr/apparmor/exec", "sources": sources,
        "rootfs_modes": {}, "rootfs_parent_mount": "/", "home": "/", "listen_fds": 0,
        "pass_fds": [], "stdio_mask": 0, "setgroups_denied": False, "cgroup_replace": {},
        "seccomp": seccomp, "clone_into_cgroup": True,
    }


def _fixed_cgroup(config, cid):
    """A cgroup v1 hybrid host's manager, as cgroups.new would make it (fixed paths)."""
    linux = config.get("linux") or {}
    mounts = {k: "/sys/fs/cgroup/" + k for k in
              ("blkio", "cpu,cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
               "net_cls,net_prio", "perf_event", "pids", "rdma")}
    mounts[""] = "/sys/fs/cgroup/unified"
    return cgroups.from_state({
        "driver": "v1", "mode": "hybrid", "id": cid, "cgroups_path": None,
        "paths": {k: v + "/" + cid for k, v in mounts.items()}, "mounts": mounts,
        "created": [], "skipped": [], "resources": linux.get("resources") or {},
        "rootless": False, "linux_devices": linux.get("devices")})


def _encode(o):
    if isinstance(o, (bytes, bytearray)):
        return {"bytes": bytes(o).hex()}
    raise TypeError(repr(o))


@pytest.mark.parametrize("name", CASES)
def test_plan_matches_the_golden_plan(tmp_path, name):
    config = _config(tmp_path, _spec(name))
    opts = {"no_pivot": False, "no_new_keyring": False, "preserve_fds": 0, "foreground": False}
    plan = plan_mod.build(config, BUNDLE, "golden", opts, _fixed_facts(config),
                          cgroup_mgr=_fixed_cgroup(config, "golden"))
    got = json.dumps(plan, indent=1, sort_keys=True, default=_encode) + "\n"
    path = GOLDEN / ("%s.json" % name)
    if os.environ.get("PYRT_GOLDEN_UPDATE"):
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(got)
    assert path.exists(), "no golden plan %s: PYRT_GOLDEN_UPDATE=1 writes it" % path
    want = path.read_text()
    # line by line: pytest shows which steps differ
    assert got.splitlines() == want.splitlines(), (
        "the plan for %s changed: if intended, regenerate (see this file's docstring) and "
        "review the diff" % name)


@pytest.mark.parametrize("switch", [True, False])
def test_clone_into_cgroup_is_a_host_fact(tmp_path, monkeypatch, switch):
    """Born in its cgroup v2 dir or moved there: the facts say which (hostfacts reads
    PYRT_CLONE_INTO_CGROUP), so the planner's answer does not hang on its environment."""
    monkeypatch.setenv("PYRT_CLONE_INTO_CGROUP", "1" if not switch else "0")
    config = _config(tmp_path, specgen.default_spec())
    leaf = "/sys/fs/cgroup/golden"
    mgr = cgroups.from_state({"driver": "v2", "mode": "unified", "id": "golden",
                              "cgroups_path": None, "paths": {"": leaf},
                              "mounts": {"": "/sys/fs/cgroup"}, "created": [], "skipped": []})
    opts = {"no_pivot": False, "no_new_keyring": False, "preserve_fds": 0, "foreground": False}
    plan = plan_mod.build(config, BUNDLE, "golden", opts,
                          dict(_fixed_facts(config), clone_into_cgroup=switch), cgroup_mgr=mgr)
    assert plan.get("clone_into_cgroup") == (leaf if switch else None)


@pytest.mark.parametrize("netns", [False, True])
def test_sysfs_fallback_is_a_plan_step(tmp_path, netns):
    """A new user namespace without a new network namespace cannot mount sysfs: the plan,
    not the executor, says what happens then (bind the host's /sys, everything under it
    read-only, CVE-2023-25809); the executor runs those steps only on EPERM/EBUSY."""
    spec = specgen.default_spec()
    linux = spec["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network" or netns]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = linux["gidMappings"] = [
        {"containerID": 0, "hostID": 100000, "size": 65536}]
    config = _config(tmp_path, spec)
    opts = {"no_pivot": False, "no_new_keyring": False, "preserve_fds": 0, "foreground": False}
    plan = plan_mod.build(config, BUNDLE, "golden", opts, _fixed_facts(config),
                          cgroup_mgr=_fixed_cgroup(config, "golden"))
    sysfs = [st for st in plan["steps"] if st["op"] == "mount" and st.get("fstype") == "sysfs"]
    assert len(sysfs) == 1
    if netns:
        assert "fallback" not in sysfs[0]
        return
    assert sysfs[0]["fallback_errnos"] == ["EPERM", "EBUSY"]
    bind, ro = sysfs[0]["fallback"]
    assert (bind["op"], bind["source"], bind["target"], bind["fstype"]) == ("mount", "/sys", "/sys", "")
    assert bind["flags"] == plan_mod.MS_BIND | plan_mod.MS_REC
    assert bind["no_symlinks"] and bind["fs_magic"] == plan_mod.SYSFS_MAGIC
    assert (ro["op"], ro["target"], ro["recursive"]) == ("setattr", "/sys", True)
    assert ro["attr_set"] & plan_mod.MOUNT_ATTR_RDONLY


def test_golden_plans_have_no_stale_files():
    assert sorted(p.stem for p in GOLDEN.glob("*.json")) == sorted(CASES)


# ---- the plan create runs is the plan `pyruntime plan` prints ---------------------------

_DIGEST = re.compile(r"plan sha256 ([0-9a-f]{64})")


def _digest(rt, pyrt_tmp, *args):
    log = os.path.join(pyrt_tmp, "log-%s-%s" % (args[0], args[-1]))
    rt.ok("--debug", "--log", log, *args)
    with open(log) as f:
        found = _DIGEST.findall(f.read())
    assert len(found) == 1, "expected one plan digest in the %s log" % args[0]
    return found[0]


def _variants(make_bundle):
    b = make_bundle(args=["/bin/sh", "-c", "exit 0"])
    yield "default", b
    # everything create used to add outside the planner: HOME comes from passwd here
    b = make_bundle(args=["/bin/true"])
    b.config["process"]["env"] = [e for e in b.config["process"]["env"]
                                  if not e.startswith("HOME=")]
    b.config["process"]["user"] = {"uid": 0, "gid": 0, "additionalGids": [1, 2]}
    b.config["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 64}]
    b.config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mknodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    b.config["mounts"].append({"destination": "/mnt", "type": "bind",
                               "source": b.rootfs + "/etc", "options": ["rbind", "ro"]})
    b.config["mounts"].append({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
                               "options": ["nosuid"]})
    b.config["hooks"] = {"createRuntime": [{"path": "/bin/true"}]}
    b.save()
    yield "hardened", b
    spec = specgen.default_spec()
    spec["process"]["args"] = ["/bin/true"]
    spec["process"]["terminal"] = False
    b = make_bundle(args=["/bin/true"])
    b.config.update({k: spec[k] for k in ("mounts", "linux")})
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.save()
    yield "userns", b


def test_create_runs_the_plan_that_plan_prints(rt, make_bundle, cid, pyrt_tmp):
    if not rt.is_pyruntime:
        pytest.skip("pyruntime only: runc has neither a plan command nor plan digests")
    for what, b in _variants(make_bundle):
        c = "%s-%s" % (cid, what)
        printed = _digest(rt, pyrt_tmp, "plan", "-b", b.path, c)
        executed = _digest(rt, pyrt_tmp, "create", "-b", b.path, c)
        rt.ok("delete", "--force", c)
        assert printed == executed, "%s: create ran another plan than plan printed" % what
