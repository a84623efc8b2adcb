"""Rootless: an ordinary user runs `spec --rootless` output unmodified.

The fixture makes a user (`useradd -m`, removed afterwards), a bundle and an
XDG_RUNTIME_DIR the user owns. The venv's interpreter lives under /root (mode 0700 on the
test VM), out of an ordinary user's reach: the same pyruntime code runs under the system
python3 with the repo and the venv's site-packages on PYTHONPATH.
"""
import json
import os
import pwd
import shutil
import subprocess
import sys

import pytest

import util

USER = "pyrtuser-t"
SYS_PY = "/usr/bin/python3"


def _have_tools():
    return (os.geteuid() == 0 and shutil.which("useradd") and shutil.which("runuser")
            and os.path.exists(SYS_PY))


pytestmark = pytest.mark.skipif(not _have_tools(), reason="needs root, useradd, runuser, python3")


@pytest.fixture
def ruser(rt, pyrt_tmp, _pyrt_session):
    if not rt.is_pyruntime:
        pytest.skip("runs pyruntime's code as another user")
    try:
        pwd.getpwnam(USER)
        existed = True
    except KeyError:
        existed = False
        subprocess.run(["useradd", "-m", USER], check=True, capture_output=True)
    pw = pwd.getpwnam(USER)
    home = os.path.join(pyrt_tmp, "rootless")
    os.mkdir(home)
    os.chmod(home, 0o755)
    xdg = os.path.join(home, "xdg")
    bundle = os.path.join(home, "bundle")
    os.mkdir(xdg, 0o700)
    os.mkdir(bundle)
    shutil.copytree(_pyrt_session.template(), os.path.join(bundle, "rootfs"), symlinks=True)
    for root, dirs, files in os.walk(home):
        for n in dirs + files:
            os.lchown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)
    os.chown(home, pw.pw_uid, pw.pw_gid)
    site = [p for p in sys.path if p.endswith("site-packages") and p.startswith(util.REPO)]
    env = {"XDG_RUNTIME_DIR": xdg, "HOME": pw.pw_dir, "PATH": "/usr/bin:/bin",
           "PYTHONPATH": ":".join([util.REPO] + site)}

    class U:
        uid, gid, name = pw.pw_uid, pw.pw_gid, USER

        def run(self, *args, timeout=60, cgroup=None):
            """pyruntime as the user; with `cgroup` (a v2 dir), started inside it: root
            moves the shell there, then drops to the user."""
            argv = ["runuser", "-u", USER, "--", "env"] + ["%s=%s" % kv for kv in env.items()] + \
                [SYS_PY, "-m", "pyruntime"] + list(args)
            if cgroup:
                argv = ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup] + argv
            # files, not pipes: a detached container keeps the runtime's stdio open
            import tempfile
            with tempfile.TemporaryFile("w+") as o, tempfile.TemporaryFile("w+") as e:
                p = subprocess.run(argv, cwd=bundle, stdout=o, stderr=e,
                                   stdin=subprocess.DEVNULL, timeout=timeout)
                o.seek(0)
                e.seek(0)
                return subprocess.CompletedProcess(argv, p.returncode, o.read(), e.read())

    u = U()
    u.bundle, u.xdg = bundle, xdg
    yield u
    # whatever the test left: containers of the user, then the user
    for cid in os.listdir(os.path.join(xdg, "pyruntime")) if os.path.isdir(
            os.path.join(xdg, "pyruntime")) else []:
        u.run("delete", "-f", cid)
    if not existed:
        subprocess.run(["pkill", "-KILL", "-u", USER], capture_output=True)
        subprocess.run(["userdel", "-r", USER], capture_output=True)


def _set_args(u, args):
    path = os.path.join(u.bundle, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = args
    cfg["process"]["terminal"] = False
    with open(path, "w") as f:
        json.dump(cfg, f)
    return cfg


def test_rootless_spec_and_run(ruser, cid):
    r = ruser.run("spec", "--rootless")
    assert r.returncode == 0, r.stderr
    cfg = _set_args(ruser, ["sh", "-c", "id -u; cat /proc/self/uid_map; cat /proc/self/gid_map; "
                                        "touch /sys/fs/cgroup/x 2>&1; echo end"])
    assert cfg["linux"]["uidMappings"] == [{"containerID": 0, "hostID": ruser.uid, "size": 1}]
    r = ruser.run("run", cid)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(ruser.uid), "1"]
    assert lines[2].split() == ["0", str(ruser.gid), "1"]
    assert "Read-only file system" in r.stdout
    # state under $XDG_RUNTIME_DIR/pyruntime, gone after run
    assert os.path.isdir(os.path.join(ruser.xdg, "pyruntime"))
    assert os.listdir(os.path.join(ruser.xdg, "pyruntime")) == []


def test_rootless_lifecycle_and_state_location(ruser, cid):
    assert ruser.run("spec", "--rootless").returncode == 0
    _set_args(ruser, ["sleep", "300"])
    r = ruser.run("run", "-d", cid)
    assert r.returncode == 0, r.stderr
    try:
        st = json.loads(ruser.run("state", cid).stdout)
        assert st["status"] == "running"
        assert os.path.exists(os.path.join(ruser.xdg, "pyruntime", cid, "state.json"))
        with open("/proc/%d/status" % st["pid"]) as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        assert uids == [str(ruser.uid)] * 4      # container root is the user on the host
        assert ruser.run("kill", cid, "KILL").returncode == 0
    finally:
        r = ruser.run("delete", "-f", cid)
        assert r.returncode == 0, r.stderr


def test_rootless_subordinate_ids_via_newuidmap(ruser, cid):
    """Mapping more than one's own id goes through newuidmap/newgidmap and /etc/subuid."""
    if not shutil.which("newuidmap"):
        pytest.skip("uidmap package not installed")
    sub = None
    with open("/etc/subuid") as f:
        for line in f:
            name, start, count = line.strip().split(":")
            if name == ruser.name:
                sub = int(start), int(count)
    if sub is None:
        pytest.skip("no /etc/subuid entry for the user")
    assert ruser.run("spec", "--rootless").returncode == 0
    cfg = _set_args(ruser, ["sh", "-c", "cat /proc/self/uid_map; ls -n /home/user -d"])
    for key, own in (("uidMappings", ruser.uid), ("gidMappings", ruser.gid)):
        cfg["linux"][key] = [{"containerID": 0, "hostID": own, "size": 1},
                             {"containerID": 1, "hostID": sub[0], "size": 65535}]
    with open(os.path.join(ruser.bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    r = ruser.run("run", cid)
    assert r.returncode == 0, r.stderr
    rows = [l.split() for l in r.stdout.splitlines() if l.strip() and l.split()[0].isdigit()]
    assert ["1", str(sub[0]), "65535"] in rows


def test_rootless_unmapped_ids_refused_clearly(ruser, cid):
    """Ids the user has no claim on: newuidmap refuses; the message says what to check."""
    assert ruser.run("spec", "--rootless").returncode == 0
    cfg = _set_args(ruser, ["true"])
    cfg["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 0, "size": 1}]
    with open(os.path.join(ruser.bundle, "config.json"), "w") as f:
        json.dump(cfg, f)
    r = ruser.run("run", cid)
    assert r.returncode != 0
    assert "newuidmap" in r.stderr or "uid_map" in r.stderr
    assert "Traceback" not in r.stderr
    assert os.listdir(os.path.join(ruser.xdg, "pyruntime")) == []
