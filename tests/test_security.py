"""The container-escape regression suite: one test per published runc escape (named after
the CVE), each through the real CLI. A test here fails if the escape class comes back.

Nothing here writes to a host file the escape would reach: the probes only open, stat or
read, and the host files the attacks target are hashed before and after.
"""
import errno
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

import util

PYTHON = os.path.realpath(sys.executable)

# Tests marked guest and guest_systemd also run in the cgroup v2 guest, with the cgroupfs
# driver (stage suite-v2) and under --systemd-cgroup (stage suite-v2-systemd): the ones where
# the cgroup version or driver is in play (fds, the cgroupfs mount, state files naming the
# cgroup). The probers, races and /proc/self/fd/N sweeps stay on this host (minutes each in
# the emulated guest); the isolation-v2 stage runs issue 12's guest subset.


LIBPYTHON = util.libpython()
RUNTIME_FILES = [f for f in (PYTHON, LIBPYTHON, shutil.which("runc")) if f]


def _sh(make_bundle, script, **top):
    return make_bundle(args=["/bin/sh", "-c", script], **top)


def _mounts_of(pid):
    """[(mount point, per-mount options, fstype)] of a process."""
    out = []
    with open("/proc/%d/mountinfo" % pid) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            lf = left.split()
            out.append((util.unescape_mountinfo(lf[4]), lf[5].split(","), right.split()[0]))
    return out


# --- CVE-2019-5736 / CVE-2016-9962: the process entering the container -------------------

# A prober that runs as pid 1 of a container and, in a loop, looks at every other process in
# its pid namespace the way an attacker would: /proc/N/exe (the host's runtime binary while
# the entering process has not exec'd yet), /proc/N/root (the host's root before the pivot),
# /proc/N/fd and /proc/N/environ. It only reads links and stats: it never opens for writing.
PROBER = r"""
i=0
while :; do
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = 1 ] && continue
    l=$(readlink $d/exe 2>/dev/null)
    case "$l" in
      /bin/busybox|/bin/*|"") ;;
      *) echo "exe $p $l" >> /out/hits ;;
    esac
    [ -e "$d/root$LIBPY" ] && echo "root $p" >> /out/hits
    [ -e "$d/root$PYBIN" ] && echo "root $p" >> /out/hits
    if [ -n "$l" ] && [ "$l" != /bin/busybox ]; then
      for f in $d/fd/*; do [ -e "$f" ] && echo "fd $p $f" >> /out/hits; break; done
      [ -r $d/environ ] && cat $d/environ >/dev/null 2>&1 && echo "environ $p" >> /out/hits
    fi
    [ -e /out/seen.$p ] || echo "$l" > /out/seen.$p
  done
  i=$((i+1)); echo $i > /out/rounds.tmp; mv /out/rounds.tmp /out/rounds
done
"""


class Prober:
    def __init__(self, rt, make_bundle, cid, tmp):
        self.out = os.path.join(tmp, "probe-out")
        os.mkdir(self.out)
        self.b = _sh(make_bundle, PROBER)
        cfg = self.b.config
        cfg["process"]["env"] += ["LIBPY=%s" % (LIBPYTHON or "/nonexistent"), "PYBIN=%s" % PYTHON]
        cfg["mounts"].append({"destination": "/out", "type": "bind", "source": self.out,
                              "options": ["rbind", "rw"]})
        self.b.save()
        self.rt = rt
        self.cid = cid
        rt.ok("run", "-d", "-b", self.b.path, cid)
        self.pid = rt.state(cid)["pid"]

    def rounds(self):
        try:
            with open(os.path.join(self.out, "rounds")) as f:
                return int(f.read().strip() or 0)
        except (OSError, ValueError):
            return 0

    def wait_rounds(self, n):
        start = self.rounds()
        assert util.wait_for(lambda: self.rounds() >= start + n, 60), "the prober stalled"

    def hits(self):
        try:
            with open(os.path.join(self.out, "hits")) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def seen(self, ns_pid):
        return os.path.exists(os.path.join(self.out, "seen.%d" % ns_pid))


