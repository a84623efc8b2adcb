"""Mounts: root, binds, tmpfs, flags, order, masked/readonly paths, symlink escapes."""
import os
import subprocess

import pytest

import util
from util import call_ok


def sh(make_bundle, script, mounts=(), readonly=None, **linux):
    b = make_bundle(["sh", "-c", script])
    b.config["mounts"].extend(mounts)
    if readonly is not None:
        b.config["root"]["readonly"] = readonly
    b.config["linux"].update(linux)
    b.save()
    return b


def run_out(rt, b, cid, *extra):
    return rt.ok("run", *extra, "--bundle", b.path, cid).stdout


def mountinfo_line(out, target):
    """The container's mountinfo line (from `cat /proc/self/mountinfo`) for `target`."""
    found = [x for x in out.splitlines() if " - " in x and x.split()[4] == target]
    assert found, "no mount at %s in:\n%s" % (target, out)
    return found[-1]


def mount_opts(line):
    """(per-mount options, super options) of a mountinfo line, as sets."""
    left, _, right = line.partition(" - ")
    return set(left.split()[5].split(",")), set(right.split()[2].split(","))


WRITE_TEST = "touch %s 2>/dev/null && echo rw || echo ro"


def test_readonly_root(rt, make_bundle, cid):
    b = sh(make_bundle, (WRITE_TEST % "/x") + "; " + (WRITE_TEST % "/tmp/x")
           + "; cat /proc/self/mountinfo", readonly=True)
    out = run_out(rt, b, cid).splitlines()
    assert out[:2] == ["ro", "ro"]
    assert "ro" in mount_opts(mountinfo_line("\n".join(out[2:]), "/"))[0]
    assert not os.path.exists(os.path.join(b.rootfs, "x"))


def test_writable_root(rt, make_bundle, cid):
    b = sh(make_bundle, WRITE_TEST % "/x", readonly=False)
    assert run_out(rt, b, cid).strip() == "rw"
    assert os.path.exists(os.path.join(b.rootfs, "x"))


def test_root_path_absolute(rt, make_bundle, cid):
    b = sh(make_bundle, "cat /marker")
    with open(os.path.join(b.rootfs, "marker"), "w") as f:
        f.write("abs\n")
    b.config["root"]["path"] = os.path.abspath(b.rootfs)
    b.save()
    assert run_out(rt, b, cid) == "abs\n"


def test_root_path_relative_other_name(rt, make_bundle, cid):
    b = sh(make_bundle, "cat /marker")
    os.rename(b.rootfs, os.path.join(b.path, "other-root"))
    with open(os.path.join(b.path, "other-root", "marker"), "w") as f:
        f.write("rel\n")
    b.config["root"]["path"] = "other-root"
    b.save()
    assert run_out(rt, b, cid) == "rel\n"


def test_state_rootfs_follows_root_path(rt, make_bundle, cid):
    b = sh(make_bundle, "sleep 1000")
    os.rename(b.rootfs, os.path.join(b.path, "other-root"))
    b.config["root"]["path"] = "other-root"
    b.save()
    call_ok(rt, "create", "--bundle", b.path, cid)
    assert (os.path.realpath(rt.state(cid)["rootfs"])
            == os.path.realpath(os.path.join(b.path, "other-root")))


@pytest.fixture
def hostdir(pyrt_tmp):
    d = os.path.join(pyrt_tmp, "hostdir")
    os.mkdir(d)
    with open(os.path.join(d, "file"), "w") as f:
        f.write("from-host\n")
    return d


def test_bind_mount_ro(rt, make_bundle, cid, hostdir):
    b = sh(make_bundle, "cat /data/file; " + WRITE_TEST % "/data/new",
           [{"destination": "/data", "type": "bind", "source": hostdir,
             "options": ["bind", "ro"]}])
    assert run_out(rt, b, cid).split() == ["from-host", "ro"]
    assert os.listdir(hostdir) == ["file"]


def test_bind_mount_rw(rt, make_bundle, cid, hostdir):
    b = sh(make_bundle, "cat /data/file; echo from-ctr > /data/new && echo done",
           [{"destination": "/data", "type": "bind", "source": hostdir,
             "options": ["rbind", "rw"]}])
    assert run_out(rt, b, cid).split() == ["from-host", "done"]
    with open(os.path.join(hostdir, "new")) as f:
        assert f.read() == "from-ctr\n"


def test_bind_mount_without_type(rt, make_bundle, cid, hostdir):
    # runc treats a mount with a "bind" option as a bind mount whatever its type
    b = sh(make_bundle, "cat /data/file",
           [{"destination": "/data", "source": hostdir, "options": ["bind"]}])
    assert run_out(rt, b, cid) == "from-host\n"


