"""Behaviour bugs found by other suites (the OCI runtime-tools validation suite, another
runtime's integration tests), each checked against runc as well."""
import os
import subprocess

import pytest

import util


def run_sh(rt, make_bundle, cid, script, edit=None):
    b = make_bundle(["sh", "-c", script])
    if edit:
        edit(b.config)
    b.save()
    return rt.run("run", "--bundle", b.path, cid)


# ---- runtime-tools linux_ns_itype / linux_ns_path ------------------------------------

def test_no_mount_namespace_inherits_the_runtimes(rt, make_bundle, cid):
    # no mount namespace in the config: the container shares the runtime's (runc allows
    # it); the rootfs set up for it is gone again after delete (the leak check sees mounts)
    def edit(c):
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"]
                                    if n["type"] != "mount"]
        # masking needs a private mount namespace (runc and pyruntime refuse it)
        c["linux"].pop("maskedPaths", None)
        c["linux"].pop("readonlyPaths", None)
    r = run_sh(rt, make_bundle, cid, "readlink /proc/self/ns/mnt; ls /bin/busybox", edit)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [os.readlink("/proc/self/ns/mnt"), "/bin/busybox"]


def test_join_mount_namespace_by_path(rt, make_bundle, cid, pyrt_tmp):
    holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                               "sleep", "1000"])
    try:
        ns = "/proc/%d/ns/mnt" % holder.pid
        assert util.wait_for(lambda: os.readlink(ns) != os.readlink("/proc/self/ns/mnt"))

        def edit(c):
            for n in c["linux"]["namespaces"]:
                if n["type"] == "mount":
                    n["path"] = ns
        r = run_sh(rt, make_bundle, cid, "readlink /proc/self/ns/mnt; cat /proc/1/comm", edit)
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[0] == os.readlink(ns)
    finally:
        holder.kill()
        holder.wait()


# ---- the seccomp hang ------------------------------------------------------------------

def test_seccomp_without_close_range_and_no_new_privs_false(rt, make_bundle, cid):
    # runtime-tools' configs: an allow-list without close_range, noNewPrivileges false.
    # The init must not keep the runtime's fds (its lock): start and delete must not block.
    b = make_bundle(["sleep", "1000"])
    b.config["process"]["noNewPrivileges"] = False
    b.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}
    b.save()
    rt.ok("create", "--bundle", b.path, cid, timeout=20)
    rt.ok("start", cid, timeout=20)
    assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "--force", cid, timeout=20)


# ---- found by another runtime's integration suite -------------------------------------

def env_lines(out):
    return [x for x in out.split("\n") if x]


def test_duplicate_env_last_wins_once(rt, make_bundle, cid):
    # env itself, not a shell (which would tidy its environment up on its own)
    b = make_bundle(["env"])
    b.config["process"]["env"] = ["PATH=/bin", "A=first", "B=b", "A=second"]
    b.save()
    r = rt.run("run", "--bundle", b.path, cid)
    assert r.returncode == 0, r.stderr
    lines = env_lines(r.stdout)
    assert [x for x in lines if x.startswith("A=")] == ["A=second"]
    assert "B=b" in lines


def test_exec_env_overrides_once(rt, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    b.config["process"]["env"] = ["PATH=/bin", "A=config", "A=config2"]
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid)
    r = rt.ok("exec", "--env", "A=exec", "--env", "C=1", "--env", "C=2", cid, "env")
    lines = env_lines(r.stdout)
    assert [x for x in lines if x.startswith("A=")] == ["A=exec"]
    assert [x for x in lines if x.startswith("C=")] == ["C=2"]


