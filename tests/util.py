"""Small helpers shared by the test harness (conftest.py) and tests: ``import util``.

Everything here reads /proc directly: the harness must keep working when the runtime under
test is broken.
"""
import contextlib
import hashlib
import os
import re
import stat
import subprocess
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_config(args=("/bin/true",), terminal=False):
    """The `runc spec` default config (runc 1.1), with the given args and terminal."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": bool(terminal),
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": list(caps), "effective": list(caps),
                             "permitted": list(caps), "ambient": list(caps)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "mount"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }



class CommandTimeout(subprocess.TimeoutExpired):
    def __str__(self):
        return "command %r timed out after %s s\n--- stdout:\n%s\n--- stderr:\n%s" % (
            self.cmd, self.timeout, self.stdout or "", self.stderr or "")



# the suite under the systemd cgroup driver (conftest: every runtime command gets
# --systemd-cgroup); set in the qemu guest booted with systemd as PID 1
SYSTEMD_DRIVER = os.environ.get("PYRT_SYSTEMD_CGROUP", "") == "1"


def cgroups_path(cid, sub=None):
    """A linux.cgroupsPath of the test's own for container `cid` in the driver the suite
    runs: cgroupfs "/<cid>[/<sub>]", systemd "pyrt_test.slice:pyrt:<cid>[-<sub>]" (the unit
    pyrt-<cid>[-<sub>].scope in pyrt_test.slice)."""
    if SYSTEMD_DRIVER:
        return "pyrt_test.slice:pyrt:" + cid + ("-" + sub if sub else "")
    return "/" + cid + ("/" + sub if sub else "")


_OCTAL = re.compile(r"\\([0-7]{3})")


def cgroup2_unified(mountpoint="/sys/fs/cgroup"):
    """True when `mountpoint` is a cgroup2 mount (a v2-only host, or the qemu guest)."""
    with open("/proc/self/mountinfo") as f:
        return any(l.split(" - ")[0].split()[4] == mountpoint
                   and l.split(" - ")[1].split()[0] == "cgroup2" for l in f)


def cgroup_v1_host(root="/sys/fs/cgroup"):
    """True on a cgroup v1 or hybrid host: v1 hierarchies mounted, `root` not a cgroup2 mount."""
    with open("/proc/self/mountinfo") as f:
        fs = [(l.split(" - ")[0].split()[4], l.split(" - ")[1].split()[0]) for l in f]
    return not any(mp == root and t == "cgroup2" for mp, t in fs) and \
        any(t == "cgroup" for _mp, t in fs)


def needs_root_on_cgroup_v1():
    """The skip mark (for `pytestmark`) of tests that need root on a cgroup v1/hybrid host."""
    import pytest
    return pytest.mark.skipif(os.geteuid() != 0 or not cgroup_v1_host(),
                              reason="needs root on a cgroup v1 / hybrid host")


def rmdir_gone(path):
    """Remove the empty dir `path`: True once it is gone, False while it cannot be (a cgroup
    whose last process is still leaving): a predicate for wait_for."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


@contextlib.contextmanager
def cgroup_with_a_process(path):
    """A cgroup of the test's own at `path` with a sleeping process in it (yielded): a bait
    that a runtime following a damaged record would kill or remove. Both go at the end."""
    os.mkdir(path)
    proc = subprocess.Popen(["sleep", "1000"], start_new_session=True)
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(proc.pid))
        yield proc
    finally:
        proc.kill()
        proc.wait()
        wait_for(lambda: rmdir_gone(path), 5)


class PidsRunner:
    """A pids cgroup of a test's own, pids.max 2 (the runtime and its init stub), that a
    runtime command is started in (preexec_fn=enter). A process cloned there the old way
    is the third task and refused (EAGAIN); one born in its own cgroups is never counted
    there. `dir` is made below `top`, which the test owns (v1: a dir of the pids
    hierarchy; v2: one whose parent enables +pids); close() removes both. The launcher's
    warm-up child must be off (PYRT_WARMUP=0) so that nothing else is counted."""

    def __init__(self, top, sub=None):
        self.top = top
        self.dir = os.path.join(top, sub) if sub else top
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "pids.max"), "w") as f:
            f.write("2")

    def enter(self):
        # in the child, before exec (subprocess's preexec_fn)
        with open(os.path.join(self.dir, "cgroup.procs"), "w") as f:
            f.write("0")

    def count(self, name="pids.current"):
        with open(os.path.join(self.dir, name)) as f:
            return f.read().strip()

    def refused(self):
        try:
            for line in self.count("pids.events").splitlines():
                k, v = line.split()
                if k == "max":
                    return int(v)
        except FileNotFoundError:
            pass
        return 0

    def close(self):
        for d in (self.dir, self.top):
            if os.path.isdir(d):
                os.rmdir(d)


def sleeper_in(make_bundle, cid):
    """A `sleep 1000` bundle whose cgroups are /<cid>/c1 from the hierarchies' roots:
    absolute, so not below a PidsRunner's (pids.max counts descendants)."""
    b = make_bundle(["sleep", "1000"])
    b.config["linux"]["cgroupsPath"] = "/%s/c1" % cid
    b.save()
    return b


def create_from(rt, b, cid, runner, env=None, preexec=None):
    """`create` started in the runner's cgroup (then preexec, in the child), logged with
    --debug: (the completed command, the log's text)."""
    log = b.path + ".log"

    def pre():
        runner.enter()
        if preexec:
            preexec()
    r = rt.run("--debug", "--log", log, "create", "--bundle", b.path, cid,
               env=dict({"PYRT_WARMUP": "0"}, **(env or {})), preexec_fn=pre)
    with open(log) if os.path.exists(log) else open(os.devnull) as f:
        return r, f.read()


