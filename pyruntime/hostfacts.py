"""Host facts: everything the planner needs to know about this host and this caller,
gathered before planning and handed to plan.build as plain data.

The planner itself never looks at the host, so the same config and the same facts give
the same plan on any machine (the golden plans in tests/golden/ rely on it), and
`pyruntime plan` prints exactly the plan `create` runs: both gather these facts and call
plan.build. Facts:

    last_cap        /proc/sys/kernel/cap_last_cap
    apparmor_exec   which /proc/self/attr file takes an AppArmor exec label
    sources         {resolved bind source: {"dir": bool, "sys": bool, "proc": bool}
                     or {"errno": n}} (stat; realpath is /sys; on procfs)
    rootfs_modes    {tmpfs destination: permission bits of the directory in the rootfs}
    rootfs_parent_mount   the mount point holding the rootfs' parent (shared propagation)
    home            HOME for the process when its env has none (the container's passwd)
    listen_fds, pass_fds  socket-activation fds and which caller fds may pass
    stdio_mask      which of the caller's fds 0-2 a detached process may get chowned
    setgroups_denied      the runtime will deny setgroups (unprivileged own-id gid map)
    cgroup_replace  rootless v1: {leaf the container would have had: the runtime's cgroup}
    seccomp         the compiled filter {program, flags, notify} or None
    clone_into_cgroup     False when PYRT_CLONE_INTO_CGROUP=0: the init is cloned the old
                     way and moved into its cgroup (tests and bench/ compare the two; the
                     launcher reads the same switch to keep its warm-up child)
"""
from . import oslite as os
import stat

from .errors import RuntimeErr


def last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        from .plan import CAPS
        return len(CAPS) - 1


def apparmor_exec():
    aa = "/proc/self/attr/apparmor/exec"
    return aa if os.path.exists(aa) else "/proc/self/attr/exec"


def mode_in_rootfs(rootfs, dest):
    """Permission bits of an existing directory dest in the rootfs, or None. Never
    through a symlink (it could lead out of the rootfs): then None too."""
    path = rootfs
    for part in dest.strip("/").split("/"):
        if not part:
            continue
        path = os.path.join(path, part)
        try:
            st = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return None
    return stat.S_IMODE(st.st_mode) if dest.strip("/") and stat.S_ISDIR(st.st_mode) else None


def fs_type(path):
    import ctypes
    buf = ctypes.create_string_buffer(120)  # struct statfs; f_type is the first word
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(os.fsencode(path), buf) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    return ctypes.c_long.from_buffer(buf).value


def mount_point_of(path):
    best = "/"
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split()[4].replace("\\040", " ")
                if (path == mp or path.startswith(mp.rstrip("/") + "/")) and len(mp) > len(best):
                    best = mp
    except OSError:
        pass
    return best


def source_info(src, dest):
    """What the planner needs to know about a bind mount's (resolved) source."""
    from .plan import PROC_SUPER_MAGIC
    try:
        st = os.stat(src)
    except OSError as e:
        return {"errno": e.errno}
    info = {"dir": stat.S_ISDIR(st.st_mode), "sys": os.path.realpath(src) == "/sys"}
    if dest == "/proc":
        try:
            info["proc"] = fs_type(src) == PROC_SUPER_MAGIC
        except OSError:
            info["proc"] = False
    return info


def mount_facts(config, bundle, rootfs):
    """The facts of the config's mounts: bind sources, tmpfs mount point modes."""
    from .plan import MS_BIND, clean_dest, parse_mount_options, resolve_host_source
    sources = {}
    modes = {}
    for m in config.get("mounts") or ():
        if m.get("type") == "cgroup":
            continue
        dest = m.get("destination", "")
        dest = clean_dest(dest if dest.startswith("/") else "/" + dest)
        flags = parse_mount_options(m.get("options"))[0]
        if flags & MS_BIND or m.get("type") == "bind":
            src = resolve_host_source(m.get("source") or "", bundle)
            if src not in sources:
                sources[src] = source_info(src, dest)
            elif dest == "/proc" and "proc" not in sources[src]:
                sources[src] = source_info(src, dest)
        elif m.get("type") == "tmpfs" and not any(
                o.startswith("mode=") for o in m.get("options") or ()):
            modes[dest] = mode_in_rootfs(rootfs, dest)
    return sources, modes