def test_tmpfs_without_mode_takes_the_mountpoints(rt, make_bundle, cid):
    b = make_bundle(["stat", "-c", "%a", "/data", "/moded"])
    for d, mode in (("data", 0o750), ("moded", 0o750)):
        os.mkdir(os.path.join(b.rootfs, d))
        os.chmod(os.path.join(b.rootfs, d), mode)
    b.config["mounts"] += [
        {"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]},
        {"destination": "/moded", "type": "tmpfs", "source": "tmpfs",
         "options": ["mode=711"]}]
    b.save()
    r = rt.run("run", "--bundle", b.path, cid)
    assert r.returncode == 0, r.stderr
    got = r.stdout.split()
    assert got[0] == "750"
    if rt.is_pyruntime:
        assert got[1] == "711"  # an explicit mode= is kept (runc 1.1.5 overrides it too)


@pytest.mark.parametrize("command", [["list"], ["state", "nosuch"]])
def test_log_that_cannot_be_opened_fails_at_startup(rt, pyrt_tmp, command):
    path = os.path.join(pyrt_tmp, "missing-dir", "x.log")
    r = rt.run("--log", path, *command)
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1
    assert "level=error" in lines[0]
    assert 'msg="open %s: no such file or directory"' % path in lines[0]


def test_cgroups_path_with_nul_is_one_line_naming_the_field(rt, make_bundle, cid):
    b = make_bundle(["true"])
    b.config["linux"]["cgroupsPath"] = "/pyrt-nul\x00x/" + cid
    b.save()
    r = rt.run("create", "--bundle", b.path, cid)
    assert r.returncode == 1
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "Error" not in lines[0] and "Traceback" not in r.stderr
    if rt.is_pyruntime:
        assert "cgroupsPath" in lines[0]
    assert cid not in rt.container_ids()


def test_memory_kernel_tcp_limit_is_set(rt, make_bundle, cid):
    # runtime-tools linux_cgroups_memory: kernelTCP is still enforced by cgroup v1
    if not os.path.exists("/sys/fs/cgroup/memory/memory.kmem.tcp.limit_in_bytes"):
        pytest.skip("no cgroup v1 memory.kmem.tcp on this host")
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 ignores kernelTCP")
    b = make_bundle(["sleep", "1000"])
    b.config["linux"].setdefault("resources", {})["memory"] = {
        "limit": 50593792, "kernelTCP": 50593792}
    b.save()
    rt.ok("create", "--bundle", b.path, cid)
    pid = rt.state(cid)["pid"]
    with open("/proc/%d/cgroup" % pid) as f:
        path = next(line.split(":", 2)[2].strip() for line in f
                    if line.split(":")[1] == "memory")
    with open("/sys/fs/cgroup/memory%s/memory.kmem.tcp.limit_in_bytes" % path) as f:
        assert int(f.read()) == 50593792


def test_seccomp_denying_getcwd_without_no_new_privs(rt, make_bundle, cid):
    # runtime-tools linux_seccomp: the filter is loaded before the cwd is checked
    if not rt.is_pyruntime:
        pytest.skip("runc (1.1.5 + the CVE-2024-21626 fix) fails: getcwd is denied")
    b = make_bundle(["true"])
    b.config["process"]["noNewPrivileges"] = False
    b.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]}
    b.save()
    r = rt.run("run", "--bundle", b.path, cid)
    assert r.returncode == 0, r.stderr


def test_device_rules_applied_in_the_listed_order(rt, make_bundle, cid):
    # runtime-tools linux_cgroups_devices: v1's devices.list shows the config's rules
    # first, in their order (the spec: "MUST apply entries in the listed order")
    if not os.path.exists("/sys/fs/cgroup/devices/devices.list"):
        pytest.skip("no cgroup v1 devices controller")
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 writes its minimal diff, in its own order")
    b = make_bundle(["sleep", "1000"])
    b.config["linux"].setdefault("resources", {})["devices"] = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        {"allow": True, "type": "b", "major": 8, "minor": 20, "access": "rw"},
        {"allow": True, "type": "b", "major": 10, "minor": 200, "access": "r"}]
    b.save()
    rt.ok("create", "--bundle", b.path, cid)
    pid = rt.state(cid)["pid"]
    with open("/proc/%d/cgroup" % pid) as f:
        path = next(line.split(":", 2)[2].strip() for line in f
                    if line.split(":")[1] == "devices")
    with open("/sys/fs/cgroup/devices%s/devices.list" % path) as f:
        assert f.read().splitlines()[:3] == ["c 10:229 rwm", "b 8:20 rw", "b 10:200 r"]


