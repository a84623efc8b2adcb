"""The state store: one directory per container under the runtime root.

<root>/<id>/state.json   written atomically (temp file + rename)
<root>/<id>/exec.fifo    present between create and start
<root>/<id>/config.json  the config the container was created with (hooks, exec defaults)
A per-container flock on the directory serialises commands on one id.
"""
import errno
import fcntl
import json
import os
import stat as _stat

from .errors import NotExist, RuntimeErr
from .ids import _ID_RE, validate

STATE_FILE = "state.json"
FIFO = "exec.fifo"


def proc_start_time(pid):
    """Field 22 of /proc/PID/stat (start time in clock ticks), and the state letter."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None, None
    # the command name may contain spaces and parentheses: split after the last ')'
    rest = data[data.rindex(b")") + 2:].split()
    return int(rest[19]), rest[0].decode()


def ensure_root(root):
    try:
        st = os.lstat(root)
    except FileNotFoundError:
        os.makedirs(root, 0o711, exist_ok=True)
        st = os.lstat(root)
    if _stat.S_ISLNK(st.st_mode):
        # a state root that is a symlink could be pointed anywhere by whoever made it
        raise RuntimeErr("state root %s is a symlink" % root)
    if not _stat.S_ISDIR(st.st_mode):
        raise RuntimeErr("state root %s is not a directory" % root)
    if st.st_uid != os.geteuid():
        raise RuntimeErr("state root %s is not owned by the current user" % root)
    return root


class Container:
    """A container's stored state plus its live status."""

    def __init__(self, root, cid, data, dirfd=None):
        self.root = root
        self.id = cid
        self.dir = os.path.join(root, cid)
        self.data = data
        self.dirfd = dirfd

    @property
    def pid(self):
        return self.data.get("pid", 0)

    def alive(self):
        pid = self.pid
        if not pid:
            return False
        st, letter = proc_start_time(pid)
        if st is None or letter in ("Z", "X"):
            return False
        return st == self.data.get("start_time")

    def status(self):
        s = self.data.get("status")
        if s == "creating":
            return "creating" if self._creator_alive() else "stopped"
        if not self.alive():
            return "stopped"
        if os.path.exists(os.path.join(self.dir, FIFO)):
            return "created"
        cg = self.data.get("cgroup")
        if cg:
            try:
                from . import cgroups
                if cgroups.from_state(cg).is_frozen():
                    return "paused"
            except Exception:
                pass
        return "running"

    def _creator_alive(self):
        cp = self.data.get("creator_pid")
        if not cp:
            return False
        st, letter = proc_start_time(cp)
        return st is not None and st == self.data.get("creator_start") and letter not in ("Z", "X")

    def oci_state(self, status=None):
        status = status or self.status()
        d = self.data
        out = {
            "ociVersion": d.get("ociVersion", "1.3.0"),
            "id": self.id,
            "pid": d.get("pid", 0) if status not in ("stopped",) else 0,
            "status": status,
            "bundle": d.get("bundle", ""),
            "rootfs": d.get("rootfs", ""),
            "created": d.get("created", ""),
        }
        if d.get("annotations"):
            out["annotations"] = d["annotations"]
        out["owner"] = d.get("owner", "")
        return out

    def save(self):
        write_atomic(os.path.join(self.dir, STATE_FILE), json.dumps(self.data).encode())

    def config(self):
        with open(os.path.join(self.dir, "config.json"), "rb") as f:
            return json.loads(f.read())


def write_atomic(path, data, mode=0o600):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.close(fd)
        fd = -1
        os.rename(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def lock_dir(path, exclusive=True, blocking=True):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                    | (0 if blocking else fcntl.LOCK_NB))
    except BaseException:
        os.close(fd)
        raise
    return fd


def load(root, cid, lock=False):
    validate(cid)
    path = os.path.join(root, cid)
    dirfd = None
    if lock:
        try:
            dirfd = lock_dir(path)
        except FileNotFoundError:
            raise NotExist()
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                raise NotExist()
            raise
    try:
        with open(os.path.join(path, STATE_FILE), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if dirfd is not None:
            os.close(dirfd)
        if os.path.isdir(path) and not os.path.islink(path):
            # a directory without state: a create that died before writing any
            return Container(root, cid, {"status": "creating"}, None)
        raise NotExist()
    try:
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError as e:
        if dirfd is not None:
            os.close(dirfd)
        raise RuntimeErr("container %s: corrupt state file: %s" % (cid, e))
    return Container(root, cid, data, dirfd)


def list_ids(root):
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    out = []
    for n in sorted(names):
        if n in (".", "..") or not _ID_RE.match(n):
            continue
        if os.path.isdir(os.path.join(root, n)) and not os.path.islink(os.path.join(root, n)):
            out.append(n)
    return out


def remove_dir(path):
    """Remove a container's state dir (flat: only files inside)."""
    try:
        names = os.listdir(path)
    except FileNotFoundError:
        return
    for n in names:
        try:
            os.unlink(os.path.join(path, n))
        except IsADirectoryError:
            import shutil
            shutil.rmtree(os.path.join(path, n), ignore_errors=True)
        except FileNotFoundError:
            pass
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
