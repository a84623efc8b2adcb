"""Test harness: real containers through the real CLI.

The test fixture API (tests/conftest.py; other test modules rely on exactly this)
-------------------------------------------------------------------------------
- Tests run as root against real containers through the real CLI. The runtime under test is
  the command in env `PYRT_RUNTIME` (default: `pyruntime`, i.e. the console script on PATH);
  `PYRT_RUNTIME=runc` runs the same tests against runc, which is how tests of
  runc-compatible behaviour are validated before pyruntime exists.
- `rt` fixture: object with `.cmd` (argv prefix list, e.g. ["pyruntime"]), `.name`
  ("pyruntime" or "runc"), `.root` (a fresh temp state root dir, passed as `--root`),
  `.run(*args, input=None, timeout=60, env=None) -> subprocess.CompletedProcess` (text mode,
  stdout/stderr captured, never raises on non-zero), `.ok(*args, **kw)` (same but asserts
  returncode 0 and returns the CompletedProcess), `.state(cid) -> dict` (parsed `state`
  JSON), and `.is_pyruntime`.
- `make_bundle` fixture: factory
  `make_bundle(args=["/bin/true"], terminal=False, **top_level_overrides) -> Bundle`; Bundle
  has `.path` (bundle dir, str), `.rootfs` (str), `.config` (dict, a runc-`spec`-like default
  with process.terminal false and the given args) and `.save()` to rewrite config.json after
  editing `.config`. The rootfs is a busybox-static tree (/bin/busybox + applet symlinks in
  /bin, /etc/passwd, /etc/group, empty /proc /sys /dev /tmp /root), copied from a cached
  template built once per session under a temp dir.
- `cid` fixture: a unique container id `pyrt-<short test name>-<6 random hex>`.
- An autouse leak check after every test: it force-deletes whatever containers remain in
  `rt.root` (`delete --force`), then asserts that no mount under the test's temp dirs remains
  in /proc/self/mountinfo, no container process (any pid recorded by the test's containers,
  or any process whose cwd/root is under the test's temp dirs) is alive, the state root has
  no container dirs, and no cgroup directory whose name contains the test's container ids
  exists under /sys/fs/cgroup. A leak fails the test.
- `PYRT_SYSTEMD_CGROUP=1` runs every runtime command with `--systemd-cgroup` (the systemd
  driver: the qemu guest booted with systemd, run-tests.sh stage `suite-v2-systemd`); the
  default config's empty cgroupsPath then means a `runc-<id>.scope` in system.slice, and
  `rt.systemd` is True (tests that set cgroupsPath use `util.cgroups_path`).

Details and extensions (beyond the API above)
---------------------------------------------
- `rt.run`: `env` is merged over os.environ; stdin is /dev/null unless `input` is given;
  extra keyword arguments go to subprocess.Popen (e.g. `stdout=open(path, "w")`).
  stdout/stderr are captured through anonymous files, not pipes, so `create` and `run -d`
  (whose container inherits the runtime's stdio) return as soon as the runtime exits;
  what a created container prints after `start` is not in any result: pass your own
  `stdout=` file to `create` to see it. Global flags go before the command:
  `rt.run("--log", path, "create", ...)`. A command that outlives `timeout` is killed and
  raises `CommandTimeout` (a subprocess.TimeoutExpired with the partial output); the leak
  check still cleans up its container.
- `Bundle.config_path`; `make_bundle(..., rootfs=False)` skips the rootfs copy.
- `pyrt_tmp` fixture: a per-test temp dir (str) inside the leak-checked area (use it rather
  than tmp_path for anything a container mounts or runs from).
- `pyrt_ctx` fixture: the per-test context; `pyrt_ctx.leak_check()` runs the check now and
  returns the list of problems found (and cleaned up).
- `util.default_config(args, terminal)` builds the default config and `util.CommandTimeout`
  is the timeout exception. Prefer `from util import default_config`; `from conftest import
  default_config` works too (this conftest keeps the `conftest` module name against
  tests/engines/conftest.py, which pytest would otherwise let shadow it).
- All temp dirs of a session live under one /tmp/pyrt-tests-XXXXXXXX dir, removed at the end.
- The hypothesis default profile has no example database (nothing written into the repo)
  and no deadline (container operations are slow and timing must not fail tests).
"""
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

import util
from util import CommandTimeout, default_config  # noqa: F401 - re-exported