def exec_born(rt, cid, runner, log, *argv):
    """`exec cid argv` started in the runner's cgroup, logged with --debug to `log`: the
    process must be born in the container's cgroups (the log says so, nothing says it was
    moved, nothing was counted in the runner's). Returns the exec's stdout."""
    r = rt.run("--debug", "--log", log, "exec", cid, *argv,
               env={"PYRT_WARMUP": "0"}, preexec_fn=runner.enter)
    with open(log) if os.path.exists(log) else open(os.devnull) as f:
        text = f.read()
    assert r.returncode == 0, r.stderr + text
    assert "born in its cgroups" in text and "moving it there" not in text, text
    assert runner.refused() == 0 and runner.count() == "0"
    return r.stdout


def json_lines(path):
    """The JSON objects of the complete lines of a file another process is writing (a
    line still being written, which the guest's file system shows in pieces, is not
    one yet)."""
    import json
    with open(path) as f:
        text = f.read()
    text = text[:text.rfind("\n") + 1]
    return [json.loads(l) for l in text.splitlines() if l.startswith("{")]


def unescape_mountinfo(field):
    # mountinfo escapes space, tab, newline and backslash as \ooo.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def mounts(pid="self"):
    """[(mount_id, mount_point, fstype, source)] from /proc/<pid>/mountinfo, in mount order."""
    out = []
    with open("/proc/%s/mountinfo" % pid) as f:
        for line in f:
            left, _, right = line.partition(" - ")
            lf = left.split()
            rf = right.split()
            out.append((int(lf[0]), unescape_mountinfo(lf[4]),
                        rf[0] if rf else "", unescape_mountinfo(rf[1]) if len(rf) > 1 else ""))
    return out


def mounts_under(path, pid="self"):
    """Mount points at or below `path` (deepest/latest last)."""
    path = os.path.abspath(path).rstrip("/")
    return [m for m in mounts(pid) if m[1] == path or m[1].startswith(path + "/")]


def proc_stat(pid):
    """(state, starttime) of a process from /proc/PID/stat, or None if it does not exist."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(b")") + 2:].split()
    return rest[0].decode(), int(rest[19])


def start_time(pid):
    st = proc_stat(pid)
    return st[1] if st else None


def pid_alive(pid, starttime=None):
    """True if `pid` is a live (non-zombie) process and, when given, has that start time."""
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X", "x"):
        return False
    return starttime is None or st[1] == starttime


def wait_for(pred, timeout=10.0, interval=0.02):
    """Poll `pred()` until it returns a truthy value (returned) or `timeout` passes (None)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def ns_pid(host_pid):
    """The pid of a process in its innermost pid namespace."""
    with open("/proc/%d/status" % host_pid) as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    raise AssertionError("no NSpid")


def children(pid):
    """Direct children of `pid` (needs CONFIG_PROC_CHILDREN, present on this kernel)."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out.extend(int(x) for x in f.read().split())
    except OSError:
        pass
    return out


def call(rt, *args, **kw):
    """rt.run with stdout/stderr going to files: a created or detached container inherits
    the runtime's stdio, so capture pipes would stay open (and the read block) until it exits."""
    with tempfile.TemporaryFile("w+") as o, tempfile.TemporaryFile("w+") as e:
        p = rt.run(*args, stdout=o, stderr=e, **kw)
        o.seek(0)
        e.seek(0)
        return subprocess.CompletedProcess(p.args, p.returncode, o.read(), e.read())


def call_ok(rt, *args, **kw):
    """call() that asserts the command succeeded, showing its output when it did not."""
    p = call(rt, *args, **kw)
    assert p.returncode == 0, "%s exited %d\n--- stdout:\n%s\n--- stderr:\n%s" % (
        " ".join(p.args), p.returncode, p.stdout, p.stderr)
    return p


def libpython():
    """The host's libpython (real path), or None when the interpreter is linked statically."""
    import sysconfig
    name = sysconfig.get_config_var("INSTSONAME") or ""
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    p = os.path.join(libdir, name)
    return os.path.realpath(p) if name and os.path.exists(p) else None


def digests(paths):
    """path -> sha256 of its content: host files compared before and after an attack."""
    out = {}
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        out[p] = h.hexdigest()
    return out


def snapshot(path):
    """Everything about a tree that a runtime could change: names, types, modes, owners,
    sizes, mtimes, contents and link targets."""
    out = {}
    st = os.lstat(path)
    out["."] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)
    for cur, dirs, files in os.walk(path, followlinks=False):
        for n in sorted(dirs + files):
            p = os.path.join(cur, n)
            st = os.lstat(p)
            item = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns)
            if stat.S_ISLNK(st.st_mode):
                item += (os.readlink(p),)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    item += (f.read(),)
            out[os.path.relpath(p, path)] = item
    return out


def link(rootfs, name, target):
    """Make `name` in an image a symlink to `target`, replacing what is there (an empty dir
    too) and making its parent dirs."""
    p = os.path.join(rootfs, name.lstrip("/"))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    if os.path.lexists(p):
        if os.path.isdir(p) and not os.path.islink(p):
            os.rmdir(p)
        else:
            os.unlink(p)
    os.symlink(target, p)