def test_cve_2019_5736_runtime_binary_not_reachable_in_created_container(
        rt, make_bundle, cid, pyrt_tmp):
    """A created (not started) container whose init shares another container's pid
    namespace is still the runtime's process (the host python + libpython for pyruntime).
    The other container must not reach its /proc/<pid>/exe, /root, /fd or /environ."""
    before = util.digests(RUNTIME_FILES)
    a = Prober(rt, make_bundle, cid, pyrt_tmp)
    b = make_bundle(args=["/bin/true"])
    b.config["linux"]["namespaces"] = [
        {"type": "pid", "path": "/proc/%d/ns/pid" % a.pid}, {"type": "mount"},
        {"type": "ipc"}, {"type": "uts"}, {"type": "network"}]
    b.save()
    bid = cid + "-b"
    rt.ok("create", "-b", b.path, bid)
    try:
        bpid = rt.state(bid)["pid"]
        ns_pid = util.ns_pid(bpid)
        assert util.wait_for(lambda: a.seen(ns_pid), 30), "the prober never saw the init"
        a.wait_rounds(3)
        assert a.hits() == []
    finally:
        rt.run("delete", "-f", bid)
    assert util.digests(RUNTIME_FILES) == before


def test_cve_2016_9962_exec_process_not_accessible_before_exec(rt, make_bundle, cid, pyrt_tmp):
    """Processes entering a running container with `exec` are the runtime until they exec:
    the container must not see their exe/fds/environ (ptrace-level access) meanwhile. Racy
    by nature: many execs while the container probes; a dumpable entering process is
    caught in practice."""
    before = util.digests(RUNTIME_FILES)
    a = Prober(rt, make_bundle, cid, pyrt_tmp)
    a.wait_rounds(1)
    for _ in range(25):
        r = rt.run("exec", cid, "/bin/true")
        assert r.returncode == 0, r.stderr
    a.wait_rounds(2)
    assert a.hits() == []
    assert util.digests(RUNTIME_FILES) == before


def test_cve_2019_5736_exec_cannot_overwrite_runtime(rt, make_bundle, cid, pyrt_tmp):
    """The classic exploit shape: the container replaces its own binary with
    `#!/proc/self/exe` so that the entering process re-executes "itself"; then tries to
    open the runtime's binary for writing. Here the shebang trick only re-runs busybox
    (the entering process never exec's the runtime), and the host files stay unchanged."""
    before = util.digests(RUNTIME_FILES)
    b = _sh(make_bundle, "sleep 300")
    b.config["root"]["readonly"] = False
    b.save()
    rt.ok("run", "-d", "-b", b.path, cid)
    # the "malicious image": a program that is a script run by /proc/self/exe
    with open(os.path.join(b.rootfs, "evil"), "w") as f:
        f.write("#!/proc/self/exe\n")
    os.chmod(os.path.join(b.rootfs, "evil"), 0o755)
    r = rt.run("exec", cid, "/evil")
    # whatever busybox makes of it: no host file was opened for writing
    script = ('for d in /proc/[0-9]*; do l=$(readlink $d/exe 2>/dev/null); '
              'case "$l" in /bin/*|"") ;; *) echo "$d $l";; esac; done')
    r = rt.run("exec", cid, "/bin/sh", "-c", script)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""
    assert util.digests(RUNTIME_FILES) == before


# --- CVE-2024-21626: leaked fds as the working directory ---------------------------------

def test_cve_2024_21626_cwd_proc_self_fd(rt, make_bundle, cid):
    """process.cwd /proc/self/fd/N never yields a working directory outside the container."""
    b = _sh(make_bundle, "pwd -P; readlink /proc/self/cwd")
    for n in range(3, 65):
        b.config["process"]["cwd"] = "/proc/self/fd/%d" % n
        b.save()
        c = "%s-%d" % (cid, n)
        r = rt.run("run", "-b", b.path, c)
        if r.returncode == 0:
            # the only acceptable success is a directory of the container itself
            lines = r.stdout.split()
            assert lines and all(x.startswith("/") for x in lines), (n, r.stdout)
            assert lines[0] == lines[-1], (n, r.stdout)
        else:
            assert r.stderr.strip(), n
        rt.run("delete", "-f", c)


