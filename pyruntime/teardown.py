"""delete: what the container owns goes, and nothing else.

- its init, signalled through a pidfd opened and checked against the recorded start
  time (never a recycled pid); with a pid namespace of its own that takes every process
  of the container with it, so the processes of its cgroup are never signalled (those
  left there belong to another container sharing the cgroup);
- without a pid namespace of its own, the processes of its cgroup, but only when the
  cgroup is the container's alone (create made it, and no other live container of this
  root records it);
- its leaf cgroup dirs, and the parents create made if they are empty (cgroups/base.py).

A state.json that cannot be read does not make delete forget a live container: the init
and the cgroup record are also in owned.json (state.py), written before anything is made.
"""
from . import oslite as os

from . import faults
from . import state as st
from .errors import InvalidState, NotExist, RuntimeErr


def open_init(pid, start_time):
    """A pidfd of the recorded init, or -1 when it is gone (or the pid is someone else's)."""
    if not pid or start_time is None:
        return -1
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return -1
    # checked after the open: the pidfd now names one process for good
    s, letter = st.proc_start_time(pid)
    if s != start_time or letter in ("Z", "X"):
        os.close(fd)
        return -1
    return fd


def signal_init(pid, start_time, sig):
    """Signal the recorded init; False when it is not there any more."""
    fd = open_init(pid, start_time)
    if fd < 0:
        return False
    try:
        import _signal
        _signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


def _wait_fd(fd, timeout):
    import select
    p = select.poll()
    p.register(fd, select.POLLIN)
    p.poll(int(timeout * 1000))


def delete(rt, cid, force=False):
    try:
        c = rt.load(cid, lock=True)
    except NotExist:
        if force:
            return
        raise
    except st.CorruptState as e:
        return _delete_damaged(rt, cid, force, e)
    try:
        status = c.status()
        if status in ("running", "paused", "creating") and not force:
            raise InvalidState("cannot delete container %s that is not stopped: %s" % (cid, status))
        _teardown(rt, c)
        detach_host_rootfs(c.data)
        hooks = c.hooks()
        st.remove_dir(c.dir)
        if hooks.get("poststop"):
            from . import hooks as hooks_mod
            hooks_mod.run_hooks(hooks, "poststop", c.oci_state("stopped"), warn=rt._warn)
    finally:
        if c.dirfd is not None:
            os.close(c.dirfd)


def net_devices_home(c, warn=None):
    """linux.netDevices go back to the host before the namespace holding them can go (a
    virtual device would be destroyed with it); best effort, as the rest of delete."""
    devs = c.data.get("net_devices")
    if not devs:
        return
    path = c.data.get("netns_path") or getattr(c, "netns_fd", None) or ""
    if not path:
        if not c.pid or not c.alive():
            return  # the namespace died with the init
        path = "/proc/%d/ns/net" % c.pid
    from . import netdev
    try:
        netdev.move_out(path, {h: {"name": n} for h, n in devs.items()})
    except RuntimeErr as e:
        if warn is not None:
            warn(str(e))


def detach_host_rootfs(data):
    """A container without a mount namespace had its rootfs (the runtime's bind of it
    onto itself, with the config's mounts below) set up in the runtime's namespace:
    detach that whole tree, as nothing else will."""
    rec = data.get("host_rootfs_mount")
    if not rec:
        return
    path, before = rec
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    for _ in range(8):
        if mounts_at(path) <= before:  # the image's own mount (if any) stays
            break
        libc.umount2(os.fsencode(path), 2)  # MNT_DETACH: the bind and all below it


def mounts_at(path):
    n = 0
    want = os.fsencode(os.path.realpath(path))
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            mp = line.split(b" ", 5)[4].replace(b"\\040", b" ")
            n += mp == want
    return n


def _teardown(rt, c, pidns=None):
    """Kill the container's init (and, when they are its alone and its init does not
    take them along, the processes of its cgroup), remove its cgroups. -> the leaf dirs
    left because processes that are not the container's remain in them."""
    cg = c.data.get("cgroup")
    mgr = None
    if cg:
        from . import cgroups
        mgr = cgroups.from_state(cg)
    net_devices_home(c, rt._warn)
    fd = open_init(c.pid, c.data.get("start_time"))
    killed = fd >= 0
    if fd >= 0:
        try:
            import _signal
            try:
                _signal.pidfd_send_signal(fd, 9)
            except ProcessLookupError:
                pass
            if mgr is not None and mgr.is_frozen():
                # a frozen task cannot die (v1): thaw after SIGKILL, as runc does
                try:
                    mgr.thaw()
                except RuntimeErr:
                    pass
            _wait_fd(fd, 10.0)
        finally:
            os.close(fd)
        faults.at("delete:killed")
    if mgr is None:
        return []
    if pidns is None:
        pidns = c.data.get("pidns") is True
    # a pid namespace takes the container's processes along only with its init: when the
    # recorded init is not there (it died, or the record is wrong), what is in the
    # container's own cgroup is the container's
    kill = (not (pidns and killed)) and mgr.exclusive() and bool(mgr.pids()) \
        and not _shared(rt, c.id, mgr)
    busy = mgr.destroy(kill=kill)
    if busy:
        # runc's words: the cgroup stays for the processes still in it
        for d in busy:
            rt._warn("Failed to remove cgroup: rmdir %s: device or resource busy" % d)
        left = sorted((k, d) for k, d in mgr.paths.items() if d in busy)
        rt._warn("Failed to remove paths: map[%s]" % " ".join("%s:%s" % kd for kd in left))
    return busy


