"""Every path the runtime creates or changes for a container is resolved inside the rootfs.

The attacker controls the image (symlinks anywhere in it) and the paths of linux.devices,
maskedPaths and readonlyPaths. Whatever they say, a host file or directory outside the
rootfs never changes (content, mode, owner), and a symlinked masked/read-only path applies
to its target inside the rootfs, as runc does.

Canaries: a host dir with files of known modes and owners (never 0666, never root) that the
hostile paths point at, the bundle dir, the rootfs dir itself, and the dir the runtime runs
in (what /proc/<init>/cwd shows before the pivot).
"""
import os
import stat

import pytest

from util import link, snapshot

UID = 4321      # canary owner: a chown to the device's 0:0 shows
USERNS_HOST = 100000


def top(path):
    st = os.lstat(path)
    return (st.st_mode, st.st_uid, st.st_gid)


@pytest.fixture
def canary(pyrt_tmp):
    d = os.path.join(pyrt_tmp, "canary")
    os.makedirs(os.path.join(d, "sub"))
    for n, mode in (("file", 0o600), ("sub/file", 0o640), ("full", 0o600)):
        p = os.path.join(d, n)
        with open(p, "w") as f:
            f.write("canary %s\n" % n)
        os.chmod(p, mode)
        os.chown(p, UID, UID)
    os.chmod(os.path.join(d, "sub"), 0o700)
    os.chown(os.path.join(d, "sub"), UID, UID)
    os.chmod(d, 0o750)
    os.chown(d, UID, UID)
    return d


def userns_bundle(b):
    """Run `b` in a new user namespace mapped to 100000+ (its rootfs chowned to match)."""
    # (it keeps its network namespace: sysfs can be mounted, by runc too)
    b.config["linux"]["namespaces"].append({"type": "user"})
    b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": USERNS_HOST, "size": 65536}]
    b.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": USERNS_HOST, "size": 65536}]
    for root, dirs, files in os.walk(b.rootfs):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), USERNS_HOST, USERNS_HOST)
    os.chown(b.rootfs, USERNS_HOST, USERNS_HOST)


def no_dev_tmpfs(b):
    """The image's own /dev is used: its symlinks are what the device paths meet."""
    b.config["mounts"] = [m for m in b.config["mounts"] if not m["destination"].startswith("/dev")]


# --- linux.devices ---------------------------------------------------------------------

# name -> (device path, function(bundle, canary) making the image hostile). /dev/full
# exists on the host, so the same config works in a user namespace (a bind of the host's
# node there).
DEVICE_CASES = {
    "abs_symlink_to_host_file": ("/dev/full", lambda b, c: link(b.rootfs, "dev/full", c + "/file")),
    "abs_symlink_to_host_dir": ("/dev/full", lambda b, c: link(b.rootfs, "dev/full", c + "/sub")),
    "relative_climb": ("/dev/full", lambda b, c: link(b.rootfs, "dev/full", "../../../../../../../.." + c + "/file")),
    "symlink_chain": ("/dev/full", lambda b, c: (link(b.rootfs, "dev/full", "/dev/l2"),
                                                 link(b.rootfs, "dev/l2", "l3"),
                                                 link(b.rootfs, "dev/l3", "../../../.." + c + "/file"))),
    "symlinked_parent": ("/dev/full", lambda b, c: (os.rmdir(os.path.join(b.rootfs, "dev")),
                                                    link(b.rootfs, "dev", c))),
    "symlink_to_bundle_dir": ("/dev/full", lambda b, c: link(b.rootfs, "dev/full", "../..")),
}


def _devices_bundle(make_bundle, canary, path, userns):
    b = make_bundle(args=["/bin/true"])
    no_dev_tmpfs(b)
    b.config["root"]["readonly"] = False
    # masking needs the image's /dev/null, which these images may lack or redirect
    b.config["linux"]["maskedPaths"] = []
    b.config["linux"]["devices"] = [{"path": path, "type": "c", "major": 1, "minor": 7,
                                     "fileMode": 0o666, "uid": 0, "gid": 0}]
    return b