_PASSWD_MAX = 4 << 20


def passwd_home(rootfs, uid):
    """runc: HOME from the container's passwd entry for the user, "/" without one.

    The file is the container's to shape, and a running container reshapes it at will:
    it is resolved inside the rootfs (no symlink or magic link leads out), opened as an
    O_PATH handle first so that opening it cannot block or wake a device, and read only
    if it is a regular file of sane size. Anything else is one line, as runc says when
    it cannot parse the file (runc itself blocks forever on a FIFO)."""
    from .errors import strerror
    from .executor import try_open_in_root
    what = "unable to start container process: unable to setup user: /etc/passwd: "
    fd = try_open_in_root(rootfs, "/etc/passwd", os.O_PATH)
    if fd < 0:
        if -fd in (2, 20):   # ENOENT, ENOTDIR: no passwd, runc's default
            return "/"
        raise RuntimeErr(what + strerror(-fd))
    try:
        info = os.fstat(fd)
        if info.st_mode & 0o170000 != 0o100000:   # S_ISREG
            raise RuntimeErr(what + "not a regular file")
        if info.st_size > _PASSWD_MAX:
            raise RuntimeErr(what + "larger than %d MiB" % (_PASSWD_MAX >> 20))
        # the same inode, now for reading
        rfd = os.open("/proc/self/fd/%d" % fd,
                      os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise RuntimeErr(what + strerror(e.errno)) from None
    finally:
        os.close(fd)
    # Chunks, not one read of the bound: that would allocate (and on some paths touch)
    # 4 MiB for a file of a few hundred bytes, create's largest allocation.
    chunks, n = [], 0
    try:
        while n <= _PASSWD_MAX:
            b = os.read(rfd, 65536)
            if not b:
                break
            chunks.append(b)
            n += len(b)
    except OSError as e:
        raise RuntimeErr(what + strerror(e.errno)) from None
    finally:
        os.close(rfd)
    data = b"".join(chunks)
    if len(data) > _PASSWD_MAX:
        raise RuntimeErr(what + "larger than %d MiB" % (_PASSWD_MAX >> 20))
    want = str(uid)
    for line in data.decode(errors="replace").splitlines():
        parts = line.split(":")
        if len(parts) >= 6 and parts[2] == want:
            return parts[5] or "/"
    return "/"


def home_of(rootfs, process):
    """HOME for the process unless its env sets one (runc: the container's passwd)."""
    if any(e.startswith("HOME=") for e in process.get("env") or ()):
        return None
    return passwd_home(rootfs, (process.get("user") or {}).get("uid", 0))


def gather(config, bundle, *, listen_fds=0, pass_fds=None, stdio_mask=0, seccomp=None,
           cgroup_replace=None, setgroups_denied=False):
    """Probe this host for what plan.build needs to plan `config`. The caller's facts
    (fds, cgroup replacements decided while making the cgroups, the compiled seccomp
    filter) come in as arguments."""
    linux = config.get("linux") or {}
    root = config.get("root") or {}
    rootfs = config.get("_rootfs") or os.path.join(bundle, root.get("path", "rootfs"))
    process = config.get("process") or {}
    sources, modes = mount_facts(config, bundle, rootfs)
    facts = {
        "last_cap": last_cap(),
        "apparmor_exec": apparmor_exec() if process.get("apparmorProfile") else None,
        "sources": sources,
        "rootfs_modes": modes,
        "rootfs_parent_mount": None,
        "home": home_of(rootfs, process),
        "listen_fds": listen_fds,
        "pass_fds": pass_fds,
        "stdio_mask": stdio_mask,
        "setgroups_denied": bool(setgroups_denied),
        "cgroup_replace": dict(cgroup_replace or {}),
        "seccomp": seccomp,
        "clone_into_cgroup": os.environ.get("PYRT_CLONE_INTO_CGROUP") != "0",
    }
    ns = {n.get("type") for n in linux.get("namespaces") or ()}
    if "mount" in ns and linux.get("rootfsPropagation") in ("shared", "rshared"):
        facts["rootfs_parent_mount"] = mount_point_of(os.path.dirname(rootfs))
    return facts