def test_bind_mount_file(rt, make_bundle, cid, hostdir):
    # the destination does not exist: a file is created for it
    b = sh(make_bundle, "cat /etc/injected",
           [{"destination": "/etc/injected", "type": "bind",
             "source": os.path.join(hostdir, "file"), "options": ["bind", "ro"]}])
    assert run_out(rt, b, cid) == "from-host\n"
    assert os.path.isfile(os.path.join(b.rootfs, "etc", "injected"))


def _mount(*args):
    subprocess.run(["mount", *args], check=True)


def _umount(path):
    subprocess.run(["umount", "-l", path], check=False)


@pytest.mark.parametrize("opt,visible", [("rbind", True), ("bind", False)])
def test_rbind_vs_bind(rt, make_bundle, cid, hostdir, opt, visible):
    sub = os.path.join(hostdir, "sub")
    os.mkdir(sub)
    _mount("-t", "tmpfs", "-o", "size=1m", "pyrt-sub", sub)
    try:
        with open(os.path.join(sub, "inner"), "w") as f:
            f.write("inner\n")
        b = sh(make_bundle, "cat /data/sub/inner 2>/dev/null || echo missing",
               [{"destination": "/data", "type": "bind", "source": hostdir,
                 "options": [opt, "ro"]}])
        assert run_out(rt, b, cid).strip() == ("inner" if visible else "missing")
    finally:
        _umount(sub)


@pytest.mark.parametrize("opt", ["ro", "rro"])
def test_rbind_readonly_submounts(rt, make_bundle, cid, hostdir, opt):
    # "ro" makes the bind read-only (submounts keep their own flags, as in runc);
    # "rro" (mount_setattr AT_RECURSIVE) makes every submount read-only as well
    sub = os.path.join(hostdir, "sub")
    os.mkdir(sub)
    _mount("-t", "tmpfs", "-o", "size=1m", "pyrt-sub", sub)
    try:
        b = sh(make_bundle, (WRITE_TEST % "/data/x") + "; " + (WRITE_TEST % "/data/sub/x"),
               [{"destination": "/data", "type": "bind", "source": hostdir,
                 "options": ["rbind", opt]}])
        out = run_out(rt, b, cid).split()
        assert out[0] == "ro"
        if opt == "rro":
            assert out[1] == "ro"
    finally:
        _umount(sub)


def test_recursive_attributes_set_and_cleared(rt, make_bundle, cid, hostdir):
    # mount_setattr(AT_RECURSIVE): r* options set attributes on every submount, their
    # negations clear them (attr_set and attr_clr of the setattr step): the ro, suid
    # submount comes out rw and nosuid,nodev,noexec, and so does the bind itself
    sub = os.path.join(hostdir, "sub")
    os.mkdir(sub)
    _mount("-t", "tmpfs", "-o", "size=1m", "pyrt-sub", sub)
    try:
        _mount("-o", "remount,bind,ro", sub)   # the mount read-only, not the tmpfs
        b = sh(make_bundle, "cat /proc/self/mountinfo; " + WRITE_TEST % "/data/sub/x",
               [{"destination": "/data", "type": "bind", "source": hostdir,
                 "options": ["rbind", "rnosuid", "rnodev", "rnoexec", "rrw"]}])
        out = run_out(rt, b, cid)
        assert out.split()[-1] == "rw"
        for target in ("/data", "/data/sub"):
            opts = mount_opts(mountinfo_line(out, target))[0]
            assert {"rw", "nosuid", "nodev", "noexec"} <= opts, (target, opts)
    finally:
        _umount(sub)


def test_mount_flags(rt, make_bundle, cid):
    b = sh(make_bundle, "cat /proc/self/mountinfo",
           [{"destination": "/flags", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "noexec", "noatime"]},
            {"destination": "/plain", "type": "tmpfs", "source": "tmpfs"}])
    out = run_out(rt, b, cid)
    opts = mount_opts(mountinfo_line(out, "/flags"))[0]
    assert {"nosuid", "nodev", "noexec", "noatime"} <= opts
    plain = mount_opts(mountinfo_line(out, "/plain"))[0]
    assert not {"nosuid", "nodev", "noexec", "ro"} & plain


def test_noexec_effect(rt, make_bundle, cid):
    # the copy is named after an applet: busybox picks the applet from argv[0]
    b = sh(make_bundle, "cp /bin/busybox /ne/echo && cp /bin/busybox /ex/echo && "
                        "/ex/echo exec-ok; /ne/echo exec-ok 2>/dev/null || echo refused",
           [{"destination": "/ne", "type": "tmpfs", "source": "tmpfs", "options": ["noexec"]},
            {"destination": "/ex", "type": "tmpfs", "source": "tmpfs", "options": ["exec"]}])
    assert run_out(rt, b, cid).split() == ["exec-ok", "refused"]