def test_cve_2024_21626_exec_cwd_proc_self_fd(rt, make_bundle, cid):
    b = _sh(make_bundle, "sleep 300")
    rt.ok("run", "-d", "-b", b.path, cid)
    for n in range(3, 65):
        r = rt.run("exec", "--cwd", "/proc/self/fd/%d" % n, cid, "/bin/sh", "-c",
                   "pwd -P; readlink /proc/self/cwd")
        if r.returncode == 0:
            lines = r.stdout.split()
            assert lines and all(x.startswith("/") for x in lines), (n, r.stdout)
            assert lines[0] == lines[-1], (n, r.stdout)


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_cve_2024_21626_no_host_fd_in_container(rt, make_bundle, cid):
    """Only stdio reaches the container process: no fd of the runtime (state dir, cgroup
    dirs, sockets, the exec fifo) survives into it."""
    b = make_bundle(args=["/bin/ls", "-l", "/proc/self/fd"])
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode == 0, r.stderr
    fds = {}
    for line in r.stdout.splitlines():
        if " -> " in line:
            left, _, target = line.partition(" -> ")
            fds[int(left.split()[-1])] = target
    assert {0, 1, 2} <= set(fds), r.stdout
    # beyond stdio only the directory ls is listing
    extra = {n: t for n, t in fds.items() if n > 2 and not (t.startswith("/proc/") and t.endswith("/fd"))}
    assert extra == {}, fds


# --- CVE-2021-30465 / CVE-2024-45310: mount destinations swapped for symlinks ------------

SWAPPER = r"""
cd /victim
mkdir -p race.dir/sub
ln -s "$ESCAPE" race.lnk
i=0
while :; do
  mv race race.tmp 2>/dev/null
  mv race.dir race 2>/dev/null; mv race.tmp race.lnk 2>/dev/null
  mv race race.tmp 2>/dev/null
  mv race.lnk race 2>/dev/null; mv race.tmp race.dir 2>/dev/null
  i=$((i+1)); [ $((i % 50)) = 0 ] && echo $i > /victim/.swaps
done
"""


def test_cve_2021_30465_and_cve_2024_45310_racing_symlink_mount_target(
        rt, make_bundle, cid, pyrt_tmp):
    """A container keeps swapping a directory of another container's rootfs with a symlink
    to a host directory while that container is created with mounts (and created mount
    points) below it. Nothing may land in the host directory."""
    escape = os.path.join(pyrt_tmp, "host-target")
    os.mkdir(escape)
    victim = make_bundle(args=["/bin/true"])
    victim.config["root"]["readonly"] = False
    src = os.path.join(pyrt_tmp, "bind-src")
    os.mkdir(src)
    with open(os.path.join(src, "marker"), "w") as f:
        f.write("bind source\n")
    victim.config["mounts"] += [
        {"destination": "/race/sub/tmpfs", "type": "tmpfs", "source": "tmpfs",
         "options": ["size=1m"]},
        {"destination": "/race/sub/bind", "type": "bind", "source": src,
         "options": ["rbind", "ro"]},
        {"destination": "/race/newdir/deeper", "type": "tmpfs", "source": "tmpfs"},
    ]
    victim.save()

    attacker = _sh(make_bundle, SWAPPER)
    attacker.config["process"]["env"].append("ESCAPE=" + escape)
    attacker.config["mounts"].append({"destination": "/victim", "type": "bind",
                                      "source": victim.rootfs, "options": ["rbind", "rw"]})
    attacker.save()
    rt.ok("run", "-d", "-b", attacker.path, cid)
    assert util.wait_for(lambda: os.path.exists(os.path.join(victim.rootfs, ".swaps")), 30)

    failures = 0
    for i in range(40):
        r = rt.run("run", "-b", victim.path, "%s-v%d" % (cid, i))
        failures += r.returncode != 0
        assert os.listdir(escape) == [], "iteration %d put %s on the host" % (i, os.listdir(escape))
        assert util.mounts_under(escape) == []
    rt.ok("delete", "-f", cid)
    assert os.listdir(escape) == []
    with open(os.path.join(src, "marker")) as f:
        assert f.read() == "bind source\n"


