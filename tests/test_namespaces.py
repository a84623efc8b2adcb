"""Namespaces: created, shared with the host when absent, joined by path, user and time."""
import os

import pytest
from util import call_ok

# config namespace type -> /proc/<pid>/ns entry
NS_FILE = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts", "mount": "mnt",
           "cgroup": "cgroup", "user": "user", "time": "time"}


def sh(make_bundle, script, namespaces=None, **linux):
    b = make_bundle(["sh", "-c", script])
    if namespaces is not None:
        b.config["linux"]["namespaces"] = [
            n if isinstance(n, dict) else {"type": n} for n in namespaces]
        if not any(n.get("type") == "uts" and "path" not in n
                   for n in b.config["linux"]["namespaces"]):
            # a hostname needs a private UTS namespace
            b.config.pop("hostname", None)
    b.config["linux"].update(linux)
    b.save()
    return b


def run_out(rt, b, cid):
    return rt.ok("run", "--bundle", b.path, cid).stdout


def host_ns(kind):
    return os.readlink("/proc/self/ns/" + NS_FILE[kind])


ALL = ["pid", "network", "ipc", "uts", "mount", "cgroup"]


@pytest.mark.parametrize("kind", ALL)
def test_namespace_is_new(rt, make_bundle, cid, kind):
    b = sh(make_bundle, "readlink /proc/self/ns/" + NS_FILE[kind], ALL)
    assert run_out(rt, b, cid).strip() != host_ns(kind)


@pytest.mark.parametrize("kind", ["pid", "network", "ipc", "uts", "cgroup"])
def test_namespace_shared_when_absent(rt, make_bundle, cid, kind):
    b = sh(make_bundle, "readlink /proc/self/ns/" + NS_FILE[kind],
           [k for k in ALL if k != kind])
    assert run_out(rt, b, cid).strip() == host_ns(kind)


def test_pid_namespace_pid_1(rt, make_bundle, cid):
    b = sh(make_bundle, "echo $$; ls /proc | grep -E '^[0-9]+$' | sort -n | head -1")
    assert run_out(rt, b, cid).split() == ["1", "1"]


def test_network_namespace_only_lo(rt, make_bundle, cid):
    b = sh(make_bundle, "ls /sys/class/net; tail -n +3 /proc/net/dev | cut -d: -f1; "
                        "cat /sys/class/net/lo/flags")
    out = run_out(rt, b, cid).split()
    assert out[:2] == ["lo", "lo"]
    # loopback is brought up, as runc does: IFF_UP | IFF_LOOPBACK
    assert int(out[2], 16) & 0x9 == 0x9
    assert len(out) == 3


def test_uts_hostname(rt, make_bundle, cid):
    b = sh(make_bundle, "hostname; cat /proc/sys/kernel/hostname")
    b.config["hostname"] = "pyrt-host"
    b.save()
    assert run_out(rt, b, cid).split() == ["pyrt-host", "pyrt-host"]
    with open("/proc/sys/kernel/hostname") as f:
        assert f.read().strip() != "pyrt-host"


def test_uts_domainname(rt, make_bundle, cid):
    if not rt.is_pyruntime:
        pytest.skip("pyruntime only: runc 1.1 ignores domainname")
    b = sh(make_bundle, "cat /proc/sys/kernel/domainname")
    b.config["domainname"] = "pyrt.example"
    b.save()
    assert run_out(rt, b, cid).strip() == "pyrt.example"
    with open("/proc/sys/kernel/domainname") as f:
        assert f.read().strip() != "pyrt.example"


def test_mount_namespace_private(rt, make_bundle, cid):
    # the container's mounts (its /proc, tmpfs /dev ...) never show up on the host
    b = sh(make_bundle, "grep -c ' /dev/shm ' /proc/self/mountinfo")
    before = open("/proc/self/mountinfo").read()
    assert int(run_out(rt, b, cid).strip()) >= 1
    assert b.rootfs not in before
    with open("/proc/self/mountinfo") as f:
        assert b.rootfs not in f.read()


def test_cgroup_namespace_root(rt, make_bundle, cid):
    # inside a cgroup namespace the container's own cgroup is the root: every line ends in "/"
    b = sh(make_bundle, "cat /proc/self/cgroup", ALL)
    lines = [x for x in run_out(rt, b, cid).splitlines() if x]
    assert lines
    for line in lines:
        assert line.split(":", 2)[2] == "/", line


def test_user_namespace_mappings(rt, make_bundle, cid):
    b = sh(make_bundle, "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g",
           ALL + ["user"],
           uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
           gidMappings=[{"containerID": 0, "hostID": 200000, "size": 1000}])
    out = run_out(rt, b, cid).split()
    assert out == ["0", "100000", "65536", "0", "200000", "1000", "0", "0"]


def test_user_namespace_host_ids(rt, make_bundle, cid, pyrt_tmp):
    # root in the container is the mapped host uid outside: files it creates show that
    shared = os.path.join(pyrt_tmp, "shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    b = sh(make_bundle, "touch /shared/f && readlink /proc/self/ns/user", ALL + ["user"],
           uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
           gidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}])
    # the container's root cannot create a mountpoint in a rootfs owned by unmapped host root
    os.mkdir(os.path.join(b.rootfs, "shared"))
    b.config["mounts"].append({"destination": "/shared", "type": "bind", "source": shared,
                               "options": ["rbind", "rw"]})
    b.save()
    assert run_out(rt, b, cid).strip() != host_ns("user")
    st = os.stat(os.path.join(shared, "f"))
    assert (st.st_uid, st.st_gid) == (100000, 100000)