def test_nodev_effect(rt, make_bundle, cid):
    # the same device node opens on a plain tmpfs and is refused on a nodev one
    b = sh(make_bundle, "for d in /dv /nd; do mknod $d/null c 1 3 && "
                        "( (echo x > $d/null) 2>/dev/null && echo open || echo refused ); done",
           [{"destination": "/dv", "type": "tmpfs", "source": "tmpfs", "options": ["dev"]},
            {"destination": "/nd", "type": "tmpfs", "source": "tmpfs", "options": ["nodev"]}])
    caps = b.config["process"]["capabilities"]
    for k in ("bounding", "effective", "permitted"):
        caps[k].append("CAP_MKNOD")
    b.save()
    assert run_out(rt, b, cid).split() == ["open", "refused"]


def test_tmpfs_size_and_mode(rt, make_bundle, cid):
    b = sh(make_bundle, "stat -c %a /t; cat /proc/self/mountinfo",
           [{"destination": "/t", "type": "tmpfs", "source": "tmpfs",
             "options": ["size=1m", "mode=710", "nosuid"]}])
    out = run_out(rt, b, cid)
    assert out.split()[0] == "710"
    per, sup = mount_opts(mountinfo_line(out, "/t"))
    assert "size=1024k" in sup
    assert "mode=710" in sup
    assert "nosuid" in per


