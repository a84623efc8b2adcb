"""The state store: one directory per container under the runtime root.

<root>/<id>/state.json   written atomically (temp file + rename)
<root>/<id>/exec.fifo    present between create and start
<root>/<id>/config.json  the config the container was created with (hooks, exec defaults)
<root>/<id>/owned.json   what the container owns (init pid + start time, cgroup record),
                         written before the cgroup dirs are made; kept apart so that a
                         damaged state.json never makes delete forget a live container
A per-container flock on the directory serialises commands on one id.
"""
import errno
import fcntl
from . import oslite as os
import stat as _stat

from . import OCI_VERSION, fastjson
from .cgroups import record
from .errors import NotExist, RuntimeErr
from .ids import _ID_RE, validate

STATE_FILE = "state.json"
OWNED_FILE = "owned.json"
FIFO = "exec.fifo"


def proc_start_time(pid):
    """Field 22 of /proc/PID/stat (start time in clock ticks), and the state letter."""
    try:
        fd = os.open("/proc/%d/stat" % pid, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None, None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None, None
    finally:
        os.close(fd)
    # the command name may contain spaces and parentheses: split after the last ')'.
    # Parsed as text (latin-1: any byte) because create's other work touches only str
    # methods: the bytes ones would fault in more of the interpreter (peak RSS).
    rest = data.decode("latin-1").rpartition(")")[2].split()
    return int(rest[19]), rest[0]


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

    # loaded from a directory without state.json (a create that died before writing any,
    # or not a container at all): data is then only {"status": "creating"}
    no_state = False

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
        # runc reports a frozen container as paused even before it was started
        if _frozen(self.data.get("cgroup")):
            return "paused"
        if os.path.exists(os.path.join(self.dir, FIFO)) and self._waits_on_fifo():
            return "created"
        return "running"

    def _waits_on_fifo(self):
        # The fifo outlives the wait when a `start` dies between its write and the unlink:
        # only the waiting init holds it open for reading (it closes it before exec), so a
        # non-blocking open for writing fails with ENXIO once the process runs.
        try:
            fd = os.open(os.path.join(self.dir, FIFO), os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as e:
            return e.errno != errno.ENXIO
        os.close(fd)
        return True

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
            "ociVersion": d.get("ociVersion", OCI_VERSION),
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
        write_atomic(os.path.join(self.dir, STATE_FILE), fastjson.dumps(self.data).encode())

    def hooks(self):
        """poststart/poststop hooks: from state.json (recorded at create), or from the
        stored config for containers created before that was recorded."""
        h = self.data.get("hooks")
        if isinstance(h, dict):
            return h
        try:
            return self.config().get("hooks") or {}
        except (OSError, ValueError, AttributeError):
            return {}

    def config(self):
        with open(os.path.join(self.dir, "config.json"), "rb") as f:
            return fastjson.loads(f.read())


def _frozen(cg):
    """The freezer state, read directly: importing the cgroup managers would cost every
    `state`, `start` and `list` a few ms. Same rule as the managers' is_frozen()."""
    if not cg:
        return False
    paths = cg.get("paths") or {}
    try:
        if cg.get("driver") in ("v2", "systemd"):  # systemd: a v2 unit
            d = paths.get("")
            with open(os.path.join(d, "cgroup.freeze"), "rb") as f:
                return f.read().strip() == b"1"
        d = paths.get("freezer")
        if not d or "freezer" in (cg.get("skipped") or ()):
            return False
        with open(os.path.join(d, "freezer.state"), "rb") as f:
            return f.read().strip() in (b"FROZEN", b"FREEZING")
    except (OSError, TypeError, AttributeError):
        return False


def write_atomic(path, data, mode=0o600):
    try:
        replace_file(path, data, mode)
    except OSError as e:
        # a full or read-only state root is the user's to fix: one line, not a traceback
        raise RuntimeErr("unable to write %s: %s" % (path, _strerror(e)))


def _strerror(e):
    from .errors import strerror
    return strerror(e)


def replace_file(path, data, mode=0o600, tmp=None):
    """Write data to tmp (default: beside path, named for this process), then rename it
    over path: a reader sees the old file or the whole new one. On failure tmp is gone and
    the OSError carries `op`, Go's words for the step ("open TMP", "write TMP",
    "rename TMP PATH"), for callers that word errors as runc does."""
    tmp = tmp or "%s.tmp.%d" % (path, os.getpid())
    op = "open " + tmp
    fd = -1
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW,
                     mode)
        op = "write " + tmp
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.close(fd)
        fd = -1
        op = "rename %s %s" % (tmp, path)
        os.rename(tmp, path)
    except BaseException as e:
        if fd >= 0:
            os.close(fd)
        if not op.startswith("open "):   # never remove a file we did not make
            try:
                os.unlink(tmp)
            except OSError:
                pass
        if isinstance(e, OSError):
            e.op = op
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
                _root_is_dir(root)
                raise NotExist()
            raise
    try:
        with open(os.path.join(path, STATE_FILE), "rb") as f:
            fst = os.fstat(f.fileno())
            raw = f.read()
        if fst.st_uid not in (os.geteuid(), 0) or fst.st_mode & 0o022:
            # the state names the pid kill/delete signal: a file another user could have
            # written is not trusted
            if dirfd is not None:
                os.close(dirfd)
            raise RuntimeErr("container %s: state file is not owned by the current user "
                             "(or is writable by others): not trusted" % cid)
    except FileNotFoundError:
        if dirfd is not None:
            os.close(dirfd)
        if os.path.isdir(path) and not os.path.islink(path):
            # a directory without state: a create that died before writing any
            c = Container(root, cid, {"status": "creating"}, None)
            c.no_state = True
            return c
        raise NotExist()
    except OSError as e:
        if dirfd is not None:
            os.close(dirfd)
        if e.errno == errno.ENOTDIR:
            _root_is_dir(root)
        raise CorruptState("container %s: corrupt state file: %s" % (cid, e.strerror))
    try:
        data = fastjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        _sanitize(data)
    except (ValueError, RecursionError) as e:
        if dirfd is not None:
            os.close(dirfd)
        raise CorruptState("container %s: corrupt state file: %s" % (cid, e))
    return Container(root, cid, data, dirfd)


class CorruptState(RuntimeErr):
    """state.json is unreadable or inconsistent: `delete --force` removes the dir."""


def _sanitize(d):
    """The state names what kill/delete act on (a pid, cgroup dirs whose every process
    gets SIGKILL): a damaged record must never point at the host's processes."""
    pid = d.get("pid", 0)
    if type(pid) is not int or not 1 < pid < 1 << 22:
        if pid not in (0, None):
            raise ValueError("invalid pid %r" % (pid,))
    for k in ("start_time", "creator_pid", "creator_start"):
        v = d.get(k)
        if v is not None and type(v) is not int:
            raise ValueError("invalid %s" % k)
    if not isinstance(d.get("status", ""), str):
        raise ValueError("invalid status")
    cg = d.get("cgroup")
    if cg is not None and record.problem(cg):
        raise ValueError("invalid cgroup record")


def save_owned(c):
    """Record what delete must find even if state.json is lost: the init (pid, start
    time), whether it has a pid namespace of its own, and the cgroup record."""
    d = c.data
    rec = {"pid": d.get("pid", 0), "start_time": d.get("start_time"), "pidns": d.get("pidns")}
    cg = d.get("cgroup")
    if cg:
        rec["cgroup"] = {k: cg.get(k) for k in ("driver", "mode", "id", "cgroups_path", "paths",
                                                 "mounts", "created", "skipped", "rootless")}
    write_atomic(os.path.join(c.dir, OWNED_FILE), fastjson.dumps(rec).encode())


def load_owned(root, cid, cgroups_path):
    """owned.json, validated like state.json, with the cgroup record's path checked
    against the config's cgroupsPath (or the id) instead of what the record says of
    itself. -> data dict, or None when missing or unusable."""
    try:
        with open(os.path.join(root, cid, OWNED_FILE), "rb") as f:
            fst = os.fstat(f.fileno())
            raw = f.read(1 << 20)
        if fst.st_uid not in (os.geteuid(), 0) or fst.st_mode & 0o022:
            return None
        d = fastjson.loads(raw)
        if not isinstance(d, dict):
            return None
        _sanitize(d)
        cg = d.get("cgroup")
        # the record's paths must end with the config's cgroupsPath (or the id), not with
        # whatever the record claims its own path is
        if cg is not None and ((cg.get("cgroups_path") or "") != (cgroups_path or "")
                               or (not cgroups_path and cg.get("id") != cid)):
            return None
    except (OSError, ValueError, RecursionError, TypeError, AttributeError):
        return None
    d["status"] = "stopped"   # a live init is found by pid + start time, as always
    return d


def _root_is_dir(root):
    """A --root that is not a directory fails every command as runc's (which makes it
    first) does, not as a damaged container."""
    if not os.path.isdir(root):
        raise RuntimeErr("mkdir %s: not a directory" % root)


def list_ids(root):
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        _root_is_dir(root)
        raise
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


def now_rfc3339(ns=None):
    # UTC from the epoch by arithmetic (the civil-from-days algorithm): strftime and
    # gmtime would fault in interpreter code that create touches nowhere else (peak RSS);
    # so would time.time_ns(), which create avoids by passing the time its state dir was
    # made (os.stat's, whose code every import has run already)
    if ns is None:
        import time
        ns = time.time_ns()
    secs, frac = divmod(ns, 10**9)
    days, rem = divmod(secs, 86400)
    z = days + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (month <= 2)
    # Go's RFC3339Nano, as runc writes it: the fraction without trailing zeros, or none
    return "%04d-%02d-%02dT%02d:%02d:%02d%sZ" % (year, month, day, rem // 3600, rem // 60 % 60,
                                                 rem % 60, (".%09d" % frac).rstrip("0").rstrip("."))


def record_cgroups(c, mgr, intent=()):
    """state.json and owned.json name the init and every cgroup dir that is or may be
    made (intent: the dirs about to be made, written before the first mkdir), so a
    create killed at any moment leaves nothing delete --force cannot find."""
    if mgr is not None:
        c.data["cgroup"] = rec = mgr.to_state()
        rec["created"] = rec["created"] + [d for d in intent if d not in rec["created"]]
    c.save()
    save_owned(c)