def test_user_namespace_multiple_ranges(rt, make_bundle, cid):
    b = sh(make_bundle, "cat /proc/self/uid_map", ALL + ["user"],
           uidMappings=[{"containerID": 0, "hostID": 100000, "size": 1},
                        {"containerID": 1, "hostID": 300001, "size": 999}],
           gidMappings=[{"containerID": 0, "hostID": 100000, "size": 1000}])
    rows = [x.split() for x in run_out(rt, b, cid).splitlines()]
    assert sorted(rows) == [["0", "100000", "1"], ["1", "300001", "999"]]


def test_time_namespace_offsets(rt, make_bundle, cid):
    if not rt.is_pyruntime:
        pytest.skip("pyruntime only: runc 1.1 has no time namespace")
    ten_days = 10 * 86400
    b = sh(make_bundle, "cat /proc/self/timens_offsets; cut -d' ' -f1 /proc/uptime",
           ALL + ["time"],
           timeOffsets={"monotonic": {"secs": ten_days, "nanosecs": 0},
                        "boottime": {"secs": ten_days + 5, "nanosecs": 500}})
    with open("/proc/uptime") as f:
        host_before = float(f.read().split()[0])
    lines = run_out(rt, b, cid).splitlines()
    offsets = {x.split()[0]: x.split()[1:] for x in lines[:2]}
    assert offsets == {"monotonic": [str(ten_days), "0"],
                       "boottime": [str(ten_days + 5), "500"]}
    # /proc/uptime is boottime: shifted by the offset
    assert float(lines[2]) >= host_before + ten_days + 5


def test_join_network_namespace_by_path(rt, make_bundle, cid):
    first, second = cid + "-a", cid + "-b"
    b1 = sh(make_bundle, "sleep 1000")
    call_ok(rt, "create", "--bundle", b1.path, first)
    pid = rt.state(first)["pid"]
    b2 = sh(make_bundle, "readlink /proc/self/ns/net",
            ["pid", {"type": "network", "path": "/proc/%d/ns/net" % pid}, "ipc", "uts", "mount"])
    out = run_out(rt, b2, second).strip()
    assert out == os.readlink("/proc/%d/ns/net" % pid)
    assert out != host_ns("network")


def test_join_uts_namespace_sees_hostname(rt, make_bundle, cid):
    first, second = cid + "-a", cid + "-b"
    b1 = sh(make_bundle, "sleep 1000")
    b1.config["hostname"] = "first-ctr"
    b1.save()
    call_ok(rt, "create", "--bundle", b1.path, first)
    pid = rt.state(first)["pid"]
    b2 = sh(make_bundle, "hostname; readlink /proc/self/ns/uts",
            ["pid", "network", "ipc", {"type": "uts", "path": "/proc/%d/ns/uts" % pid}, "mount"])
    out = run_out(rt, b2, second).split()
    assert out == ["first-ctr", os.readlink("/proc/%d/ns/uts" % pid)]


def test_join_ipc_and_pid_namespace(rt, make_bundle, cid):
    # joining the first container's pid namespace: the second sees the first's init as pid 1
    first, second = cid + "-a", cid + "-b"
    b1 = sh(make_bundle, "sleep 1000")
    call_ok(rt, "create", "--bundle", b1.path, first)
    rt.ok("start", first)
    pid = rt.state(first)["pid"]
    b2 = sh(make_bundle, "readlink /proc/self/ns/ipc; cat /proc/1/cmdline | tr '\\0' ' '; echo; "
                         "test $$ != 1 && echo notone",
            [{"type": "pid", "path": "/proc/%d/ns/pid" % pid},
             {"type": "ipc", "path": "/proc/%d/ns/ipc" % pid}, "network", "uts", "mount"])
    lines = run_out(rt, b2, second).splitlines()
    assert lines[0] == os.readlink("/proc/%d/ns/ipc" % pid)
    assert lines[1].strip() == "sleep 1000"
    assert lines[2] == "notone"


def test_user_namespace_joined_by_path(rt, make_bundle, cid):
    # a second container in the first one's user namespace (a pod) with its own mounts: its
    # init becomes root there before it makes /dev, or the nodes it creates have no owner
    # in that namespace (EOVERFLOW on the /dev/pts mount point)
    maps = {"uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}
    a = sh(make_bundle, "sleep 600", ALL + ["user"], **maps)
    for root, dirs, files in os.walk(a.rootfs):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), 100000, 100000)
    os.chown(a.rootfs, 100000, 100000)
    rt.ok("run", "-d", "--bundle", a.path, cid)
    pid = rt.state(cid)["pid"]
    try:
        b = sh(make_bundle, "id -u; id -g; readlink /proc/self/ns/user; cat /proc/self/uid_map",
               ALL + [{"type": "user", "path": "/proc/%d/ns/user" % pid}], **maps)
        for root, dirs, files in os.walk(b.rootfs):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), 100000, 100000)
        os.chown(b.rootfs, 100000, 100000)
        out = run_out(rt, b, cid + "-b").split()
        assert out[:3] == ["0", "0", os.readlink("/proc/%d/ns/user" % pid)], out
        assert out[3:] == ["0", "100000", "65536"], out
    finally:
        rt.ok("delete", "-f", cid)