def _shared(rt, cid, mgr):
    """Another live container of this root records one of our leaf dirs."""
    mine = {d for _, d in mgr.dirs()}
    for other in st.list_ids(rt.root):
        if other == cid:
            continue
        try:
            o = st.load(rt.root, other)
            paths = (o.data.get("cgroup") or {}).get("paths") or {}
            if mine & set(paths.values()) and o.alive():
                return True
        except (RuntimeErr, OSError, AttributeError, TypeError):
            continue
    return False


def _stored_cgroups_path(rt, cid):
    try:
        c = st.Container(rt.root, cid, {})
        path = ((c.config().get("linux") or {}).get("cgroupsPath"))
        return path if isinstance(path, str) else None
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


def _delete_damaged(rt, cid, force, err):
    """state.json is unreadable: owned.json still names the init and the cgroups."""
    path = os.path.join(rt.root, cid)
    try:
        dirfd = st.lock_dir(path)
    except OSError:
        raise err
    try:
        data = st.load_owned(rt.root, cid, _stored_cgroups_path(rt, cid))
        if data is None:
            if not force:
                raise RuntimeErr("%s (delete --force removes it)" % err)
            _refuse_if_live(rt, cid, err)
            rt._warn("container %s: removing its unreadable state" % cid)
            st.remove_dir(path)
            return
        c = st.Container(rt.root, cid, data, None)
        verified = _init_is_ours(c)
        if not verified:
            c.data["pid"] = 0
        status = c.status()
        if status != "stopped" and not force:
            raise InvalidState("cannot delete container %s that is not stopped: %s "
                               "(its state file is damaged)" % (cid, status))
        rt._warn("%s: its init and cgroups are found from %s" % (err, st.OWNED_FILE))
        # an init that cannot be verified cannot take the container's processes along:
        # those of its cgroup are found there (when it is the container's alone)
        busy = _teardown(rt, c, pidns=verified and c.data.get("pidns") is True)
        if busy and not verified:
            raise RuntimeErr("container %s: state file is damaged and processes remain in "
                             "its cgroup %s: kill them, then run delete --force again"
                             % (cid, busy[0]))
        st.remove_dir(path)
    finally:
        os.close(dirfd)


def _init_is_ours(c):
    """A pid from owned.json is signalled only if that process is in one of the
    container's leaf cgroups (when there is a record of them)."""
    cg = c.data.get("cgroup")
    if not cg or not c.pid:
        return True
    from . import cgroups
    try:
        mgr = cgroups.from_state(cg)
    except RuntimeErr:
        return False
    leaves = {d for _, d in mgr.dirs()}
    if not leaves:
        return True
    from .cgroups import common
    try:
        own = common.read_proc_cgroup("/proc/%d/cgroup" % c.pid)
    except OSError:
        return False
    for key, d in mgr.dirs():
        rel = own.get(key.split(",")[0] if key else "")
        if rel is None:
            continue
        # its own cgroup or one below it (made inside, with a cgroup namespace)
        here = os.path.normpath(mgr.mounts[key] + "/" + rel)
        if here == d or here.startswith(d + "/"):
            return True
    return False


def _refuse_if_live(rt, cid, err):
    """No usable record at all: the cgroup the config names is looked at. Processes in it
    mean the container may be alive, and forgetting it would leave them untracked: refuse.
    Empty leaves are removed (one rmdir each; parents are left, nothing says who made them)."""
    try:
        from . import cgroups
        mgr = cgroups.new(cid, _stored_cgroups_path(rt, cid), {})
        leaves = [d for _, d in mgr.dirs() if os.path.isdir(d)]
    except (RuntimeErr, OSError):
        leaves = []
    from .cgroups import common
    try:
        live = [d for d in leaves if common.all_pids(d)]
    except (OSError, ValueError):
        live = leaves
    if live:
        raise RuntimeErr("%s, and processes remain in its cgroup %s: kill them, then run "
                         "delete --force again" % (err, live[0]))
    for d in leaves:
        try:
            os.rmdir(d)
        except OSError:
            pass