# --- CVE-2019-16884 / CVE-2019-19921 / CVE-2023-27561 / CVE-2023-28642: fake /proc ------

@pytest.mark.parametrize("target", ["/fakeproc", "/tmp/../fakeproc", "fakeproc"])
def test_cve_2023_28642_proc_symlink_refused(rt, make_bundle, cid, target):
    """A rootfs whose /proc is a symlink (to a directory the image controls) is refused:
    proc must be mounted on an ordinary directory (runc: 'must be mounted on ordinary
    directory'), else the runtime's /proc writes could go to files the image prepared."""
    b = _sh(make_bundle, "echo started")
    os.rmdir(os.path.join(b.rootfs, "proc"))
    os.mkdir(os.path.join(b.rootfs, "fakeproc"))
    os.symlink(target, os.path.join(b.rootfs, "proc"))
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode != 0, r.stdout
    assert "started" not in r.stdout
    assert "proc" in r.stderr


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_cve_2019_19921_proc_must_be_procfs(rt, make_bundle, cid, pyrt_tmp):
    """A config that puts another filesystem over /proc after the proc mount (a volume
    the image controls) makes /proc not procfs: refused, since the runtime writes to
    /proc/self/... and /proc/sys/... after mounting."""
    fake = os.path.join(pyrt_tmp, "fake-proc")
    os.makedirs(os.path.join(fake, "self"))
    with open(os.path.join(fake, "self", "oom_score_adj"), "w") as f:
        f.write("0\n")
    b = _sh(make_bundle, "echo started")
    b.config["process"]["oomScoreAdj"] = 100
    b.config["mounts"].insert(1, {"destination": "/proc", "type": "bind", "source": fake,
                                  "options": ["rbind"]})
    b.save()
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode != 0, r.stdout
    assert "started" not in r.stdout
    with open(os.path.join(fake, "self", "oom_score_adj")) as f:
        assert f.read() == "0\n"


def test_cve_2019_16884_proc_destination_is_symlink_in_rootfs(rt, make_bundle, cid, pyrt_tmp):
    """/proc made a symlink pointing at a directory of a host volume: the proc mount must
    not land on the host."""
    vol = os.path.join(pyrt_tmp, "vol")
    os.mkdir(vol)
    b = _sh(make_bundle, "echo started")
    os.rmdir(os.path.join(b.rootfs, "proc"))
    os.symlink(vol, os.path.join(b.rootfs, "proc"))
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode != 0
    assert os.listdir(vol) == []
    assert util.mounts_under(vol) == []


# --- CVE-2025-31133 / CVE-2025-52565 / CVE-2025-52881 / CVE-2026-41579 -----------------

HOST_PROC_FILES = [p for p in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
                                "/proc/sys/kernel/shmmax") if os.path.exists(p)]


def _host_proc_state():
    out = {}
    for p in HOST_PROC_FILES:
        with open(p) as f:
            out[p] = f.read()
    if os.path.exists("/proc/sysrq-trigger"):
        out["sysrq"] = os.stat("/proc/sysrq-trigger").st_mode
    return out


def _no_dev_mount(b):
    b.config["mounts"] = [m for m in b.config["mounts"]
                          if not m["destination"].startswith("/dev")]


