"""Idmapped mounts: the runtime makes them, the init only attaches them.

MOUNT_ATTR_IDMAP needs CAP_SYS_ADMIN over the filesystem's user namespace and a detached
mount, so an init inside a user namespace cannot make one. The runtime clones the source
(open_tree(OPEN_TREE_CLONE)), gives the clone the mapping of a user namespace made for it
(a short-lived helper process with the mapping written into its maps), and the init,
which inherits the mount fd, move_mount()s it onto the destination inside the rootfs.
"""
import ctypes
from . import oslite as os

from .errors import RuntimeErr

# x86_64 and the generic table agree on these
SYS_OPEN_TREE, SYS_MOUNT_SETATTR = 428, 442
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
AT_EMPTY_PATH, AT_RECURSIVE = 0x1000, 0x8000
MOUNT_ATTR_IDMAP = 0x00100000
CLONE_NEWUSER = 0x10000000


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


_libc = None


def _syscall(*args):
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.syscall.restype = ctypes.c_long
    r = _libc.syscall(*args)
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def _maps_text(maps):
    return "".join("%d %d %d\n" % (m["containerID"], m["hostID"], m["size"]) for m in maps)


def userns_fd(uid_maps, gid_maps):
    """An fd of a new user namespace with the given mappings (its helper is gone)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the helper: enter a new user namespace, then wait to be killed
        try:
            os.close(w)
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(CLONE_NEWUSER) != 0:
                os._exit(1)
            os.read(r, 1)   # returns at EOF: the runtime closed its end
        finally:
            os._exit(0)
    os.close(r)
    try:
        # the helper is in its namespace once /proc/<pid>/ns/user differs from ours
        own = os.stat("/proc/self/ns/user").st_ino
        for _ in range(100000):
            try:
                if os.stat("/proc/%d/ns/user" % pid).st_ino != own:
                    break
            except FileNotFoundError:
                raise RuntimeErr("idmapped mount: the user namespace helper died")
            os.sched_yield()
        else:
            raise RuntimeErr("idmapped mount: the user namespace helper did not start")
        for kind, maps in (("uid", uid_maps), ("gid", gid_maps)):
            with open("/proc/%d/%s_map" % (pid, kind), "w") as f:
                f.write(_maps_text(maps))
        return os.open("/proc/%d/ns/user" % pid, os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(w)
        os.waitpid(pid, 0)


def idmapped_tree(source, uid_maps, gid_maps, recursive, map_recursive):
    """A detached clone of `source` (with its submounts if `recursive`) carrying the
    mapping (on the submounts too if `map_recursive`); returns its fd."""
    ns = userns_fd(uid_maps, gid_maps)
    try:
        fd = _syscall(SYS_OPEN_TREE, -100, os.fsencode(source),
                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0))
        try:
            attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, ns)
            _syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH | (AT_RECURSIVE if map_recursive else 0),
                     ctypes.byref(attr), ctypes.sizeof(attr))
        except BaseException:
            os.close(fd)
            raise
        return fd
    finally:
        os.close(ns)


def prepare(plan):
    """Make the mount fd of every idmapped mount step of `plan`. Returns {index in
    plan["steps"]: fd} (beside the plan, for executor.Launch): the caller closes them once
    the init has been spawned (it inherits them: they are close-on-exec and the init closes
    them before exec anyway)."""
    fds = {}
    try:
        for i, st in enumerate(plan["steps"]):
            im = st.get("idmap")
            hc = st.get("host_clone")
            if st.get("op") != "mount" or not (im or hc):
                continue
            if not im:
                if os.geteuid() != 0:
                    continue  # rootless: the runtime could not clone it either
                try:
                    fd = _syscall(SYS_OPEN_TREE, -100, os.fsencode(st["source"]),
                                  OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC
                                  | (AT_RECURSIVE if hc["recursive"] else 0))
                except OSError as e:
                    from .errors import strerror
                    raise RuntimeErr("unable to start container process: error during "
                                     "container init: %s: %s" % (st["desc"], strerror(e.errno)))
                fds[i] = fd
                continue
            try:
                fd = idmapped_tree(st["source"], im["uid_mappings"], im["gid_mappings"],
                                   im["recursive"] or im.get("map_recursive", False),
                                   im.get("map_recursive", False))
            except OSError as e:
                from .errors import strerror
                raise RuntimeErr("unable to start container process: error during container "
                                 "init: %s: create an idmapped mount: %s"
                                 % (st["desc"], strerror(e.errno)))
            fds[i] = fd
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    return fds
