"""Helpers for the engine tests: images made locally, daemons under a temp dir, cleanup.

Everything an engine test starts lives under one temp dir (`Sandbox.dir`): sockets, roots,
state dirs, config files, logs. Cleanup never relies on the engine: it kills every process
whose command line mentions the temp dir or whose root/cwd is under it (daemons, shims,
conmon, containers), unmounts whatever is mounted below it, and removes the cgroups under
the names the test chose (all containing "pyrt").
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tools"))
sys.path.insert(0, os.path.dirname(HERE))

import mkrootfs  # noqa: E402  (tools/mkrootfs.py)
import util  # noqa: E402  (tests/util.py)

CGROUP_ROOT = "/sys/fs/cgroup"


def _runtime():
    # The runtime under test, as tests/conftest.py picks it (PYRT_RUNTIME, else the venv's
    # console script): engines need one absolute path (dockerd --add-runtime, wrappers).
    env = os.environ.get("PYRT_RUNTIME", "").strip()
    if env:
        return shutil.which(env) or env
    sib = os.path.join(os.path.dirname(sys.executable), "pyruntime")
    if os.access(sib, os.X_OK):
        return sib
    return shutil.which("pyruntime") or "/usr/local/bin/pyruntime"


PYRUNTIME = _runtime()


WRAPPER = """\
#!/bin/sh
# The engine's view of the runtime: every call and its exit status.
{pyruntime} "$@"
rc=$?
echo "$rc $*" >> {log}
exit $rc
"""


def wrapper_calls(log, cid):
    """[(exit status, [args after the global flags])] of the calls WRAPPER logged for cid."""
    out = []
    for line in (_read(log) or "").splitlines():
        rc, *argv = line.split(" ")
        if "--log-format" in argv:
            argv = argv[argv.index("--log-format") + 2:]
        if cid in argv:
            out.append((int(rc), argv))
    return out


def have(*binaries):
    """The first missing binary of `binaries`, or None."""
    for b in binaries:
        if not shutil.which(b):
            return b
    return None


# --- images --------------------------------------------------------------------------

def _tar_dir(src, arcroot=""):
    """An uncompressed, reproducible tar of the tree at `src` (bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            rel = os.path.relpath(dirpath, src)
            for name in ([] if rel == "." else [None]) + sorted(filenames):
                path = dirpath if name is None else os.path.join(dirpath, name)
                arc = os.path.relpath(path, src)
                ti = tf.gettarinfo(path, arcname=os.path.join(arcroot, arc))
                ti.mtime = 0
                ti.uname = ti.gname = ""
                if ti.isreg():
                    with open(path, "rb") as f:
                        tf.addfile(ti, f)
                else:
                    tf.addfile(ti)
            # Symlinked dirs (none in our rootfs) would be walked as files above.
    return buf.getvalue()


def _tar_files(files):
    """A tar of {path: bytes or None (=dir) or ("whiteout",)} (bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data in files.items():
            ti = tarfile.TarInfo(path)
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o755
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def busybox_rootfs(path):
    """A busybox-static rootfs at `path` (tools/mkrootfs.py)."""
    return mkrootfs.build(path)


def rootfs_tar(rootfs, path):
    """Write a tar of `rootfs` to `path` (for `docker import`/`podman import`)."""
    with open(path, "wb") as f:
        f.write(_tar_dir(rootfs))
    return path


def image_archive(path, name, layers, cmd=("/bin/sh",), entrypoint=None, env=None,
                  workdir="/"):
    """Write an image tarball that is both an OCI image layout and a docker-archive.

    `layers`: list of layer tar bytes (bottom first); `name`: "repo:tag" (a bare repo gets
    ":latest"), kept as given (the CRI wants "docker.io/..." names). `ctr images import`
    reads index.json (its io.containerd.image.name annotation), `docker load` and
    `podman load` read manifest.json (the docker-archive part). Layers are gzip-compressed
    in the OCI part (digests over the compressed blob) and plain in the docker part.
    """
    if ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    blobs = {}

    def blob(data):
        d = hashlib.sha256(data).hexdigest()
        blobs[d] = data
        return "sha256:" + d, len(data)

    diff_ids = ["sha256:" + hashlib.sha256(l).hexdigest() for l in layers]
    config = {
        "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
        "config": {"Env": list(env or ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                        "/usr/bin:/sbin:/bin"]),
                   "Cmd": list(cmd) if cmd else None,
                   "Entrypoint": list(entrypoint) if entrypoint else None,
                   "WorkingDir": workdir},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "pyrt engine tests"}
                    for _ in layers],
    }
    cfg_digest, cfg_size = blob(json.dumps(config, sort_keys=True).encode())
    oci_layers = []
    for l in layers:
        gz = gzip.compress(l, mtime=0)
        d, s = blob(gz)
        oci_layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                           "digest": d, "size": s})
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": cfg_digest, "size": cfg_size},
                "layers": oci_layers}
    man_digest, man_size = blob(json.dumps(manifest, sort_keys=True).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": man_digest, "size": man_size,
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}}]}
    docker_layers = []
    with tarfile.open(path, "w") as tf:
        def add(arc, data):
            ti = tarfile.TarInfo(arc)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for d, data in blobs.items():
            add("blobs/sha256/" + d, data)
        for i, l in enumerate(layers):
            arc = "layer%d/layer.tar" % i
            add(arc, l)
            docker_layers.append(arc)
        add("blobs/docker-config.json", json.dumps(config, sort_keys=True).encode())
        add("manifest.json", json.dumps([{"Config": "blobs/docker-config.json",
                                          "RepoTags": [name], "Layers": docker_layers}]).encode())
    return name


class Images:
    name = "pyrt/busybox:1"

    def __init__(self, sb):
        self.rootfs = busybox_rootfs(sb.path("rootfs"))
        base = _tar_dir(self.rootfs)
        with open(sb.path("rootfs.tar"), "wb") as f:
            f.write(base)
        self.rootfs_tar = sb.path("rootfs.tar")
        top = _tar_files({"etc/layer2": b"two\n"})
        self.archive = sb.path("image.tar")
        image_archive(self.archive, self.name, [base, top])


# --- processes, mounts, cgroups ----------------------------------------------------------

def wait_for(pred, timeout=30, interval=0.05, what="condition"):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(interval)


def wait_socket(path, timeout=30, proc=None, log=None):
    def ok():
        if proc is not None and proc.poll() is not None:
            tail = open(log).read()[-3000:] if log and os.path.exists(log) else ""
            raise RuntimeError("daemon exited with %s:\n%s" % (proc.returncode, tail))
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(path)
            return True
        except OSError:
            return False
        finally:
            s.close()
    wait_for(ok, timeout, what="socket " + path)


def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def procs_of(base):
    """Pids of processes tied to `base`: cmdline mentions it, or root/cwd is under it."""
    me = os.getpid()
    base = base.rstrip("/")
    out = []
    for e in os.listdir("/proc"):
        if not e.isdigit() or int(e) == me:
            continue
        pid = int(e)
        cmd = _read("/proc/%d/cmdline" % pid, "rb")
        if cmd and base.encode() in cmd:
            out.append(pid)
            continue
        for link in ("root", "cwd"):
            try:
                t = os.readlink("/proc/%d/%s" % (pid, link))
            except OSError:
                continue
            if t == base or t.startswith(base + "/"):
                out.append(pid)
                break
    return out


def kill_all(pids, sig=signal.SIGKILL):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def cgroup_dirs(names):
    """Existing cgroup dirs (any hierarchy, any depth <= 3) whose name is in `names`."""
    found = []
    for hier in os.listdir(CGROUP_ROOT):
        top = os.path.join(CGROUP_ROOT, hier)
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        for dirpath, dirnames, _ in os.walk(top):
            depth = dirpath[len(top):].count("/")
            for d in dirnames:
                if any(n in d for n in names):
                    found.append(os.path.join(dirpath, d))
            if depth >= 2:
                dirnames[:] = []
            else:
                dirnames[:] = [d for d in dirnames if not any(n in d for n in names)]
    return found


def remove_cgroup_tree(path):
    """Kill what is left in a cgroup tree we created, then rmdir it bottom-up."""
    for dirpath, dirnames, _ in os.walk(path, topdown=False):
        procs = _read(os.path.join(dirpath, "cgroup.procs")) or ""
        kill_all(int(p) for p in procs.split())
        frozen = os.path.join(dirpath, "freezer.state")
        if os.path.exists(frozen):
            try:
                with open(frozen, "w") as f:
                    f.write("THAWED")
            except OSError:
                pass
        for _ in range(50):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)


class Sandbox:
    """A temp dir that owns daemons, their processes, mounts and cgroups."""

    def __init__(self, prefix):
        # Short: containerd and conmon put unix socket paths (108 bytes max) below it.
        self.dir = tempfile.mkdtemp(prefix="pyrt-%s-" % prefix, dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.tag = os.path.basename(self.dir).replace("_", "")  # unique, contains "pyrt"
        self.daemons = []
        self.cgroup_names = [self.tag]
        self.netns = None

    def path(self, *parts):
        p = os.path.join(self.dir, *parts)
        return p

    def mkdir(self, *parts):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        return p

    def write(self, rel, text):
        p = self.path(rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w") as f:
            f.write(text)
        return p

    def private_net(self):
        """Start the daemons from now on in one network namespace of their own, with only lo
        up: bridges, addresses, routes, iptables rules and listening ports they make (swarm's
        docker_gwbridge, a registry's port) never reach the host's namespace. The namespace
        is bound on <dir>/netns (cleanup unmounts it, which frees it with all its devices).
        """
        path = self.path("netns")
        open(path, "w").close()
        subprocess.run(["unshare", "--net=" + path, "ip", "link", "set", "lo", "up"],
                       check=True)
        self.netns = path
        return path

    def start(self, name, argv, sock=None, env=None, timeout=60):
        log = self.path(name + ".log")
        if self.netns:
            # nsenter execs the daemon: the Popen pid is the daemon's.
            argv = ["nsenter", "--net=" + self.netns, "--"] + list(argv)
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=open(log, "ab"),
                             stderr=subprocess.STDOUT, env=e, start_new_session=True,
                             cwd=self.dir)
        self.daemons.append((name, p))
        if sock:
            wait_socket(sock, timeout, proc=p, log=log)
        return p

    def log(self, name):
        return _read(self.path(name + ".log")) or ""

    def stop_daemons(self, timeout=20):
        for name, p in reversed(self.daemons):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def cleanup(self):
        """Returns the list of leftovers found (and removed): empty = the engine was clean."""
        leaks = []
        self.stop_daemons()
        # Engines finish asynchronously (conmon, shims exit after the container): a grace
        # period before anything still there counts as left behind.
        try:
            wait_for(lambda: not procs_of(self.dir), timeout=10, interval=0.1)
        except TimeoutError:
            pass
        for attempt in range(3):
            pids = procs_of(self.dir)
            if not pids:
                break
            if attempt == 0:
                leaks.append("processes left: %s" % ", ".join(
                    "%d (%s)" % (p, (_read("/proc/%d/comm" % p) or "?").strip()) for p in pids))
            kill_all(pids)
            time.sleep(0.3)
        # Containers pivot into their own mount namespace (their /proc/PID/root reads "/"):
        # found through the cgroups under our names instead.
        in_cgroups = set()
        for cg in cgroup_dirs(self.cgroup_names):
            for dirpath, _, _ in os.walk(cg):
                in_cgroups.update(int(p) for p in
                                  (_read(os.path.join(dirpath, "cgroup.procs")) or "").split())
        if in_cgroups:
            leaks.append("processes left in cgroups: %s" % ", ".join(
                "%d (%s)" % (p, (_read("/proc/%d/comm" % p) or "?").strip())
                for p in sorted(in_cgroups)))
        for cg in cgroup_dirs(self.cgroup_names):
            remove_cgroup_tree(cg)
        for m in reversed(util.mounts_under(self.dir)):
            subprocess.run(["umount", "-l", m[1]], stderr=subprocess.DEVNULL)
        left = cgroup_dirs(self.cgroup_names)
        if left:
            leaks.append("cgroups not removable: %s" % left)
        shutil.rmtree(self.dir, ignore_errors=True)
        if os.path.exists(self.dir):
            # Usually a busy overlay/shm mount that umount -l just detached.
            time.sleep(0.5)
            shutil.rmtree(self.dir, ignore_errors=True)
        return leaks


def run(argv, timeout=60, input=None, check=False, env=None, **kw):
    """subprocess.run in text mode with output captured; never raises on non-zero unless
    `check`. Stdin is /dev/null unless `input` is given."""
    e = None
    if env:
        e = dict(os.environ)
        e.update(env)
    if input is None:
        kw.setdefault("stdin", subprocess.DEVNULL)
    r = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                       env=e, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s -> %d\nstdout: %s\nstderr: %s"
                             % (" ".join(argv), r.returncode, r.stdout, r.stderr))
    return r


def make_sandbox_fixture(prefix):
    """A module-scoped fixture yielding a Sandbox, leak-checked at teardown."""
    import pytest

    @pytest.fixture(scope="module")
    def _fixture():
        sb = Sandbox(prefix)
        yield sb
        leaks = sb.cleanup()
        if leaks:
            pytest.fail("engine left behind (cleaned up): " + "; ".join(leaks), pytrace=False)
    return _fixture


def run_pty(argv, input=None, timeout=60, env=None):
    """Run argv with a new pty as its stdin/stdout/stderr (engines that want a terminal,
    e.g. `ctr run -t`, `podman run -t`). Returns (exit status, output with \r removed)."""
    import pty
    import select
    master, slave = pty.openpty()
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=e,
                         start_new_session=True, close_fds=True,
                         preexec_fn=lambda: __import__("fcntl").ioctl(
                             0, __import__("termios").TIOCSCTTY, 0))
    os.close(slave)
    if input:
        os.write(master, input.encode())
    out = b""
    end = time.monotonic() + timeout
    while True:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every slave fd closed
                data = b""
            if not data:
                break
            out += data
        elif p.poll() is not None:
            break
        if time.monotonic() > end:
            p.kill()
            p.wait()
            os.close(master)
            raise TimeoutError("%s: no exit in %ss; output so far: %r" % (argv, timeout, out))
    rc = p.wait(timeout=max(1, end - time.monotonic()))
    os.close(master)
    return rc, out.decode(errors="replace").replace("\r", "")


# --- cgroups of one process (issue 18's tests) ----------------------------------------------

_NOT_CONTROLLERS = ("rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode")


def _cgroup_mounts():
    """{frozenset of a hierarchy's controllers (name=X included; empty for cgroup2): mount
    point} of the hierarchies mounted on this host."""
    out = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, right = line.rstrip("\n").split(" - ")
            fstype, _src, opts = right.split()[:3]
            if fstype == "cgroup2":
                out.setdefault(frozenset(), left.split()[4])
            elif fstype == "cgroup":
                ctrls = frozenset(o for o in opts.split(",") if o.startswith("name=") or (
                    "=" not in o and o not in _NOT_CONTROLLERS))
                out.setdefault(ctrls, left.split()[4])
    return out


def proc_cgroup_dirs(pid, below):
    """The cgroup dirs (one per hierarchy) of process `pid` whose path starts with the
    cgroup path `below`; missing dirs are listed too (the caller checks they exist)."""
    mounts = _cgroup_mounts()
    out = []
    for line in (_read("/proc/%d/cgroup" % pid) or "").splitlines():
        _n, ctrls, path = line.split(":", 2)
        if not (path == below or path.startswith(below.rstrip("/") + "/")):
            continue
        mp = mounts.get(frozenset(c for c in ctrls.split(",") if c))
        if mp:
            out.append(mp + path)
    return out


def in_cgroup(pid, d):
    return str(pid) in (_read(os.path.join(d, "cgroup.procs")) or "").split()


def rmdir_cgroup(rel):
    """rmdir the cgroup `rel` (a path a test made up, below a hierarchy root) in every
    hierarchy where it exists and is empty; Sandbox.cleanup handles anything left."""
    assert rel.strip("/") and ".." not in rel.split("/"), rel
    for mp in set(_cgroup_mounts().values()):
        try:
            os.rmdir(os.path.join(mp, rel.lstrip("/")))
        except OSError:
            pass