@pytest.mark.parametrize("link", ["/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger"])
def test_cve_2025_31133_dev_null_symlink_for_masked_paths(rt, make_bundle, cid, link):
    """maskedPaths bind /dev/null over files: an image whose /dev/null is a symlink to a
    sensitive procfs file must not get that file bound (writable) over a masked path."""
    before = _host_proc_state()
    b = _sh(make_bundle, "head -c 200 /proc/kcore 2>&1; head -c 200 /proc/timer_list 2>&1; "
            "echo; echo done")
    _no_dev_mount(b)
    b.config["root"]["readonly"] = False
    b.save()
    dev = os.path.join(b.rootfs, "dev")
    os.makedirs(dev, exist_ok=True)
    os.symlink(link, os.path.join(dev, "null"))
    r = rt.run("run", "-b", b.path, cid)
    if r.returncode == 0:
        # harmless only if the masked files are not the symlink's target
        assert before["/proc/sys/kernel/core_pattern"].strip() not in r.stdout
    else:
        assert "/dev/null" in r.stderr
    assert _host_proc_state() == before


def test_cve_2025_52565_dev_console_symlink(rt, make_bundle, cid, pyrt_tmp):
    """With a terminal, the console is bound over /dev/console: an image whose
    /dev/console is a symlink (to a procfs file) is refused or the bind stays inside."""
    before = _host_proc_state()
    b = _sh(make_bundle, "readlink /dev/console; cat /proc/sys/kernel/core_pattern; echo done",
            terminal=True)
    _no_dev_mount(b)
    b.config["mounts"].append({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                               "options": ["newinstance", "ptmxmode=0666", "mode=0620"]})
    b.save()
    dev = os.path.join(b.rootfs, "dev")
    os.makedirs(dev, exist_ok=True)
    os.symlink("/proc/sys/kernel/core_pattern", os.path.join(dev, "console"))
    os.mknod(os.path.join(dev, "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    sock_path = os.path.join(pyrt_tmp, "console.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(1)
    srv.settimeout(30)
    got = []

    def serve():
        try:
            conn, _ = srv.accept()
            _msg, fds, _f, _a = socket.recv_fds(conn, 4096, 1)
            got.extend(fds)
            conn.close()
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = rt.run("create", "--console-socket", sock_path, "-b", b.path, cid)
        t.join(5)
        if r.returncode == 0:
            # the bind went on the symlink's in-root target at most: the host file is intact
            st = rt.state(cid)
            with open("/proc/%d/root/proc/sys/kernel/core_pattern" % st["pid"]) as f:
                assert f.read() == before["/proc/sys/kernel/core_pattern"]
        else:
            assert "console" in r.stderr
    finally:
        srv.close()
        for fd in got:
            os.close(fd)
        rt.run("delete", "-f", cid)
    assert _host_proc_state() == before


def test_cve_2025_52881_dev_symlink(rt, make_bundle, cid, pyrt_tmp):
    """/dev a symlink to a host directory: the /dev tmpfs, device nodes and /dev symlinks
    must not land on the host."""
    host_dir = os.path.join(pyrt_tmp, "host-dev")
    os.mkdir(host_dir)
    before = _host_proc_state()
    b = _sh(make_bundle, "ls /dev; echo done")
    shutil.rmtree(os.path.join(b.rootfs, "dev"))
    os.symlink(host_dir, os.path.join(b.rootfs, "dev"))
    r = rt.run("run", "-b", b.path, cid)
    assert os.listdir(host_dir) == []
    assert util.mounts_under(host_dir) == []
    assert _host_proc_state() == before
    if r.returncode != 0:
        assert "dev" in r.stderr


def test_cve_2026_41579_sysctl_write_stays_in_container_procfs(rt, make_bundle, cid, pyrt_tmp):
    """The runtime's own writes to /proc (sysctl, oom_score_adj) go to the container's
    procfs: a volume mounted over /proc/sys by the config cannot redirect them to host
    files, and the host's /proc/sys stays unchanged."""
    before = _host_proc_state()
    fake = os.path.join(pyrt_tmp, "fake-sys")
    os.makedirs(os.path.join(fake, "kernel"))
    with open(os.path.join(fake, "kernel", "shmmax"), "w") as f:
        f.write("0\n")
    b = _sh(make_bundle, "cat /proc/sys/kernel/shmmax")
    b.config["mounts"].append({"destination": "/proc/sys", "type": "bind", "source": fake,
                               "options": ["rbind", "rw"]})
    b.config["linux"]["sysctl"] = {"kernel.shmmax": "12345678"}
    b.config["linux"]["readonlyPaths"] = []
    b.save()
    r = rt.run("run", "-b", b.path, cid)
    with open(os.path.join(fake, "kernel", "shmmax")) as f:
        assert f.read() == "0\n", "the sysctl write went to a file that is not procfs"
    assert _host_proc_state() == before
    if r.returncode != 0:
        assert "sysctl" in r.stderr or "proc" in r.stderr


# --- CVE-2023-25809: cgroupfs read-only without a cgroup namespace ------------------------

@pytest.mark.guest
@pytest.mark.guest_systemd
@pytest.mark.parametrize("userns", [False, True])
def test_cve_2023_25809_sys_fs_cgroup_read_only(rt, make_bundle, cid, userns):
    b = _sh(make_bundle, "cat /proc/self/mountinfo; touch /sys/fs/cgroup/pyrt-x 2>&1; "
            "for d in /sys/fs/cgroup/*/; do mkdir ${d}pyrt-escape 2>/dev/null && echo MKDIR $d; done; "
            "echo end")
    if userns:
        b.config["linux"]["namespaces"].append({"type": "user"})
        b.config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        b.config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        # without a network namespace sysfs cannot be mounted: the host's /sys is bound
        b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                           if n["type"] != "network"]
        for root, dirs, files in os.walk(b.rootfs):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), 100000, 100000)
        os.chown(b.rootfs, 100000, 100000)
    b.save()
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode == 0, r.stderr
    assert "MKDIR" not in r.stdout
    cg = []
    for line in r.stdout.splitlines():
        if " - " not in line:
            continue
        left, _, right = line.partition(" - ")
        lf = left.split()
        if lf[4] == "/sys/fs/cgroup" or lf[4].startswith("/sys/fs/cgroup/"):
            cg.append((lf[4], lf[5]))
    assert cg, r.stdout
    for mp, opts in cg:
        assert "ro" in opts.split(","), (mp, opts)


