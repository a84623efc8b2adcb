"""/dev inside the container: default nodes, symlinks, linux.devices, user namespaces."""
import pytest

DEFAULT_NODES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                 "urandom": (1, 9), "tty": (5, 0)}


def sh(make_bundle, script, **linux):
    b = make_bundle(["sh", "-c", script])
    b.config["linux"].update(linux)
    b.save()
    return b


def run_out(rt, b, cid):
    return rt.ok("run", "--bundle", b.path, cid).stdout


def stat_nodes(out):
    """Parse `stat -c '%n %F %t %T %a %u %g'` lines (major/minor in hex)."""
    res = {}
    for line in out.splitlines():
        name, rest = line.split(" ", 1)
        kind, rest = rest.rsplit(" ", 5)[0], rest.rsplit(" ", 5)[1:]
        res[name] = (kind, int(rest[0], 16), int(rest[1], 16), rest[2], int(rest[3]),
                     int(rest[4]))
    return res


STAT = "stat -c '%n %F %t %T %a %u %g' "


def test_default_device_nodes(rt, make_bundle, cid):
    paths = " ".join("/dev/" + n for n in DEFAULT_NODES)
    nodes = stat_nodes(run_out(rt, sh(make_bundle, STAT + paths), cid))
    for name, (major, minor) in DEFAULT_NODES.items():
        kind, ma, mi, mode, uid, gid = nodes["/dev/" + name]
        assert kind == "character special file", name
        assert (ma, mi) == (major, minor), name
        assert mode == "666", name
        assert (uid, gid) == (0, 0), name


def test_default_devices_usable(rt, make_bundle, cid):
    # the device cgroup allows the defaults even though the config denies everything else
    b = sh(make_bundle, "echo x > /dev/null && echo null-ok; head -c 5 /dev/zero | wc -c; "
                        "head -c 5 /dev/urandom | wc -c; head -c 5 /dev/random | wc -c; "
                        "(echo x > /dev/full) 2>/dev/null || echo full-refused")
    assert run_out(rt, b, cid).split() == ["null-ok", "5", "5", "5", "full-refused"]


def test_dev_symlinks(rt, make_bundle, cid):
    b = sh(make_bundle, "for l in fd stdin stdout stderr ptmx; do "
                        "echo $l $(readlink /dev/$l); done")
    links = dict(x.split() for x in run_out(rt, b, cid).splitlines())
    assert links == {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
                     "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2",
                     "ptmx": "pts/ptmx"}


def test_dev_pts_and_shm(rt, make_bundle, cid):
    b = sh(make_bundle, "test -c /dev/pts/ptmx && echo ptmx; test -d /dev/shm && echo shm; "
                        "stat -c %a /dev/shm; echo data > /dev/shm/f && cat /dev/shm/f")
    assert run_out(rt, b, cid).split() == ["ptmx", "shm", "1777", "data"]


def test_dev_is_private_tmpfs(rt, make_bundle, cid):
    # the container's /dev holds only what the runtime put there, not the host's devices
    b = sh(make_bundle, "ls /dev")
    names = set(run_out(rt, b, cid).split())
    assert names >= {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "mqueue",
                     "fd", "stdin", "stdout", "stderr", "ptmx"}
    assert not names & {"vda", "sda", "mem", "kmsg", "loop0"}


@pytest.mark.parametrize("dtype,kind", [("c", "character special file"),
                                        ("b", "block special file")])
def test_configured_device(rt, make_bundle, cid, dtype, kind):
    b = sh(make_bundle, STAT + "/dev/mydev /dev/sub/dir/other",
           devices=[{"path": "/dev/mydev", "type": dtype, "major": 10, "minor": 229,
                     "fileMode": 0o640, "uid": 1, "gid": 2},
                    {"path": "/dev/sub/dir/other", "type": dtype, "major": 10, "minor": 230,
                     "fileMode": 0o600, "uid": 0, "gid": 0}])
    nodes = stat_nodes(run_out(rt, b, cid))
    assert nodes["/dev/mydev"] == (kind, 10, 229, "640", 1, 2)
    assert nodes["/dev/sub/dir/other"] == (kind, 10, 230, "600", 0, 0)


def test_configured_device_wide_numbers(rt, make_bundle, cid):
    # a major above 255 and a minor above 255 and 65535: every bit of dev_t's split
    # encoding (the kernel's 12-bit major, 20-bit minor), and uid/gid beside them
    b = sh(make_bundle, STAT + "/dev/wide /dev/widest",
           devices=[{"path": "/dev/wide", "type": "c", "major": 260, "minor": 300000,
                     "fileMode": 0o604, "uid": 70000, "gid": 70001},
                    {"path": "/dev/widest", "type": "b", "major": 4095, "minor": 1048575,
                     "fileMode": 0o660, "uid": 0, "gid": 0}])
    nodes = stat_nodes(run_out(rt, b, cid))
    assert nodes["/dev/wide"] == ("character special file", 260, 300000, "604", 70000, 70001)
    assert nodes["/dev/widest"] == ("block special file", 4095, 1048575, "660", 0, 0)


def test_configured_device_overrides_default(rt, make_bundle, cid):
    # a linux.devices entry for a default path wins over the default node
    b = sh(make_bundle, STAT + "/dev/null",
           devices=[{"path": "/dev/null", "type": "c", "major": 1, "minor": 3,
                     "fileMode": 0o600, "uid": 0, "gid": 0}])
    # runc drops its default cgroup rule for a node the config redefines: allow it here
    b.config["linux"]["resources"]["devices"].append(
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"})
    b.save()
    assert stat_nodes(run_out(rt, b, cid))["/dev/null"][:4] == (
        "character special file", 1, 3, "600")


def test_devices_bind_mounted_in_user_namespace(rt, make_bundle, cid):
    # mknod is impossible in a user namespace: the host nodes are bind mounted instead
    b = sh(make_bundle, STAT + "/dev/null /dev/zero; echo x > /dev/null && echo null-ok; "
                        "grep -E ' /dev/(null|zero) ' /proc/self/mountinfo | wc -l",
           namespaces=[{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user")],
           uidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}],
           gidMappings=[{"containerID": 0, "hostID": 100000, "size": 65536}])
    lines = run_out(rt, b, cid).splitlines()
    nodes = stat_nodes("\n".join(lines[:2]))
    assert nodes["/dev/null"][:3] == ("character special file", 1, 3)
    assert nodes["/dev/zero"][:3] == ("character special file", 1, 5)
    # host root is unmapped in the container: the bound host node shows the overflow uid
    assert nodes["/dev/null"][4] == 65534
    assert lines[2] == "null-ok"
    assert lines[3] == "2"