try:  # the hypothesis pytest plugin is loaded anyway when installed
    from hypothesis import settings as _hsettings
    _hsettings.register_profile("pyrt", database=None, deadline=None)
    _hsettings.load_profile("pyrt")
except ImportError:
    pass

_THIS = sys.modules[__name__]


def pytest_plugin_registered(plugin, manager):
    # pytest imports every conftest.py as module "conftest", so tests/engines/conftest.py
    # replaces this one in sys.modules and `from conftest import default_config` in a test
    # collected later would find the wrong file. Keep the name pointing here.
    if __name__ == "conftest" and sys.modules.get("conftest") is not _THIS:
        sys.modules["conftest"] = _THIS


CGROUP_ROOT = "/sys/fs/cgroup"
GRACE = 2.0            # seconds a force-deleted container's processes get to disappear
CLEANUP_TIMEOUT = 30   # timeout of the runtime commands the leak check runs


def runtime_cmd():
    """(argv prefix, name) of the runtime under test."""
    env = os.environ.get("PYRT_RUNTIME", "").strip()
    if env:
        cmd = shlex.split(env)
    else:
        # The console script of the venv running the tests is the code being tested;
        # fall back to PATH (the /usr/local/bin symlink setup.sh makes).
        sib = os.path.join(os.path.dirname(sys.executable), "pyruntime")
        cmd = [sib] if os.access(sib, os.X_OK) else ["pyruntime"]
    base = os.path.basename(cmd[0])
    if base.startswith("python") and "-m" in cmd[:-1]:
        base = cmd[cmd.index("-m") + 1]
    return cmd, base


def _short(name, n=16):
    if name.startswith("test_"):
        name = name[5:]
    name = name.split("[", 1)[0]
    out = "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)[:n].strip("._-")
    return out or "t"


# ---------------------------------------------------------------------------------------
# session


class _Session:
    def __init__(self):
        self.base = tempfile.mkdtemp(prefix="pyrt-tests-", dir="/tmp")
        os.chmod(self.base, 0o755)  # containers running as non-root must reach their rootfs
        self.cmd, self.name = runtime_cmd()
        if util.SYSTEMD_DRIVER:
            self.cmd.append("--systemd-cgroup")  # a global flag: valid before any command
        self._template = None
        self.leaks = 0
        self.status = None

    def template(self):
        if self._template is None:
            import importlib.util
            spec = importlib.util.spec_from_file_location(
                "mkrootfs", os.path.join(util.REPO, "tools", "mkrootfs.py"))
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
            self._template = mod.build(os.path.join(self.base, "template-rootfs"))
        return self._template

    def close(self):
        left = util.mounts_under(self.base)
        for m in reversed(left):
            _umount(m[1])
        if util.mounts_under(self.base):
            self.status = "KEPT (mounts remain under it)"
            return
        shutil.rmtree(self.base, ignore_errors=True)
        self.status = "kept (could not remove)" if os.path.exists(self.base) else "removed"


_SESSION = None


@pytest.fixture(scope="session")
def _pyrt_session():
    global _SESSION
    _SESSION = _Session()
    yield _SESSION
    _SESSION.close()


def pytest_terminal_summary(terminalreporter):
    s = _SESSION
    if s is not None:
        terminalreporter.write_line(
            "pyrt: runtime under test: %s; leaks: %d; temp base %s %s"
            % (" ".join(s.cmd), s.leaks, s.base, s.status or ""))


# ---------------------------------------------------------------------------------------
# per test