# --- CVE-2022-29162: inheritable capabilities ---------------------------------------------

def _cap(out, name):
    for line in out.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1], 16)
    raise AssertionError(out)


def test_cve_2022_29162_create_inheritable_empty(rt, make_bundle, cid):
    b = _sh(make_bundle, "grep Cap /proc/self/status")
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode == 0, r.stderr
    assert _cap(r.stdout, "CapInh") == 0
    assert _cap(r.stdout, "CapEff") != 0


def test_cve_2022_29162_exec_cap_inheritable_empty(rt, make_bundle, cid):
    b = _sh(make_bundle, "sleep 300")
    rt.ok("run", "-d", "-b", b.path, cid)
    r = rt.run("exec", "--cap", "CAP_SYS_ADMIN", cid, "/bin/grep", "Cap", "/proc/self/status")
    assert r.returncode == 0, r.stderr
    assert _cap(r.stdout, "CapInh") == 0
    assert _cap(r.stdout, "CapBnd") & (1 << 21)   # CAP_SYS_ADMIN was added to bounding


# --- ids, state root, state files -----------------------------------------------------------

@pytest.mark.parametrize("bad", ["..", ".", "../x", "a/b", "/abs", "a/../../b", "x\n", ""])
def test_container_id_with_path_elements_refused(rt, make_bundle, bad, pyrt_tmp):
    b = make_bundle(rootfs=False)
    before = sorted(os.listdir(os.path.dirname(rt.root)))
    r = rt.run("create", "-b", b.path, bad)
    assert r.returncode != 0
    # nothing appeared next to or above the state root
    assert os.listdir(rt.root) == []
    assert sorted(os.listdir(os.path.dirname(rt.root))) == before