def _run_and_check(rt, b, cid, canary, cwd=None):
    """Run `b`; nothing outside the rootfs changes, whatever the outcome."""
    before = snapshot(canary)
    bundle_before, rootfs_before = top(b.path), top(b.rootfs)
    r = rt.run("run", "-b", b.path, cid, cwd=cwd or canary)
    assert snapshot(canary) == before, r.stderr
    assert top(b.path) == bundle_before, r.stderr
    assert top(b.rootfs) == rootfs_before, r.stderr
    if r.returncode != 0 and rt.is_pyruntime:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r


@pytest.mark.parametrize("userns", [False, True], ids=["host", "userns"])
@pytest.mark.parametrize("name", sorted(DEVICE_CASES))
def test_device_path_symlink_stays_inside(rt, make_bundle, cid, canary, name, userns, request):
    if name == "symlinked_parent" and not rt.is_pyruntime:
        request.node.add_marker(pytest.mark.xfail(
            reason="runc 1.1.5 makes /dev/ptmx, /dev/fd... through the image's /dev symlink, "
                   "in the host dir it points to"))
    path, setup = DEVICE_CASES[name]
    b = _devices_bundle(make_bundle, canary, path, userns)
    setup(b, canary)
    if userns:
        userns_bundle(b)
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    if name != "symlink_to_bundle_dir":
        # runc follows the link as if the rootfs were / and makes the node at its target
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("userns", [False, True], ids=["host", "userns"])
@pytest.mark.parametrize("path", ["/..", "/dev/..", "/tmp/../..", "/dev/full/../..",
                                  "/proc/self/cwd", "/proc/1/cwd", "/proc/self/root/dev/full"])
def test_device_path_dotdot_and_magic_links(rt, make_bundle, cid, canary, path, userns):
    b = _devices_bundle(make_bundle, canary, path, userns)
    # keep /proc (mounted before the devices are made), drop the /dev tmpfs
    if userns:
        userns_bundle(b)
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    if ".." in path:
        # the path is the rootfs itself: left as it is (runc: mknod meets EEXIST), and in
        # a user namespace no host dir is bound onto it
        assert (r.returncode != 0) == userns, r.stderr
        if userns and rt.is_pyruntime:
            assert "is a directory" in r.stderr, r.stderr
    if path.startswith("/proc/") and rt.is_pyruntime:
        # a magic link is never followed (runc reinterprets its text inside the rootfs)
        assert r.returncode != 0
        assert path in r.stderr, r.stderr


@pytest.mark.guest
@pytest.mark.parametrize("userns", [False, True], ids=["host", "userns"])
def test_existing_file_at_device_path_left_alone(rt, make_bundle, cid, canary, userns):
    b = _devices_bundle(make_bundle, canary, "/dev/full", userns)
    p = os.path.join(b.rootfs, "dev/full")
    with open(p, "w") as f:
        f.write("image file\n")
    os.chmod(p, 0o640)
    if userns:
        userns_bundle(b)
    uid = USERNS_HOST if userns else 0
    os.chown(p, uid + 7, uid + 7)
    b.config["process"]["args"] = ["/bin/sh", "-c", "ls -ln /dev/full"]
    b.save()
    st = os.stat(p)
    r = _run_and_check(rt, b, cid, canary)
    assert r.returncode == 0, r.stderr
    after = os.stat(p)
    assert (after.st_mode, after.st_uid, after.st_gid) == (st.st_mode, st.st_uid, st.st_gid)
    if not userns:
        # runc's mknod meets EEXIST and leaves the file as it is
        assert r.stdout.startswith("-rw-r-----"), r.stdout
        with open(p) as f:
            assert f.read() == "image file\n"
    else:
        # in a user namespace the host's node is bound over it
        assert r.stdout.startswith("c"), r.stdout
        if rt.is_pyruntime:
            # runc truncates the image's file (os.Create); nothing needs to
            with open(p) as f:
                assert f.read() == "image file\n"


def test_existing_node_at_device_path_left_alone(rt, make_bundle, cid, canary):
    b = _devices_bundle(make_bundle, canary, "/dev/full", False)
    p = os.path.join(b.rootfs, "dev/full")
    os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 7))
    os.chown(p, 7, 7)
    os.chmod(p, 0o600)
    b.config["process"]["args"] = ["/bin/sh", "-c", "ls -ln /dev/full"]
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    assert r.returncode == 0, r.stderr
    st = os.stat(p)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o600, 7, 7)