class Runtime:
    def __init__(self, ctx, cmd, name):
        self.ctx = ctx
        self.cmd = list(cmd)
        self.name = name
        self.root = ctx.mkdir("root")
        self.systemd = "--systemd-cgroup" in self.cmd

    @property
    def is_pyruntime(self):
        return self.name == "pyruntime"

    def __repr__(self):
        return "<Runtime %s root=%s>" % (" ".join(self.cmd), self.root)

    def run(self, *args, input=None, timeout=60, env=None, **kw):
        argv = self.cmd + ["--root", self.root] + [str(a) for a in args]
        if env is not None:
            env = dict(os.environ, **env)
        kw.setdefault("stdin", subprocess.PIPE if input is not None else subprocess.DEVNULL)
        # Output goes to anonymous files, not pipes: a created or detached container
        # inherits the runtime's stdio, and a pipe would then only reach EOF when the
        # container exits. Whatever the container writes after the command returns stays
        # out of the result.
        files = {}
        for k in ("stdout", "stderr"):
            if k not in kw:
                files[k] = kw[k] = tempfile.TemporaryFile(dir=self.ctx.session.base)
        # Own session: on timeout the whole runtime process group goes, not just its leader.
        kw.setdefault("start_new_session", True)
        try:
            proc = subprocess.Popen(argv, env=env, **kw)
            timed_out = False
            try:
                try:
                    piped = proc.communicate(
                        input.encode() if isinstance(input, str) else input, timeout=timeout)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except OSError:
                        proc.kill()
                    proc.wait()
            finally:
                self.ctx.scan_runtime(self, args)
            out = {}
            for i, k in enumerate(("stdout", "stderr")):
                if k in files:
                    files[k].seek(0)
                    out[k] = files[k].read().decode(errors="replace")
                elif not timed_out and piped[i] is not None:  # the caller asked for a PIPE
                    out[k] = piped[i].decode(errors="replace")
        finally:
            for f in files.values():
                f.close()
        if timed_out:
            raise CommandTimeout(argv, timeout, out.get("stdout"), out.get("stderr"))
        return subprocess.CompletedProcess(argv, proc.returncode, out.get("stdout"),
                                           out.get("stderr"))

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.returncode == 0, "%s exited %d\n--- stdout:\n%s\n--- stderr:\n%s" % (
            " ".join(r.args), r.returncode, r.stdout, r.stderr)
        return r

    def state(self, cid):
        return json.loads(self.ok("state", cid).stdout)

    def container_ids(self):
        try:
            return sorted(e.name for e in os.scandir(self.root) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []


class Bundle:
    def __init__(self, path, config):
        self.path = path
        self.rootfs = os.path.join(path, "rootfs")
        self.config = config
        self.config_path = os.path.join(path, "config.json")

    def save(self):
        with open(self.config_path, "w") as f:
            json.dump(self.config, f, indent=2)

    def __repr__(self):
        return "<Bundle %s>" % self.path


class _Ctx:
    """Everything one test created; the leak check works from this."""

    def __init__(self, session, short):
        self.session = session
        self.short = short
        self._dir = None
        self.ids = set()         # container ids: cid fixture + seen in state roots
        self.pids = {}           # pid -> start time (None if unknown)
        self.rootfs_keys = set()  # (st_dev, st_ino) of the test's rootfs dirs
        self.runtimes = []

    @property
    def dir(self):
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix=self.short + "-", dir=self.session.base)
            os.chmod(self._dir, 0o755)
        return self._dir

    @property
    def used(self):
        return self._dir is not None or bool(self.ids)

    def mkdir(self, name):
        p = tempfile.mkdtemp(prefix=name + "-", dir=self.dir)
        os.chmod(p, 0o755)
        return p

    def add_rootfs(self, path):
        st = os.stat(path)
        self.rootfs_keys.add((st.st_dev, st.st_ino))

    def record_pid(self, pid):
        try:
            pid = int(pid)
        except (TypeError, ValueError):
            return
        if pid > 1 and pid != os.getpid() and pid not in self.pids:
            self.pids[pid] = util.start_time(pid)

    def scan_runtime(self, rt, args=()):
        """Record container ids and init pids from the state root (and --pid-file args)."""
        args = [str(a) for a in args]
        for i, a in enumerate(args):
            path = None
            if a in ("--pid-file", "-pid-file") and i + 1 < len(args):
                path = args[i + 1]
            elif a.startswith(("--pid-file=", "-pid-file=")):
                path = a.split("=", 1)[1]
            if path:
                try:
                    with open(path) as f:
                        self.record_pid(f.read().strip())
                except OSError:
                    pass
        for cid in rt.container_ids():
            self.ids.add(cid)
            d = os.path.join(rt.root, cid)
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for n in names:
                p = os.path.join(d, n)
                try:
                    if n.endswith(".json"):
                        with open(p) as f:
                            self._pids_from_json(json.load(f))
                    elif n == "pid" or n.endswith(".pid"):
                        with open(p) as f:
                            self.record_pid(f.read().strip())
                except (OSError, ValueError):
                    pass

    def _pids_from_json(self, obj):
        # runc: init_process_pid; pyruntime / OCI state: pid. Nested objects are not scanned.
        if isinstance(obj, dict):
            for k in ("init_process_pid", "pid", "init_pid"):
                if isinstance(obj.get(k), int):
                    pid = obj[k]
                    start = obj.get("init_process_start") or obj.get("start_time")
                    if pid not in self.pids and isinstance(start, int) and pid > 1:
                        self.pids[pid] = start
                    else:
                        self.record_pid(pid)

    # -- the leak check ---------------------------------------------------------------

    def _live_pids(self):
        """Live processes that belong to the test: recorded pids + root/cwd in its dirs."""
        live = {p for p, st in self.pids.items() if util.pid_alive(p, st)}
        if self._dir is None:
            return live
        prefix = self._dir + "/"
        me = os.getpid()
        for ent in os.listdir("/proc"):
            if not ent.isdigit() or int(ent) == me:
                continue
            pid = int(ent)
            for what in ("root", "cwd"):
                p = "/proc/%d/%s" % (pid, what)
                try:
                    st = os.stat(p)
                    link = os.readlink(p)
                except OSError:
                    continue
                if ((st.st_dev, st.st_ino) in self.rootfs_keys or link == self._dir
                        or link.startswith(prefix)) and util.pid_alive(pid):
                    live.add(pid)
                    self.pids.setdefault(pid, util.start_time(pid))
        return live

    def _cgroup_leaks(self):
        ids = set(self.ids)
        if not ids:
            return []

        def match(name):
            for i in ids:
                if name == i or name.endswith("-" + i) or name.endswith("-" + i + ".scope"):
                    return True
                # substring only for ids unique enough not to hit another session's
                if len(i) >= 12 and i in name:
                    return True
            return False

        out = []
        for top, dirs, _files in os.walk(CGROUP_ROOT):
            for d in dirs:
                if match(d):
                    out.append(os.path.join(top, d))
        return out

    def leak_check(self):
        """Force-delete leftovers, then find (and clean up) leaks; returns the problem list."""
        problems = []
        for rt in self.runtimes:
            self.scan_runtime(rt)
            for cid in rt.container_ids():
                try:
                    r = rt.run("state", cid, timeout=CLEANUP_TIMEOUT)
                    if r.returncode == 0:
                        self._pids_from_json(json.loads(r.stdout))
                except (subprocess.TimeoutExpired, ValueError):
                    pass
                try:
                    rt.run("delete", "--force", cid, timeout=CLEANUP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    problems.append("`delete --force %s` timed out" % cid)

        # processes: give force-deleted inits a moment to be reaped, then kill the rest
        live = set() if util.wait_for(lambda: not self._live_pids(), GRACE) else self._live_pids()
        if live:
            for pid in sorted(live):
                problems.append("process %d alive: %s" % (pid, _cmdline(pid)))
            _kill(live, self.pids)

        # cgroups: thaw, kill what is inside, remove (deepest first)
        for cg in sorted(self._cgroup_leaks(), key=lambda p: -p.count("/")):
            problems.append("cgroup %s exists" % cg)
            _remove_cgroup(cg, self.pids)

        if self._dir is not None:
            for m in reversed(util.mounts_under(self._dir)):
                problems.append("mount %s (%s %s) remains" % (m[1], m[2], m[3]))
                _umount(m[1])

        # host device nodes a container masks or binds (a chmod/chown through a masked path
        # or a bound device would change the host's node: found once at /dev/null 0755)
        now = _host_nodes()
        for path, before in _HOST_NODES.items():
            if now.get(path) != before:
                problems.append("host %s changed: %r -> %r" % (path, before, now.get(path)))
                _restore_node(path, before)

        for rt in self.runtimes:
            for cid in rt.container_ids():
                problems.append("state dir %s remains in %s" % (cid, rt.root))
                if not util.mounts_under(os.path.join(rt.root, cid)):
                    shutil.rmtree(os.path.join(rt.root, cid), ignore_errors=True)
        return problems

    def remove_dir(self):
        # Never rmtree through a mount: it could be a bind mount of a host directory.
        if self._dir is not None and not util.mounts_under(self._dir):
            shutil.rmtree(self._dir, ignore_errors=True)


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip() or "?"
    except OSError:
        return "?"


_NODES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
          "/dev/ptmx")