def test_tmpfs_size_enforced(rt, make_bundle, cid):
    b = sh(make_bundle, "dd if=/dev/zero of=/t/big bs=1024 count=2048 2>/dev/null "
                        "&& echo fit || echo full",
           [{"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}])
    assert run_out(rt, b, cid).strip() == "full"


def test_mounts_applied_in_order(rt, make_bundle, cid, pyrt_tmp):
    one, two = os.path.join(pyrt_tmp, "one"), os.path.join(pyrt_tmp, "two")
    for d in (one, two):
        os.mkdir(d)
        with open(os.path.join(d, "which"), "w") as f:
            f.write(os.path.basename(d) + "\n")
    b = sh(make_bundle, "cat /m/which; cat /n/sub/which",
           [{"destination": "/m", "type": "bind", "source": one, "options": ["bind"]},
            {"destination": "/m", "type": "bind", "source": two, "options": ["bind"]},
            # a mount inside an earlier tmpfs: its mountpoint is created in that tmpfs
            {"destination": "/n", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/n/sub", "type": "bind", "source": one, "options": ["bind"]}])
    assert run_out(rt, b, cid).split() == ["two", "one"]
    assert not os.path.exists(os.path.join(b.rootfs, "n", "sub"))


@pytest.mark.parametrize("target,fstype", [("/proc", "proc"), ("/sys", "sysfs"),
                                           ("/dev/pts", "devpts"), ("/dev/mqueue", "mqueue"),
                                           ("/dev", "tmpfs"), ("/dev/shm", "tmpfs")])
def test_default_mounts_present(rt, make_bundle, cid, target, fstype):
    b = sh(make_bundle, "cat /proc/self/mountinfo")
    line = mountinfo_line(run_out(rt, b, cid), target)
    assert line.partition(" - ")[2].split()[0] == fstype


def test_sysfs_readonly(rt, make_bundle, cid):
    b = sh(make_bundle, "cat /proc/self/mountinfo")
    assert "ro" in mount_opts(mountinfo_line(run_out(rt, b, cid), "/sys"))[0]


def test_missing_destination_created(rt, make_bundle, cid):
    b = sh(make_bundle, "test -d /new/deep/dir && grep -c ' /new/deep/dir ' /proc/self/mountinfo",
           [{"destination": "/new/deep/dir", "type": "tmpfs", "source": "tmpfs"}])
    assert run_out(rt, b, cid).strip() == "1"
    assert os.path.isdir(os.path.join(b.rootfs, "new", "deep", "dir"))


@pytest.mark.parametrize("link", ["abs", "rel"])
def test_symlink_destination_stays_in_rootfs(rt, make_bundle, cid, hostdir, pyrt_tmp, link):
    victim = os.path.join(pyrt_tmp, "victim")
    os.mkdir(victim)
    b = sh(make_bundle, "cat /evil/file")
    target = victim if link == "abs" else "../../../../../../../../.." + victim
    os.symlink(target, os.path.join(b.rootfs, "evil"))
    b.config["mounts"].append({"destination": "/evil", "type": "bind", "source": hostdir,
                               "options": ["bind", "ro"]})
    b.save()
    # the symlink resolves inside the container: the mount lands on <rootfs>/<victim>
    assert run_out(rt, b, cid) == "from-host\n"
    assert os.listdir(victim) == []
    assert util.mounts_under(victim) == []
    # host mountinfo: nothing under the test's dirs (the machine is shared: look only there)
    assert util.mounts_under(pyrt_tmp) == []
    assert os.path.isdir(os.path.join(b.rootfs, victim.lstrip("/")))


def test_symlink_destination_tmpfs_never_on_host(rt, make_bundle, cid, pyrt_tmp):
    victim = os.path.join(pyrt_tmp, "victim")
    os.mkdir(victim)
    with open(os.path.join(victim, "keep"), "w") as f:
        f.write("keep\n")
    b = sh(make_bundle, "ls /evil | wc -l")
    os.symlink(victim, os.path.join(b.rootfs, "evil"))
    b.config["mounts"].append({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"})
    b.save()
    assert run_out(rt, b, cid).strip() == "0"
    assert os.listdir(victim) == ["keep"]
    assert util.mounts_under(victim) == []


@pytest.mark.parametrize("prop", ["private", "rprivate", "slave", "rslave", "shared", "rshared"])
def test_rootfs_propagation_accepted(rt, make_bundle, cid, prop):
    b = sh(make_bundle, "echo ok", rootfsPropagation=prop)
    assert run_out(rt, b, cid) == "ok\n"


def test_rslave_bind_receives_host_mounts(rt, make_bundle, cid, hostdir):
    # a host mount made after start reaches the container through an rslave bind
    _mount("--bind", hostdir, hostdir)
    sub = os.path.join(hostdir, "sub")
    try:
        _mount("--make-rshared", hostdir)
        os.mkdir(sub)
        b = sh(make_bundle, "while [ ! -e /data/sub/marker ]; do sleep 0.05; done; "
                            "echo seen > /data/result",
               [{"destination": "/data", "type": "bind", "source": hostdir,
                 "options": ["rbind", "rw", "rslave"]}],
               rootfsPropagation="rslave")
        call_ok(rt, "create", "--bundle", b.path, cid)
        rt.ok("start", cid)
        _mount("-t", "tmpfs", "-o", "size=1m", "pyrt-late", sub)
        with open(os.path.join(sub, "marker"), "w") as f:
            f.write("x")
        result = os.path.join(hostdir, "result")
        assert util.wait_for(lambda: os.path.exists(result), 10), "mount did not propagate"
    finally:
        rt.run("delete", "--force", cid)
        _umount(sub)
        _umount(hostdir)


def test_masked_paths(rt, make_bundle, cid):
    # /proc/timer_list and /sys/firmware are masked by the default config, and not empty on
    # the host (a kernel without them would make this test pass for nothing)
    with open("/proc/timer_list") as f:
        assert f.read()
    assert os.listdir("/sys/firmware")
    b = sh(make_bundle, "wc -c < /proc/timer_list; ls -A /sys/firmware | wc -l; "
                        "wc -c < /etc/secret; ls -A /secretdir | wc -l; echo end")
    os.mkdir(os.path.join(b.rootfs, "secretdir"))
    for p in ("etc/secret", "secretdir/a"):
        with open(os.path.join(b.rootfs, p), "w") as f:
            f.write("secret\n")
    b.config["linux"]["maskedPaths"] += ["/etc/secret", "/secretdir", "/does/not/exist"]
    b.save()
    assert run_out(rt, b, cid).split() == ["0", "0", "0", "0", "end"]


def test_masked_dir_is_readonly(rt, make_bundle, cid):
    b = sh(make_bundle, WRITE_TEST % "/secretdir/x", readonly=False)
    os.mkdir(os.path.join(b.rootfs, "secretdir"))
    b.config["linux"]["maskedPaths"] = ["/secretdir"]
    b.save()
    assert run_out(rt, b, cid).strip() == "ro"


def test_readonly_paths(rt, make_bundle, cid):
    b = sh(make_bundle, (WRITE_TEST % "/rodir/x") + "; " + (WRITE_TEST % "/rwdir/x")
           + "; (echo 1 > /proc/sys/kernel/ns_last_pid) 2>/dev/null && echo rw || echo ro",
           readonly=False)
    for d in ("rodir", "rwdir"):
        os.mkdir(os.path.join(b.rootfs, d))
    b.config["linux"]["readonlyPaths"] += ["/rodir", "/does/not/exist"]
    b.save()
    assert run_out(rt, b, cid).split() == ["ro", "rw", "ro"]


def test_no_pivot(rt, make_bundle, cid):
    b = sh(make_bundle, "cat /marker; " + WRITE_TEST % "/x", readonly=True)
    with open(os.path.join(b.rootfs, "marker"), "w") as f:
        f.write("no-pivot\n")
    assert run_out(rt, b, cid, "--no-pivot").split() == ["no-pivot", "ro"]