@pytest.mark.guest
def test_device_made_at_symlink_target_inside_rootfs(rt, make_bundle, cid, canary):
    """The node lands where the link points when the rootfs is /: like runc's SecureJoin."""
    b = _devices_bundle(make_bundle, canary, "/dev/full", False)
    link(b.rootfs, "dev/full", "../../../.." + canary + "/file")
    b.config["process"]["args"] = ["/bin/sh", "-c", "ls -ln %s/file" % canary]
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("crw-rw-rw-"), r.stdout
    st = os.lstat(os.path.join(b.rootfs, canary.lstrip("/"), "file"))
    assert stat.S_ISCHR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o666


# --- maskedPaths / readonlyPaths -------------------------------------------------------

def _paths_bundle(make_bundle, script, userns):
    b = make_bundle(args=["/bin/sh", "-c", script])
    b.config["root"]["readonly"] = False
    os.makedirs(os.path.join(b.rootfs, "data/dir"))
    with open(os.path.join(b.rootfs, "data/secret"), "w") as f:
        f.write("SECRET\n")
    with open(os.path.join(b.rootfs, "data/dir/inner"), "w") as f:
        f.write("INNER\n")
    os.makedirs(os.path.join(b.rootfs, "rw/sub"))
    link(b.rootfs, "links/abs_secret", "/data/secret")
    link(b.rootfs, "links/rel_secret", "../data/secret")
    link(b.rootfs, "links/chain_secret", "/links/rel_secret")
    link(b.rootfs, "links/climb_secret", "../../../../../../data/secret")
    link(b.rootfs, "links/abs_dir", "/data/dir")
    link(b.rootfs, "links/rel_dir", "../data/dir")
    link(b.rootfs, "links/chain_dir", "abs_dir")
    link(b.rootfs, "links/climb_dir", "../../../../../../data/dir")
    link(b.rootfs, "links/abs_rw", "/rw")
    link(b.rootfs, "links/rel_rw", "../rw/sub")
    link(b.rootfs, "links/chain_rw", "abs_rw")
    link(b.rootfs, "links/climb_rw", "../../../../../rw")
    link(b.rootfs, "links/dangling", "/nowhere/at/all")
    return b


@pytest.mark.parametrize("userns", [False, True], ids=["host", "userns"])
@pytest.mark.parametrize("kind", ["abs", "rel", "chain", "climb"])
def test_masked_symlink_masks_target(rt, make_bundle, cid, canary, kind, userns):
    b = _paths_bundle(make_bundle, "cat /data/secret; ls /data/dir; echo end", userns)
    b.config["linux"]["maskedPaths"] += ["/links/%s_secret" % kind, "/links/%s_dir" % kind,
                                         "/links/dangling"]
    if userns:
        userns_bundle(b)
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "end\n", r.stdout


@pytest.mark.parametrize("userns", [False, True], ids=["host", "userns"])
@pytest.mark.parametrize("kind", ["abs", "rel", "chain", "climb"])
def test_readonly_symlink_makes_target_read_only(rt, make_bundle, cid, canary, kind, userns):
    b = _paths_bundle(make_bundle, "touch /rw/sub/x 2>/dev/null && echo WRITABLE; "
                      "touch /data/ok && echo data-writable", userns)
    b.config["linux"]["readonlyPaths"] += ["/links/%s_rw" % kind, "/links/dangling"]
    if userns:
        userns_bundle(b)
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "data-writable\n", r.stdout
    assert not os.path.exists(os.path.join(b.rootfs, "rw/sub/x"))