def test_container_id_with_nul_refused():
    from pyruntime.api import Runtime
    from pyruntime.errors import RuntimeErr
    with pytest.raises(RuntimeErr):
        Runtime("/nonexistent-pyrt-root").create("a\0b", "/nonexistent")
    with pytest.raises(RuntimeErr):
        Runtime("/nonexistent-pyrt-root").state("../etc")


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_state_root_symlink_refused(rt, make_bundle, cid, pyrt_tmp):
    real = os.path.join(pyrt_tmp, "real-root")
    os.mkdir(real, 0o711)
    link = os.path.join(pyrt_tmp, "link-root")
    os.symlink(real, link)
    b = make_bundle()
    p = subprocess.run(rt.cmd + ["--root", link, "create", "-b", b.path, cid],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    try:
        assert p.returncode != 0
        assert "symlink" in p.stderr
        assert os.listdir(real) == []
    finally:
        subprocess.run(rt.cmd + ["--root", real, "delete", "-f", cid], capture_output=True)


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_state_file_tampered_by_other_user_refused(rt, make_bundle, cid):
    """A state.json that is not ours (written by another user who could write the dir)
    is not trusted: it names the pid that kill/delete would signal."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's own state format")
    b = _sh(make_bundle, "sleep 300")
    rt.ok("run", "-d", "-b", b.path, cid)
    state = os.path.join(rt.root, cid, "state.json")
    with open(state) as f:
        data = json.load(f)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        data["pid"] = bystander.pid
        data["start_time"] = util.start_time(bystander.pid)
        with open(state, "w") as f:
            json.dump(data, f)
        os.chown(state, 65534, 65534)
        for args in (("state", cid), ("kill", cid, "KILL"), ("delete", "-f", cid)):
            r = rt.run(*args)
            assert r.returncode != 0, args
            assert "owned" in r.stderr or "not trusted" in r.stderr, r.stderr
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
        os.chown(state, 0, 0)


# --- AppArmor / SELinux: the truth about the host, runc 1.1's behaviour without them -------

def _apparmor_on():
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            return f.read().startswith("Y") and os.path.isdir("/sys/kernel/security/apparmor")
    except OSError:
        return False


def _selinux_on():
    return os.path.exists("/sys/fs/selinux/enforce")


def test_features_lsm_truth(rt):
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1 reports what it was built with")
    doc = json.loads(rt.ok("features").stdout)
    # applied through /proc/self/attr when the host has the LSM; never claimed otherwise
    assert doc["linux"]["apparmor"]["enabled"] is False or _apparmor_on()
    assert doc["linux"]["selinux"]["enabled"] is False or _selinux_on()


@pytest.mark.skipif(_apparmor_on(), reason="the host has AppArmor: the profile would apply")
def test_apparmor_profile_without_apparmor_fails_like_runc(rt, make_bundle, cid):
    b = _sh(make_bundle, "echo started")
    b.config["process"]["apparmorProfile"] = "docker-default"
    b.save()
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode != 0
    assert "started" not in r.stdout
    assert "unable to apply apparmor profile" in r.stderr
    assert "invalid argument" in r.stderr


@pytest.mark.skipif(_selinux_on(), reason="the host has SELinux")
def test_selinux_label_without_selinux_refused_like_runc(rt, make_bundle, cid):
    b = _sh(make_bundle, "echo started")
    b.config["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0"
    b.save()
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode != 0
    assert "selinux label is specified in config, but selinux is disabled or not supported" \
        in r.stderr
    assert rt.run("state", cid).returncode != 0


@pytest.mark.skipif(_selinux_on(), reason="the host has SELinux")
def test_mount_label_without_selinux_fails_like_runc(rt, make_bundle, cid):
    """runc passes linux.mountLabel as context= to the filesystems it mounts: without
    SELinux the kernel refuses the option."""
    b = _sh(make_bundle, "echo started")
    b.config["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0"
    b.save()
    r = rt.run("run", "-b", b.path, cid)
    assert r.returncode != 0
    assert "invalid argument" in r.stderr