def test_rootfs_propagation_unbindable(rt, make_bundle, cid):
    # runtime-tools linux_rootfs_propagation: an unbindable / must not stop the rootfs bind
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 fails: it binds the rootfs below an unbindable /")
    b = make_bundle(["cat", "/proc/self/mountinfo"])
    b.config["linux"]["rootfsPropagation"] = "unbindable"
    b.save()
    r = rt.run("run", "--bundle", b.path, cid)
    assert r.returncode == 0, r.stderr
    root = [line.split() for line in r.stdout.splitlines() if line.split()[4] == "/"]
    assert root and "unbindable" in root[-1][6:root[-1].index("-")]


def test_rootfs_propagation_runbindable_with_masked_and_readonly_paths(rt, make_bundle, cid):
    # every mount unbindable: the readonly paths' self-binds, a masked file's /dev/null bind
    # and the console's bind must come first, or they fail (EINVAL) and so does the container
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 fails: it binds the rootfs below an unbindable /")
    b = make_bundle(["sh", "-c", "cat /proc/self/mountinfo; wc -c < /proc/timer_list"])
    b.config["linux"]["rootfsPropagation"] = "runbindable"
    b.save()
    r = rt.run("run", "--bundle", b.path, cid)
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines()]
    mounts = {x[4]: x[6:x.index("-")] for x in lines if "-" in x}
    assert "unbindable" in mounts["/"] and "unbindable" in mounts["/proc"], mounts
    by_point = {x[4]: x for x in lines if "-" in x}
    assert "ro" in by_point["/proc/sys"][5].split(","), by_point["/proc/sys"]
    assert lines[-1] == ["0"]                              # /proc/timer_list stays masked


def test_user_namespace_rootfs_below_a_private_dir(rt, make_bundle, cid):
    # runtime-tools linux_uid_mappings / linux_ns_nopath: the bundle is a 0700 root-owned
    # dir; the rootfs is reached with the runtime's credentials, not the mapped root's
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 binds the rootfs as the mapped root: EACCES")
    b = make_bundle(["id", "-u"])
    os.chmod(b.path, 0o700)
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.save()
    r = rt.run("run", "--bundle", b.path, cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0"]


def _private_bind(pyrt_tmp, make_bundle, sub, text, options, link=None):
    """A userns container binding `sub` of a 0700 dir only the runtime's host
    credentials can enter (through the symlink `link` when given)."""
    private = os.path.join(pyrt_tmp, "private")
    os.makedirs(os.path.join(private, sub))
    os.chmod(private, 0o700)
    with open(os.path.join(private, sub, "f"), "w") as f:
        f.write(text)
    os.chmod(os.path.join(private, sub, "f"), 0o644)
    if link:
        os.symlink(sub, os.path.join(private, link))
    b = make_bundle(["cat", "/mnt/f"])
    # the mountpoint exists (the mapped root cannot create it in a root-owned rootfs)
    os.makedirs(os.path.join(b.rootfs, "mnt"), exist_ok=True)
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    b.config["mounts"].append({"destination": "/mnt", "type": "bind",
                               "source": os.path.join(private, link or sub),
                               "options": options})
    b.save()
    return b


def test_user_namespace_bind_source_below_a_private_dir(rt, make_bundle, cid, pyrt_tmp):
    # bind sources are reached with the runtime's credentials, not the mapped root's
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 binds the rootfs as the mapped root: EACCES")
    b = _private_bind(pyrt_tmp, make_bundle, "data", "hello\n", ["rbind", "ro"])
    r = rt.run("run", "--bundle", b.path, cid)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello\n"


def test_user_namespace_idmapped_mount_through_a_symlinked_source(rt, make_bundle, cid,
                                                                   pyrt_tmp):
    # the source is a symlink below a private dir: resolved and cloned by the runtime
    b = _private_bind(pyrt_tmp, make_bundle, "real", "idmapped\n", ["rbind", "idmap"],
                      link="link")
    r = rt.run("run", "--bundle", b.path, cid)
    if not rt.is_pyruntime and r.returncode:
        pytest.skip("runc 1.1.5 has no idmapped mounts: " + r.stderr.strip())
    assert r.returncode == 0, r.stderr
    assert r.stdout == "idmapped\n"
