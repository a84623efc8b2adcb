"""A rootfs whose paths are hostile: symlinks to /, to /proc, to a host canary dir, loops,
very long paths, used as mount destinations, cwd, device paths, masked paths.

Whatever the runtime answers (success or a one-line error), it never touches a host file
outside the bundle: a canary dir on the host stays byte-for-byte the same, and the host's
mount table gains nothing.
"""
import os
import subprocess
import tempfile

import pytest

import util
from util import link, snapshot

LONG = "/" + "/".join(["d" * 200] * 30)          # 6 kB: longer than PATH_MAX
DEEP = "/" + "/".join(["d"] * 2100)              # 4.2 kB, 2100 components


def host_mounts():
    return {(m[1], m[2]) for m in util.mounts()}


@pytest.fixture
def canary(pyrt_tmp):
    d = os.path.join(pyrt_tmp, "canary")
    os.makedirs(os.path.join(d, "sub"))
    for n in ("file", "sub/file", "passwd"):
        with open(os.path.join(d, n), "w") as f:
            f.write("canary %s\n" % n)
    os.symlink("file", os.path.join(d, "link"))
    return d


def call(rt, *args, timeout=60):
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = rt.run(*args, stdout=out, stderr=err, timeout=timeout)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(p.args, p.returncode, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


# name -> function(bundle, canary) that makes the rootfs/config hostile
CASES = {}


def case(fn):
    CASES[fn.__name__] = fn
    return fn


@case
def mount_through_symlink_to_canary(b, canary):
    link(b.rootfs, "esc", canary)
    b.config["mounts"].append({"destination": "/esc/sub", "type": "tmpfs", "source": "tmpfs"})
    b.config["mounts"].append({"destination": "/esc/new", "type": "tmpfs", "source": "tmpfs"})


@case
def bind_over_symlink_to_canary_file(b, canary):
    link(b.rootfs, "esc", canary)
    b.config["mounts"].append({"destination": "/esc/file", "type": "bind",
                               "source": "/dev/null", "options": ["bind"]})


@case
def mount_through_symlink_to_root(b, canary):
    link(b.rootfs, "hostroot", "/")
    b.config["mounts"].append({"destination": "/hostroot" + canary, "type": "tmpfs",
                               "source": "tmpfs"})
    b.config["mounts"].append({"destination": "/hostroot" + canary + "/made",
                               "type": "tmpfs", "source": "tmpfs"})


@case
def relative_dotdot_symlink(b, canary):
    link(b.rootfs, "up", "../../../../../../../../../.." + canary)
    b.config["mounts"].append({"destination": "/up/sub", "type": "tmpfs", "source": "tmpfs"})


@case
def proc_is_symlink_to_canary(b, canary):
    os.rmdir(os.path.join(b.rootfs, "proc"))
    link(b.rootfs, "proc", canary)


@case
def proc_is_symlink_to_host_proc(b, canary):
    os.rmdir(os.path.join(b.rootfs, "proc"))
    link(b.rootfs, "proc", "/proc")


@case
def dev_is_symlink_to_canary(b, canary):
    b.config["mounts"] = [m for m in b.config["mounts"] if not m["destination"].startswith("/dev")]
    os.rmdir(os.path.join(b.rootfs, "dev"))
    link(b.rootfs, "dev", canary)
    b.config["linux"]["devices"] = [{"path": "/dev/evil", "type": "c", "major": 1, "minor": 3}]


@case
def device_path_through_symlink(b, canary):
    link(b.rootfs, "esc", canary)
    b.config["linux"]["devices"] = [{"path": "/esc/evil", "type": "c", "major": 1, "minor": 3},
                                    {"path": "/esc/sub/file", "type": "c", "major": 1, "minor": 5}]


@case
def symlink_loop(b, canary):
    link(b.rootfs, "loop1", "loop2")
    link(b.rootfs, "loop2", "loop1")
    b.config["mounts"].append({"destination": "/loop1/x", "type": "tmpfs", "source": "tmpfs"})


@case
def cwd_symlink_loop(b, canary):
    link(b.rootfs, "loop1", "/loop2")
    link(b.rootfs, "loop2", "/loop1")
    b.config["process"]["cwd"] = "/loop1"


@case
def cwd_through_symlink_to_canary(b, canary):
    link(b.rootfs, "esc", canary)
    b.config["process"]["cwd"] = "/esc/sub"
    b.config["process"]["args"] = ["/bin/sh", "-c", "touch x ../y 2>/dev/null; true"]


@case
def cwd_missing_under_symlink(b, canary):
    link(b.rootfs, "esc", canary)
    b.config["process"]["cwd"] = "/esc/made/by/runtime"


@case
def long_mount_destination(b, canary):
    b.config["mounts"].append({"destination": LONG, "type": "tmpfs", "source": "tmpfs"})


@case
def deep_mount_destination(b, canary):
    b.config["mounts"].append({"destination": DEEP, "type": "tmpfs", "source": "tmpfs"})


@case
def long_cwd(b, canary):
    b.config["process"]["cwd"] = LONG


@case
def long_device_path(b, canary):
    b.config["linux"]["devices"] = [{"path": "/dev" + LONG, "type": "c", "major": 1, "minor": 3}]


@case
def masked_and_readonly_through_symlinks(b, canary):
    link(b.rootfs, "esc", canary)
    link(b.rootfs, "hostroot", "/")
    b.config["linux"]["maskedPaths"] += ["/esc/file", "/esc/sub", "/hostroot" + canary]
    b.config["linux"]["readonlyPaths"] += ["/esc", "/hostroot/etc"]


@case
def passwd_symlink_to_canary(b, canary):
    # HOME comes from the container's /etc/passwd: read inside the rootfs only
    link(b.rootfs, "etc/passwd", os.path.join(canary, "passwd"))
    link(b.rootfs, "etc/group", "/etc/shadow")
    b.config["process"]["user"] = {"uid": 0, "gid": 0, "additionalGids": [5]}


@case
def rootfs_is_symlink_to_canary_parent(b, canary):
    # the rootfs itself a symlink: resolved once, the container is confined to its target
    os.rename(b.rootfs, b.rootfs + ".real")
    os.symlink(b.rootfs + ".real", b.rootfs)
    link(b.rootfs + ".real", "esc", canary)
    b.config["mounts"].append({"destination": "/esc/sub", "type": "tmpfs", "source": "tmpfs"})


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_rootfs(rt, make_bundle, cid, canary, name, pyrt_counts, request):
    if name == "dev_is_symlink_to_canary" and not rt.is_pyruntime:
        request.node.add_marker(pytest.mark.xfail(
            reason="runc 1.1.5 makes its /dev/fd, /dev/ptmx... symlinks through a rootfs /dev "
                   "symlink, in the host dir it points to"))
    b = make_bundle(["/bin/true"])
    b.config["root"]["readonly"] = False
    CASES[name](b, canary)
    b.save()
    before, mounts0 = snapshot(canary), host_mounts()
    p = call(rt, "create", "--bundle", b.path, cid)
    assert "Traceback" not in p.stderr, p.stderr
    if rt.is_pyruntime:
        assert "internal error" not in p.stderr, p.stderr
    if p.returncode == 0:
        rt.ok("start", cid)
        util.wait_for(lambda: rt.state(cid)["status"] == "stopped", 10)
        rt.ok("delete", "--force", cid)
    else:
        assert p.returncode == 1, p.stderr
        if rt.is_pyruntime:
            lines = [x for x in p.stderr.splitlines() if x.strip() and "level=warning" not in x]
            assert len(lines) == 1, p.stderr
    assert snapshot(canary) == before, "a host file outside the bundle was touched"
    new = host_mounts() - mounts0
    # other tools on this machine mount below their own /tmp dirs; nothing else may appear
    assert not [m for m in new if not m[0].startswith("/tmp/") or m[0].startswith(canary)
                or m[0].startswith(os.path.dirname(b.path))], new
    assert not os.path.exists(os.path.join(rt.root, cid))
    pyrt_counts["hostile rootfs cases"] = pyrt_counts.get("hostile rootfs cases", 0) + 1