def _host_nodes():
    out = {}
    for p in _NODES:
        try:
            st = os.lstat(p)
        except OSError:
            continue
        out[p] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev)
    return out


_HOST_NODES = _host_nodes()


def _restore_node(path, before):
    try:
        os.chown(path, before[1], before[2], follow_symlinks=False)
        os.chmod(path, before[0] & 0o7777)
    except OSError:
        pass


def _kill(pids, known, wait=True):
    for pid in pids:
        # re-check identity right before the signal: never hit a recycled pid
        if util.pid_alive(pid, known.get(pid)):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    if wait:
        util.wait_for(lambda: not any(util.pid_alive(p, known.get(p)) for p in pids), GRACE)


def _remove_cgroup(path, known):
    for f, val in (("freezer.state", "THAWED"), ("cgroup.freeze", "0")):
        try:
            with open(os.path.join(path, f), "w") as fh:
                fh.write(val)
        except OSError:
            pass
    # A killed task keeps its cgroup busy until it is reaped: retry for a while.
    deadline = time.monotonic() + GRACE
    while True:
        for top, _dirs, _files in sorted(os.walk(path), key=lambda t: -t[0].count("/")):
            pids = set()
            try:
                with open(os.path.join(top, "cgroup.procs")) as fh:
                    pids = {int(x) for x in fh.read().split()}
            except OSError:
                pass
            # processes in a cgroup named after the test's container are the container's
            for p in pids:
                known.setdefault(p, util.start_time(p))
            _kill(pids, known, wait=False)
            try:
                os.rmdir(top)
            except OSError:
                pass
        if not os.path.exists(path) or time.monotonic() > deadline:
            return
        time.sleep(0.02)