@pytest.mark.guest
@pytest.mark.parametrize("userns", [False, True], ids=["host", "userns"])
def test_masked_and_readonly_symlinks_to_host_paths_stay_inside(rt, make_bundle, cid, canary, userns):
    b = _paths_bundle(make_bundle, "true", userns)
    link(b.rootfs, "links/host_file", canary + "/file")
    link(b.rootfs, "links/host_dir", "../../../../.." + canary)
    b.config["linux"]["maskedPaths"] += ["/links/host_file", "/links/host_dir"]
    b.config["linux"]["readonlyPaths"] += ["/links/host_dir", "/links/host_file"]
    if userns:
        userns_bundle(b)
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("field", ["maskedPaths", "readonlyPaths"])
def test_masked_and_readonly_magic_links_refused(rt, make_bundle, cid, canary, field):
    b = _paths_bundle(make_bundle, "true", False)
    b.config["linux"][field] += ["/proc/self/cwd"]
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    if rt.is_pyruntime:
        # runc follows the link (here to the container's own /); a magic link's target is
        # not a path in the container's root, so it is not followed at all
        assert r.returncode != 0
        assert "/proc/self/cwd" in r.stderr and "symbolic links" in r.stderr, r.stderr


# --- the process cwd -------------------------------------------------------------------

@pytest.mark.parametrize("userns", [False, True], ids=["host", "userns"])
@pytest.mark.parametrize("dangling", [False, True], ids=["exists", "dangling"])
@pytest.mark.parametrize("how", ["abs", "climb"])
def test_cwd_symlink_resolved_inside(rt, make_bundle, cid, canary, how, dangling, userns):
    if dangling and not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 refuses a cwd that is a dangling symlink (mkdir: file exists)")
    b = make_bundle(args=["/bin/sh", "-c", "pwd -P"])
    target = canary + "/sub/made" if how == "abs" else "../../../../.." + canary + "/sub/made"
    link(b.rootfs, "work", target)
    if not dangling:
        os.makedirs(os.path.join(b.rootfs, canary.lstrip("/"), "sub/made"))
    b.config["process"]["cwd"] = "/work"
    if userns:
        userns_bundle(b)
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    assert r.returncode == 0, r.stderr
    assert r.stdout == canary + "/sub/made\n"
    assert os.path.isdir(os.path.join(b.rootfs, canary.lstrip("/"), "sub/made"))


@pytest.mark.guest
@pytest.mark.parametrize("cwd", ["/proc/self/cwd", "/proc/1/cwd", "/proc/self/root/tmp"])
def test_cwd_magic_link_refused(rt, make_bundle, cid, canary, cwd):
    b = make_bundle(args=["/bin/sh", "-c", "pwd"])
    # the host's pid namespace: /proc/1 is the host's init
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                       if n["type"] != "pid"]
    b.config["process"]["cwd"] = cwd
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    if rt.is_pyruntime:
        # ELOOP (a magic link), or EACCES when /proc/1 is not ours to follow
        assert r.returncode != 0, r.stdout
        assert cwd in r.stderr, r.stderr
    else:
        # runc follows it; the cwd must at least not be the host's
        assert r.returncode != 0 or r.stdout.strip() in ("/", "/tmp"), r.stdout


# --- the default /dev and its symlinks -------------------------------------------------

@pytest.mark.parametrize("how", ["abs", "climb"])
def test_dev_tmpfs_on_symlinked_dev_stays_inside(rt, make_bundle, cid, canary, how, request):
    """The image's /dev is a symlink out: /dev (tmpfs), its devices, /dev/fd, /dev/ptmx,
    /dev/pts, /dev/shm, /dev/mqueue all land inside the rootfs, at the link's target."""
    if not rt.is_pyruntime:
        request.node.add_marker(pytest.mark.xfail(
            reason="runc 1.1.5 makes /dev/ptmx, /dev/fd... through the image's /dev symlink, "
                   "in the host dir it points to"))
    b = make_bundle(args=["/bin/sh", "-c", "ls -l /dev/ptmx /dev/fd; test -c /dev/null && echo ok"])
    os.rmdir(os.path.join(b.rootfs, "dev"))
    link(b.rootfs, "dev", canary if how == "abs" else "../../../../.." + canary)
    b.config["linux"]["devices"] = [{"path": "/dev/extra", "type": "c", "major": 1, "minor": 7}]
    b.save()
    r = _run_and_check(rt, b, cid, canary)
    # (only under the canary: other tests of this machine mount and unmount elsewhere)
    assert _host_mounts_under(canary) == []
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout and "pts/ptmx" in r.stdout, r.stdout


def _host_mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [mp for mp in (line.split()[4] for line in f)
                if mp == path or mp.startswith(path + "/")]