def _umount(path):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(path.encode(), 2)  # MNT_DETACH


@pytest.fixture(autouse=True)
def _pyrt_leak_check(request):
    # Autouse fixtures are set up first, so this is torn down after rt/make_bundle.
    ctx = None

    def get_ctx():
        nonlocal ctx
        if ctx is None:
            sess = request.getfixturevalue("_pyrt_session")
            ctx = _Ctx(sess, _short(request.node.name))
        return ctx

    request.node._pyrt_ctx_factory = get_ctx
    yield
    if ctx is None or not ctx.used:
        return
    try:
        problems = ctx.leak_check()
    finally:
        ctx.remove_dir()
    if problems:
        ctx.session.leaks += 1
        pytest.fail("leak check failed (cleaned up):\n  " + "\n  ".join(problems),
                    pytrace=False)


def _ctx(request):
    return request.node._pyrt_ctx_factory()


@pytest.fixture
def pyrt_ctx(request):
    return _ctx(request)


@pytest.fixture
def pyrt_tmp(request):
    return _ctx(request).dir


@pytest.fixture
def rt(request):
    ctx = _ctx(request)
    cmd, name = ctx.session.cmd, ctx.session.name
    if shutil.which(cmd[0]) is None:
        pytest.fail("runtime %r not found: run ./setup.sh, or set PYRT_RUNTIME" % cmd[0],
                    pytrace=False)
    r = Runtime(ctx, cmd, name)
    ctx.runtimes.append(r)
    return r


@pytest.fixture
def cid(request):
    ctx = _ctx(request)
    c = "pyrt-%s-%s" % (_short(request.node.name), secrets.token_hex(3))
    ctx.ids.add(c)
    return c


@pytest.fixture
def make_bundle(request):
    ctx = _ctx(request)

    def make(args=("/bin/true",), terminal=False, rootfs=True, **overrides):
        path = ctx.mkdir("bundle")
        config = default_config(args, terminal)
        config.update(overrides)
        b = Bundle(path, config)
        if rootfs:
            # cp -a: a private copy (tests chown/chmod/write it); ~20 ms, hardlinks would
            # let one test's chown leak into the template.
            subprocess.run(["cp", "-a", ctx.session.template(), b.rootfs], check=True)
            ctx.add_rootfs(b.rootfs)
        b.save()
        return b

    return make


# ---- figures the reliability tests report (faults injected, configs fuzzed, ...) -------
_COUNTS = {}
_summary_base = pytest_terminal_summary


@pytest.fixture(scope="session")
def pyrt_counts():
    """A dict name -> figure (int or text), printed in the terminal summary."""
    return _COUNTS


def pytest_terminal_summary(terminalreporter):  # noqa: F811 (extends the one above)
    _summary_base(terminalreporter)
    for k, v in sorted(_COUNTS.items()):
        terminalreporter.write_line("pyrt: %s: %s" % (k, v))
