"""config.json -> plan: the ordered, plain-data steps the container init performs.

Everything the init will do is decided here; the C executor only carries it out. The
plan prints as JSON (`pyruntime plan`), so a user can see what would happen.
"""
from . import oslite as os
import stat

from .errors import ConfigError

from .namespaces import JOIN_ORDER, NS_FLAGS

# <sys/mount.h>
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_SYNCHRONOUS, MS_REMOUNT, MS_MANDLOCK, MS_DIRSYNC = 16, 32, 64, 128
MS_NOSYMFOLLOW, MS_NOATIME, MS_NODIRATIME, MS_BIND = 256, 1024, 2048, 4096
MS_MOVE, MS_REC, MS_SILENT = 8192, 16384, 32768
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20
MS_RELATIME, MS_I_VERSION, MS_STRICTATIME, MS_LAZYTIME = 1 << 21, 1 << 23, 1 << 24, 1 << 25

MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC = 1, 2, 4, 8
MOUNT_ATTR__ATIME, MOUNT_ATTR_RELATIME, MOUNT_ATTR_NOATIME = 0x70, 0, 0x10
MOUNT_ATTR_STRICTATIME, MOUNT_ATTR_NODIRATIME, MOUNT_ATTR_NOSYMFOLLOW = 0x20, 0x80, 0x200000

# option -> (clear?, flag); the set runc accepts
MOUNT_FLAGS = {
    "async": (True, MS_SYNCHRONOUS), "atime": (True, MS_NOATIME), "bind": (False, MS_BIND),
    "defaults": (False, 0), "dev": (True, MS_NODEV), "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC), "exec": (True, MS_NOEXEC), "iversion": (False, MS_I_VERSION),
    "lazytime": (False, MS_LAZYTIME), "loud": (True, MS_SILENT), "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME), "nodev": (False, MS_NODEV), "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC), "noiversion": (True, MS_I_VERSION), "nolazytime": (True, MS_LAZYTIME),
    "nomand": (True, MS_MANDLOCK), "norelatime": (True, MS_RELATIME), "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID), "nosymfollow": (False, MS_NOSYMFOLLOW), "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME), "remount": (False, MS_REMOUNT), "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY), "silent": (False, MS_SILENT), "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID), "sync": (False, MS_SYNCHRONOUS), "symfollow": (True, MS_NOSYMFOLLOW),
}
PROPAGATION = {
    "private": MS_PRIVATE, "shared": MS_SHARED, "slave": MS_SLAVE, "unbindable": MS_UNBINDABLE,
    "rprivate": MS_PRIVATE | MS_REC, "rshared": MS_SHARED | MS_REC, "rslave": MS_SLAVE | MS_REC,
    "runbindable": MS_UNBINDABLE | MS_REC,
}
# recursive mount attributes (mount_setattr with AT_RECURSIVE): option -> (clear?, attr)
RECURSIVE_ATTRS = {
    "rro": (False, MOUNT_ATTR_RDONLY), "rrw": (True, MOUNT_ATTR_RDONLY),
    "rnosuid": (False, MOUNT_ATTR_NOSUID), "rsuid": (True, MOUNT_ATTR_NOSUID),
    "rnodev": (False, MOUNT_ATTR_NODEV), "rdev": (True, MOUNT_ATTR_NODEV),
    "rnoexec": (False, MOUNT_ATTR_NOEXEC), "rexec": (True, MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, MOUNT_ATTR_NODIRATIME), "rdiratime": (True, MOUNT_ATTR_NODIRATIME),
    "rrelatime": (False, MOUNT_ATTR_RELATIME), "rnorelatime": (True, MOUNT_ATTR_RELATIME),
    "rnoatime": (False, MOUNT_ATTR_NOATIME), "ratime": (True, MOUNT_ATTR_NOATIME),
    "rstrictatime": (False, MOUNT_ATTR_STRICTATIME), "rnostrictatime": (True, MOUNT_ATTR_STRICTATIME),
    "rnosymfollow": (False, MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, MOUNT_ATTR_NOSYMFOLLOW),
}
# Options that are ours to interpret and never reach the kernel as data.
EXTRA_OPTIONS = {"tmpcopyup", "idmap", "ridmap"}

RLIMITS = {
    "RLIMIT_CPU": 0, "RLIMIT_FSIZE": 1, "RLIMIT_DATA": 2, "RLIMIT_STACK": 3, "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5, "RLIMIT_NPROC": 6, "RLIMIT_NOFILE": 7, "RLIMIT_MEMLOCK": 8, "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": 11, "RLIMIT_MSGQUEUE": 12, "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14, "RLIMIT_RTTIME": 15,
}

CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
    "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
]
CAP_NUM = {n: i for i, n in enumerate(CAPS)}

# The devices every container gets when /dev is not bind-mounted from the host.
DEFAULT_DEVICES = [
    ("/dev/null", "c", 1, 3), ("/dev/zero", "c", 1, 5), ("/dev/full", "c", 1, 7),
    ("/dev/random", "c", 1, 8), ("/dev/urandom", "c", 1, 9), ("/dev/tty", "c", 5, 0),
]
DEV_SYMLINKS = [
    ("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"),
]


MAX_ID = (1 << 31) - 1


def cap_mask(names, unknown):
    m = 0
    for n in names or ():
        i = CAP_NUM.get(n)
        if i is None:
            unknown.append(n)
            continue
        m |= 1 << i
    return m


def parse_mount_options(options):
    """-> (flags, clear, propagation list, recursive set/clear attrs, data string, extras)."""
    flags = 0
    clear = 0
    prop = []
    rset = rclr = 0
    data = []
    extras = set()
    for o in options or ():
        if o in MOUNT_FLAGS:
            c, f = MOUNT_FLAGS[o]
            if c:
                flags &= ~f
                clear |= f
            else:
                flags |= f
                clear &= ~f
        elif o in PROPAGATION:
            prop.append(PROPAGATION[o])
        elif o in RECURSIVE_ATTRS:
            c, a = RECURSIVE_ATTRS[o]
            if c:
                rclr |= a
            else:
                rset |= a
        elif o in EXTRA_OPTIONS:
            extras.add(o)
        else:
            data.append(o)
    return flags, clear, prop, rset, rclr, ",".join(data), extras


def _step(op, desc, **kw):
    kw["op"] = op
    kw["desc"] = desc
    return kw


def clean_dest(dest):
    return "/" + "/".join(p for p in dest.split("/") if p)


def resolve_host_source(src, bundle):
    if not src:
        return src
    if not os.path.isabs(src):
        src = os.path.join(bundle, src)
    return src


def mount_steps(m, bundle, userns, netns_new, facts, linux=None):
    """Steps for one config mount entry (facts: hostfacts.gather's)."""
    dest = m.get("destination", "")
    if not dest.startswith("/"):
        # spec 1.3: relative destinations are relative to the container's /
        dest = "/" + dest
    dest = clean_dest(dest)
    mtype = m.get("type") or ""
    src = m.get("source") or ""
    flags, _clear, prop, rset, rclr, data, extras = parse_mount_options(m.get("options"))
    steps = []
    is_bind = bool(flags & MS_BIND) or mtype == "bind"
    if mtype != "proc" and (dest == "/proc" or dest.startswith("/proc/")):
        _check_proc_mount(dest, resolve_host_source(src, bundle) if is_bind else src, is_bind,
                          facts)
    if is_bind:
        flags |= MS_BIND
        src = resolve_host_source(src, bundle)
        info = facts["sources"][src]
        if "errno" in info:
            from .errors import strerror
            raise ConfigError("mount %s to %s: %s" % (src, dest, strerror(info["errno"])))
        kind = 1 if info["dir"] else 2
        step = _step("mount", "bind mount %s to %s" % (src, dest), source=src, target=dest,
                     fstype="", flags=flags & (MS_BIND | MS_REC), data="", mkdir=kind)
        if extras & {"idmap", "ridmap"} or "uidMappings" in m:
            # the runtime makes the idmapped clone (pyruntime.idmap), the init moves it in
            linux = linux or {}
            uids = m.get("uidMappings") or linux.get("uidMappings")
            gids = m.get("gidMappings") or linux.get("gidMappings")
            if not uids or not gids:
                raise ConfigError("mounts: %s: idmap needs uidMappings/gidMappings (of the mount "
                                  "or of the container's user namespace)" % dest)
            # rbind clones the submounts too; only ridmap maps them as well
            step["idmap"] = {"uid_mappings": uids, "gid_mappings": gids,
                             "recursive": bool(flags & MS_REC), "map_recursive": "ridmap" in extras}
            step["desc"] = "idmapped bind mount %s to %s" % (src, dest)
        elif userns:
            # the init's credentials (the mapped root) may not reach the source: the
            # runtime clones it (pyruntime.idmap.prepare), the init moves it in
            step["host_clone"] = {"recursive": bool(flags & MS_REC)}
        steps.append(step)
        # A bind mount ignores every other flag until it is remounted.
        extra = flags & ~(MS_BIND | MS_REC | MS_REMOUNT)
        if extra:
            steps.append(_step("remount", "remount %s (%s)" % (dest, ",".join(m.get("options") or [])),
                               target=dest, flags=extra, keep=False))
        if flags & MS_REC and flags & MS_RDONLY and info["sys"]:
            # rootless' sysfs stand-in: the host's cgroupfs comes along under it, writable
            # once the container unmounts what covers it (CVE-2023-25809): ro all the way
            rset |= MOUNT_ATTR_RDONLY | _ms_to_attr(flags)
    else:
        if mtype == "cgroup":
            raise ConfigError("internal: cgroup mounts are planned by the cgroup manager")
        if mtype in ("proc", "sysfs", "mqueue", "devpts", "tmpfs", "cgroup2") or not src.startswith("/"):
            source = src or mtype
        else:
            source = src
        if mtype == "tmpfs" and not any(o.startswith("mode=") for o in m.get("options") or ()):
            # a tmpfs keeps its mountpoint's mode (runc and crun copy it), not 1777
            mode = facts["rootfs_modes"].get(dest)
            if mode is not None:
                data = (data + "," if data else "") + "mode=%o" % mode
        label = (linux or {}).get("mountLabel")
        if label and mtype not in ("proc", "sysfs", "cgroup", "cgroup2"):
            # SELinux context of the new filesystem (runc: label.FormatMountLabel)
            data = (data + "," if data else "") + 'context="%s"' % label
        step = _step("mount", "mount %s to %s" % (mtype or source, dest), source=source,
                     target=dest, fstype=mtype, flags=flags & ~MS_REMOUNT, data=data, mkdir=1)
        if mtype in FS_MAGIC:
            # The runtime writes below /proc after this (sysctl, oom_score_adj) and reads
            # /sys: an image must not make these mount points symlinks or shadow them
            # (CVE-2019-16884, CVE-2019-19921, CVE-2023-27561, CVE-2023-28642).
            step["no_symlinks"] = True
            step["fs_magic"] = FS_MAGIC[mtype]
        if mtype == "sysfs" and userns and not netns_new:
            # sysfs cannot be mounted in a new user namespace without a new network
            # namespace (EPERM): the host's /sys is bound instead (as crun and later runc
            # do; runc 1.1.5 fails), with its submounts, all made as restricted as the
            # sysfs mount asked, recursively (CVE-2023-25809)
            bind = dict(step, desc="bind mount /sys to %s (sysfs cannot be mounted)" % dest,
                        source="/sys", fstype="", flags=MS_BIND | MS_REC, data="")
            step["fallback_errnos"] = ["EPERM", "EBUSY"]
            step["fallback"] = [bind, _step(
                "setattr", "make the bound /sys and its submounts read-only", target=dest,
                attr_set=_ms_to_attr(flags) | MOUNT_ATTR_RDONLY, attr_clr=0, propagation=0,
                recursive=True)]
        steps.append(step)
    for p in prop:
        steps.append(_step("propagation", "set propagation of %s" % dest, target=dest, flags=p))
    if rset or rclr:
        steps.append(_step("setattr", "set recursive attributes of %s" % dest, target=dest,
                           attr_set=rset, attr_clr=rclr, propagation=0, recursive=True))
    if extras & {"idmap", "ridmap"} and not is_bind:
        raise ConfigError("mounts: %s: idmapped mounts are supported only for bind mounts" % dest)
    return steps


PROC_SUPER_MAGIC, SYSFS_MAGIC = 0x9FA0, 0x62656572
FS_MAGIC = {"proc": PROC_SUPER_MAGIC, "sysfs": SYSFS_MAGIC}
# Files below /proc that may be mounted over (what lxcfs emulates), as runc allows.
PROC_MOUNT_OK = {"/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
                 "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
                 "/proc/sys/kernel/ns_last_pid"}


def _check_proc_mount(dest, src, is_bind, facts):
    """runc's checkProcMount: nothing but procfs on /proc, nothing inside /proc except the
    lxcfs files: the runtime's own /proc writes must reach the container's procfs."""
    if dest == "/proc":
        if not src:
            return
        if is_bind and facts["sources"].get(src, {}).get("proc"):
            return
        raise ConfigError('mounts: "%s" cannot be mounted because it is not of type proc' % dest)
    if dest in PROC_MOUNT_OK:
        return
    raise ConfigError('mounts: "%s" cannot be mounted because it is inside /proc' % dest)


def _after_pivot(steps):
    """A /proc mount entry's steps, for an init that mounts them after the pivot: the
    procfs is made with fsopen and attached by fd (no /proc/self/fd to name it by yet),
    and a host source (lxcfs) is cloned by the runtime, the host being out of reach."""
    out = []
    for st in steps:
        st = dict(st)
        if st["op"] == "mount" and st.get("fstype") == "proc":
            flags = st["flags"]
            attrs = _ms_to_attr(flags)
            for ms, a in ((MS_NOATIME, MOUNT_ATTR_NOATIME), (MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
                          (MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
                          (MS_NOSYMFOLLOW, MOUNT_ATTR_NOSYMFOLLOW)):
                if flags & ms:
                    attrs |= a
            st["fsmount"] = {"attrs": attrs,
                             "options": [o for o in (st.get("data") or "").split(",") if o]}
        elif st["op"] == "mount" and st.get("flags", 0) & MS_BIND and not (
                st.get("idmap") or st.get("host_clone")):
            st["host_clone"] = {"recursive": bool(st["flags"] & MS_REC)}
        out.append(st)
    return out


def _ms_to_attr(flags):
    attr = 0
    for ms, a in ((MS_RDONLY, MOUNT_ATTR_RDONLY), (MS_NOSUID, MOUNT_ATTR_NOSUID),
                  (MS_NODEV, MOUNT_ATTR_NODEV), (MS_NOEXEC, MOUNT_ATTR_NOEXEC)):
        if flags & ms:
            attr |= a
    return attr


def build(config, bundle, cid, opts, facts, cgroup_mgr=None):
    """The whole plan `create` runs (and `pyruntime plan` prints). opts, the command's
    choices: no_pivot, no_new_keyring, preserve_fds, foreground (run: the runtime relays
    the process's stdio through pipes). facts: pyruntime.hostfacts.gather's, so that
    nothing here looks at the host. cgroup_mgr: the container's cgroup manager (what
    its cgroup mounts show)."""
    opts = opts or {}
    linux = config.get("linux") or {}
    process = config.get("process") or {}
    process = dict(process, env=process_env(process.get("env"), facts.get("home"),
                                            facts.get("listen_fds")))
    root = config.get("root") or {}
    rootfs = config.get("_rootfs") or os.path.join(bundle, root.get("path", "rootfs"))

    clone = []
    join = []
    seen = set()
    for ns in linux.get("namespaces") or ():
        t = ns.get("type")
        if t in seen:
            raise ConfigError("linux.namespaces: duplicate namespace %s" % t)
        seen.add(t)
        if ns.get("path"):
            join.append({"type": t, "path": ns["path"]})
        else:
            clone.append(t)
    join.sort(key=lambda j: JOIN_ORDER.index(j["type"]))
    has = seen.__contains__
    # A joined mount namespace gets the rootfs set up in it like a new one (runc does).
    # Without one the container inherits the runtime's: the rootfs is set up in there,
    # never touching the host's propagation, and entered by a plain chroot (delete
    # detaches it again).
    mntns = has("mount")
    if "cgroup" in clone:
        clone.remove("cgroup")
        unshare_cgroup = True
    else:
        unshare_cgroup = False
    userns = has("user")
    new_userns = "user" in clone
    netns_new = "network" in clone
    # An init that joins an existing pid namespace is visible there from its clone: a
    # neighbour with CAP_SYS_PTRACE could follow its rootfs fd, its cwd while it pivots or
    # its root up to the host. So the process that builds the root stays outside: it only
    # sets its pid_for_children (first step) and, once pivoted, forks the init there
    # (fork_init); the procfs, which belongs to the mounter's pid namespace, is mounted by
    # the init. A new user namespace has no right to enter a pid namespace owned by
    # another: that init still joins before its clone (its proc mount needs the same
    # right, so only a config without procfs gets that far).
    late_pid = next((j for j in join if j["type"] == "pid"), None) if not new_userns else None
    if late_pid is not None:
        join.remove(late_pid)
    late_steps = []
    keep_old_root = False
    plan = {
        "id": cid,
        "rootfs": rootfs,
        "namespaces": {"clone": clone, "join": join},
        "uid_mappings": linux.get("uidMappings") or [],
        "gid_mappings": linux.get("gidMappings") or [],
        "time_offsets": linux.get("timeOffsets") or {},
        "steps": [],
    }
    steps = plan["steps"]
    add = steps.append
    if late_pid is not None:
        add(_step("setns", "join the pid namespace %s (for the init, forked later)"
                  % late_pid["path"], type="pid", path=late_pid["path"]))
    if userns:
        # a joined one too: the host's root is nobody there, and files it made (a /dev
        # tmpfs's nodes, mount points) would have no owner in it (EOVERFLOW)
        add(_step("become_root", "become root in the user namespace"))
    if unshare_cgroup:
        # after the runtime put us in our cgroup, so that it becomes the namespace's root
        add(_step("unshare", "create the cgroup namespace", flags=NS_FLAGS["cgroup"]))
    if late_pid is None:
        add(_step("setsid", "create a new session"))
    if netns_new:
        add(_step("loopback_up", "bring up the loopback interface"))
    if not mntns:
        plan["host_rootfs_mount"] = rootfs
        add(_step("bind_rootfs", "bind mount the rootfs %s onto itself" % rootfs, path=rootfs,
                  parent=""))
    else:
        rprop = linux.get("rootfsPropagation")
        if rprop in ("unbindable", "runbindable"):
            # nothing below an unbindable / could be bound: the rootfs bind needs it
            # rslave first; / becomes unbindable after the pivot (below)
            rprop = None
        pflags = PROPAGATION.get(rprop, MS_SLAVE | MS_REC) if rprop else MS_SLAVE | MS_REC
        add(_step("root_propagation", "make / %s" % (rprop or "rslave"), flags=pflags | MS_REC
                  if rprop in ("shared", "slave", "private", "unbindable") else pflags))
        parent = ""
        if rprop in ("shared", "rshared"):
            # pivot_root refuses a new root whose parent mount is shared
            parent = facts["rootfs_parent_mount"]
        # In a new user namespace the mapped root may not reach the rootfs (a 0700
        # bundle dir): the runtime spawns the init with its cwd there, and the init
        # clones the tree from "." without a path lookup.
        add(_step("bind_rootfs", "bind mount the rootfs %s onto itself" % rootfs, path=rootfs,
                  parent=parent, from_cwd=new_userns and "mount" in clone and not parent
                  and not opts.get("no_pivot")))

    mounts = config.get("mounts") or []
    dev_bound = False
    cgroupns = "cgroup" in seen
    for m in mounts:
        dest = clean_dest("/" + m.get("destination", "").lstrip("/"))
        if dest == "/dev" and (m.get("type") == "bind" or "bind" in (m.get("options") or ())
                               or "rbind" in (m.get("options") or ())):
            dev_bound = True
        if m.get("type") == "cgroup":
            if cgroup_mgr is None:
                raise ConfigError("mounts: %s: cgroup mount needs the cgroup manager" % dest)
            steps.extend(cgroup_mgr.mount_steps(m, cgroupns))
            continue
        ms = mount_steps(m, bundle, userns, netns_new, facts, linux=linux)
        if late_pid is not None and (dest == "/proc" or dest.startswith("/proc/")):
            late_steps.extend(_after_pivot(ms))
        else:
            steps.extend(ms)

    dev_mounted = any(clean_dest("/" + m.get("destination", "").lstrip("/")) == "/dev" for m in mounts)
    # runc makes the default devices only when /dev is its own (not the host's)
    devices = []
    configured = {d.get("path") for d in linux.get("devices") or ()}
    if dev_mounted and not dev_bound:
        for path, typ, major, minor in DEFAULT_DEVICES:
            if path in configured:
                continue
            devices.append({"path": path, "type": typ, "major": major, "minor": minor,
                            "fileMode": 0o666, "uid": 0, "gid": 0})
    devices.extend(linux.get("devices") or ())
    for d in devices:
        path = clean_dest(d["path"])
        typ = d.get("type", "c")
        mode = d.get("fileMode")
        if mode is None:
            mode = 0o666
        if new_userns or userns:
            # mknod is not allowed in a user namespace: bind the host's node instead
            add(_step("bind_device", "bind mount device %s" % path, source=d["path"], target=path))
            continue
        fmt = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}.get(typ)
        if fmt is None:
            raise ConfigError("linux.devices: %s: invalid device type %r" % (path, typ))
        add(_step("mknod", "create device %s" % path, target=path, mode=fmt | (mode & 0o7777),
                  major=d.get("major", 0), minor=d.get("minor", 0),
                  uid=d.get("uid", 0) or 0, gid=d.get("gid", 0) or 0))
    if dev_mounted and not dev_bound:
        for target, link in DEV_SYMLINKS:
            add(_step("symlink", "symlink %s -> %s" % (link, target), linkname=link, target=target))
        if any(clean_dest(m.get("destination", "")) == "/dev/pts" for m in mounts):
            add(_step("symlink", "symlink /dev/ptmx -> pts/ptmx", linkname="/dev/ptmx", target="pts/ptmx"))

    cwd = process.get("cwd") or "/"
    if cwd.startswith("/") and cwd != "/":
        # runc makes a missing cwd (as root, before the pivot); never through a symlink out
        add(_step("mkdir", "create the working directory %s" % cwd, target=cwd))

    hooks = config.get("hooks") or {}
    if any(hooks.get(k) for k in ("prestart", "createRuntime", "createContainer")):
        add(_step("sync", "run createRuntime/createContainer hooks", tag="hooks"))

    if not mntns:
        add(_step("chroot", "chroot into the rootfs (no mount namespace)", plain=True))
    else:
        if opts.get("no_pivot"):
            add(_step("chroot", "move the rootfs to / and chroot (--no-pivot); stdio on an "
                      "outside /dev/null reopened on the container's"))
        else:
            # a procfs made in a mount namespace of a user namespace needs a visible one
            # in it: the forked init detaches the old root only after its proc mount
            keep_old_root = late_pid is not None and userns
            add(_step("pivot_root", "pivot_root into %s; stdio on an outside /dev/null "
                      "reopened on the container's" % rootfs,
                      **({"keep_old_root": True} if keep_old_root else {})))
    if late_pid is not None:
        add(_step("fork_init", "fork the init into the pid namespace %s" % late_pid["path"]))
        add(_step("setsid", "create a new session"))
        steps.extend(late_steps)
        if keep_old_root:
            add(_step("detach_old_root", "detach the old root"))

    if process.get("terminal"):
        cs = process.get("consoleSize") or {}
        add(_step("console", "set up the console", rows=cs.get("height", 0), cols=cs.get("width", 0),
                  dev_console=True))

    if config.get("hostname") is not None and config.get("hostname") != "":
        add(_step("sethostname", "sethostname %s" % config["hostname"], name=config["hostname"]))
    if config.get("domainname"):
        add(_step("setdomainname", "setdomainname %s" % config["domainname"], name=config["domainname"]))
    for key, val in (linux.get("sysctl") or {}).items():
        add(_step("write", "write sysctl %s" % key, path="/proc/sys/" + key.replace(".", "/"), data=str(val),
                  fs_magic=PROC_SUPER_MAGIC))
    for p in linux.get("readonlyPaths") or ():
        add(_step("readonly", "make %s read-only" % p, path=p))
    for p in linux.get("maskedPaths") or ():
        add(_step("mask", "mask %s" % p, path=p, data=""))
    if root.get("readonly"):
        add(_step("remount_root_ro", "remount the root read-only"))
    if mntns and linux.get("rootfsPropagation") in ("shared", "rshared", "unbindable",
                                                    "runbindable"):
        # last of the mounts: the console's, the readonly paths' and a masked file's binds
        # are of mounts below / ("runbindable" would make them fail with EINVAL)
        add(_step("propagation", "make / %s" % linux["rootfsPropagation"], target="/",
                  flags=PROPAGATION[linux["rootfsPropagation"]]))

    if process.get("oomScoreAdj") is not None:
        v = process["oomScoreAdj"]
        # Written by the runtime into /proc/<pid>/oom_score_adj (as runc does): the init,
        # non-dumpable and maybe in a user namespace, cannot open its own /proc files.
        plan["oom_score_adj"] = v
    if not opts.get("no_new_keyring"):
        add(_step("keyring", "join a new session keyring", name="_ses." + cid))
    for rl in process.get("rlimits") or ():
        t = rl.get("type")
        if t not in RLIMITS:
            raise ConfigError("process.rlimits: unknown rlimit type %s" % t)
        add(_step("rlimit", "setrlimit %s soft=%d hard=%d" % (t, rl.get("soft", 0), rl.get("hard", 0)),
                  resource=RLIMITS[t], soft=rl.get("soft", 0), hard=rl.get("hard", 0), name=t,
                  hint="a limit above the host's hard limit needs CAP_SYS_RESOURCE"))

    if process.get("terminal"):
        stdio = {"chown": 7}      # the console is on 0-2 by then
    elif opts.get("foreground"):
        # run in the foreground: pipes the runtime relays, not the caller's files
        stdio = {"pipes": True, "chown": 7}
    else:
        stdio = {"chown": facts.get("stdio_mask", 0)}
    steps.extend(process_steps(process, dict(opts, linux=linux, stdio=stdio), facts))
    if hooks.get("startContainer"):
        # in the container, after start, before the user's program (runc: with the
        # process's identity applied; before a no_new_privs seccomp filter)
        at = next(i for i, st in enumerate(steps) if st["op"] == "wait_start") + 1
        steps[at:at] = start_container_hook_steps(hooks["startContainer"], config, bundle, cid)
    if cgroup_mgr is not None:
        # The runtime places the init in its cgroup while the init sets up the rootfs (the
        # first write to a v1 cgroup.procs waits for an RCU grace period): the init waits
        # for it only where it matters, before a cgroup namespace is made, before hooks
        # run, and otherwise before it reports ready.
        at = None
        for tag_op in (("unshare", None), ("sync", "hooks"), ("ready", None)):
            for i, st in enumerate(steps):
                if st["op"] == tag_op[0] and (tag_op[1] is None or st.get("tag") == tag_op[1]):
                    at = i
                    break
            if at is not None:
                break
        # a realtime or deadline task may not join a cgroup without realtime bandwidth
        # (cgroup v1 cpu): the scheduler and its kin come only once the init is placed
        first_attr = next((i for i, st in enumerate(steps) if st["op"] in ATTRIBUTE_OPS), None)
        if first_attr is not None and first_attr < at:
            at = first_attr
        # the forked init inherits its builder's cgroup: placed before the fork
        if late_pid is not None:
            at = min(at, next(i for i, st in enumerate(steps) if st["op"] == "fork_init"))
        steps.insert(at, _step("sync", "wait for the runtime to place the init in its cgroup",
                               tag="cgroup"))
        # born there (clone3 CLONE_INTO_CGROUP) where one cgroup v2 dir is all it needs;
        # the executor falls back to a plain clone and the runtime's move if refused
        birth = cgroup_mgr.birth_dir() if facts.get("clone_into_cgroup", True) else None
        if birth:
            plan["clone_into_cgroup"] = birth
        # cgroup v1: the builder moves itself there first (one thread: no grace period)
        join = cgroup_mgr.join_files() if facts.get("clone_into_cgroup", True) else None
        if join:
            plan["cgroup_join"] = join
        plan["cgroup"] = {k: v for k, v in cgroup_mgr.to_state().items() if k != "created"}
    if facts.get("cgroup_replace"):
        from .rootless import cgroup_binds
        cgroup_binds(plan, facts["cgroup_replace"])
    return plan


def process_env(env, home, listen_fds):
    """The process's env as the runtime completes it: the socket-activation fds follow
    stdio and the process is told so (runc), and HOME (hostfacts.home_of) unless set."""
    env = list(env or ())
    if listen_fds:
        env += ["LISTEN_FDS=%d" % listen_fds, "LISTEN_PID=1"]
    if home is not None and not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + home)
    return env


def start_container_hook_steps(hook_list, config, bundle, cid):
    """"hook" steps; the state on stdin is runc's for startContainer ("created", the pid
    as the init sees it), split around the pid, which only the init knows."""
    from .fastjson import dumps  # the same text as json.dumps, without importing re/enum
    # a NUL cannot occur in an id, a path or (escaped) anywhere else: a safe placeholder
    from . import OCI_VERSION
    from .hooks import KILL_GROUP, OUTPUT_CAP, error_prefix
    state = {"ociVersion": OCI_VERSION, "id": cid, "status": "created", "pid": "\0", "bundle": bundle}
    if config.get("annotations"):
        state["annotations"] = config["annotations"]
    head, tail = dumps(state).split('"\\u0000"', 1)
    out = []
    for i, h in enumerate(hook_list):
        out.append(_step("hook", "run startContainer hook #%d %s" % (i, h.get("path")),
                         path=h.get("path"), args=list(h.get("args") or [h.get("path")]),
                         env=list(h["env"]) if h.get("env") is not None else None,
                         timeout=h.get("timeout") or 0, stdin_head=head, stdin_tail=tail,
                         error_prefix=error_prefix(i, "startContainer", h.get("path")),
                         output_cap=OUTPUT_CAP, kill_group=KILL_GROUP))
    return out


def _dedup_env(env):
    """One entry per name, the last value at the first one's place (runc's result): a
    process handed both would see the first, and `exec --env` could not override."""
    pos = {}
    out = []
    for kv in env:
        name = kv.partition("=")[0]
        if name in pos:
            out[pos[name]] = kv
        else:
            pos[name] = len(out)
            out.append(kv)
    return out


def process_steps(process, opts, facts, exec_mode=False):
    """The tail shared by create and exec: fds, identity, caps, cwd, seccomp, exec.
    opts: preserve_fds, stdio, linux; facts (hostfacts): listen_fds, pass_fds, last_cap,
    apparmor_exec, setgroups_denied, seccomp."""
    steps = []
    add = steps.append
    keep = int(opts.get("preserve_fds") or 0) + int(facts.get("listen_fds") or 0)
    # pass_fds: which of 3..3+keep-1 the caller really had open when the runtime started;
    # nothing the runtime opened itself may pass (its locked state dir, namespace fds)
    pass_fds = facts.get("pass_fds")
    if pass_fds is None:
        pass_fds = list(range(3, 3 + keep))
    add(_step("close_fds", "close inherited file descriptors", keep=keep,
              pass_fds=[fd for fd in pass_fds if 3 <= fd < 3 + keep]))
    # LSM labels, before identity and capabilities change, as runc applies them: each is a
    # write to the process's own /proc/self/attr (taking effect at execve). Where the host
    # lacks the LSM the write fails, with runc's words.
    if process.get("apparmorProfile"):
        aa = facts["apparmor_exec"]
        # runc's words: its exec has no "unable to apply apparmor profile" head
        add(_step("write", "%sapparmor failed to apply profile: write %s"
                  % ("" if exec_mode else "unable to apply apparmor profile: ", aa),
                  path=aa, data="exec " + process["apparmorProfile"],
                  fs_magic=PROC_SUPER_MAGIC))
    if process.get("selinuxLabel"):
        add(_step("write", "set the SELinux exec label: write /proc/self/attr/exec",
                  path="/proc/self/attr/exec", data=process["selinuxLabel"],
                  fs_magic=PROC_SUPER_MAGIC))
    user = process.get("user") or {}
    caps = process.get("capabilities") or {}
    unknown = []
    masks = {k: cap_mask(caps.get(k), unknown) for k in
             ("bounding", "effective", "permitted", "inheritable", "ambient")}
    last_cap = facts["last_cap"]
    for v in [user.get("uid", 0), user.get("gid", 0)] + list(user.get("additionalGids") or ()):
        # runc's range; above it 4294967295 is (uid_t)-1, which setresuid reads as
        # "unchanged": the process would keep the init's root identity
        if not 0 <= v <= MAX_ID:
            raise ConfigError("unable to start container process: unable to setup user: "
                              "uids and gids must be in range 0-%d" % MAX_ID)
    add(_step("identity", "set user %d:%d" % (user.get("uid", 0), user.get("gid", 0)),
              uid=user.get("uid", 0), gid=user.get("gid", 0),
              groups=[str(g) for g in user.get("additionalGids") or ()],
              caps=masks, last_cap=last_cap, setgroups_denied=bool(facts.get("setgroups_denied"))))
    cwd = process.get("cwd") or "/"
    add(_step("chdir", "chdir to %s" % cwd, path=cwd))
    add(_step("caps", "apply capabilities", caps=masks, last_cap=last_cap))
    seccomp_prog = facts.get("seccomp")
    nnp = bool(process.get("noNewPrivileges"))
    if seccomp_prog is not None and not nnp:
        # Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which may be
        # gone after capabilities are applied: runc loads it earlier in that case too.
        # Still after close_fds: the filter may deny close_range, and the runtime's fds
        # (its locked state dir) must be gone whatever the filter allows.
        steps.insert(1, _step("seccomp", "load the seccomp filter", **seccomp_prog))
    if nnp:
        add(_step("no_new_privs", "set no_new_privs"))
    umask = user.get("umask")
    add(_step("umask", "set umask %04o" % (0o022 if umask is None else umask),
              mask=0o022 if umask is None else umask))
    args = process.get("args") or []
    env = _dedup_env(process.get("env") or ())
    add(_step("lookup", "find %s" % (args[0] if args else "?"), args=args, env=env))
    if seccomp_prog is not None and nnp and seccomp_prog.get("notify"):
        add(_step("seccomp", "load the seccomp filter", **seccomp_prog))
    if not exec_mode:
        add(_step("ready", "signal the runtime that the container is created"))
        add(_step("wait_start", "wait for start"))
    if seccomp_prog is not None and nnp and not seccomp_prog.get("notify"):
        add(_step("seccomp", "load the seccomp filter", **seccomp_prog))
    if exec_mode:
        add(_step("ready", "signal the runtime that the process is set up"))
    add(_step("exec", "exec %s" % (args[0] if args else "?"), args=args, env=env))
    # scheduler, I/O priority, memory policy and personality first: while the process
    # still has every capability (CAP_SYS_NICE, CAP_SYS_ADMIN) and no seccomp filter
    steps[0:0] = attribute_steps(process, (opts or {}).get("linux") or {})
    aff = process.get("execCPUAffinity") or {}
    if exec_mode and aff.get("initial"):
        cpu_mask(aff["initial"], "process.execCPUAffinity.initial")  # the runtime sets it
    if exec_mode and (aff.get("initial") or aff.get("final")):
        # last, after any cgroup move (a cpuset move resets the affinity); without "final"
        # the cgroup's own CPUs, undoing "initial"
        final = aff.get("final") or ""
        at = max(i for i, st in enumerate(steps) if st["op"] == "exec")
        steps.insert(at, _step("affinity", "set the CPU affinity to %s (process.execCPUAffinity."
                               "final)" % (final or "the container's CPUs"),
                               mask=cpu_mask(final, "process.execCPUAffinity.final") if final else 0))
    if unknown:
        steps[0]["warnings"] = ["unknown capabilities ignored: %s" % ", ".join(unknown)]
    stdio = opts.get("stdio") or {}
    if stdio.get("pipes") or stdio.get("chown"):
        # first: before close_fds, and before a seccomp filter could refuse the fchown;
        # "pipes": the runtime's relay pipes go on 0-2 (their fds travel beside the plan)
        steps.insert(0, _step("dup_stdio", "set up the process's stdio",
                              pipes=bool(stdio.get("pipes")),
                              uid=user.get("uid", 0), chown=stdio.get("chown", 0)))
    return steps


# OCI 1.3 process/linux attributes -> kernel values
ATTRIBUTE_OPS = ("sched", "ioprio", "mempolicy", "personality")
SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
MPOL_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2, "MPOL_INTERLEAVE": 3,
              "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5, "MPOL_WEIGHTED_INTERLEAVE": 6}
MPOL_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
              "MPOL_F_NUMA_BALANCING": 1 << 13}
PERSONALITY_DOMAINS = {"LINUX": 0x0000, "LINUX32": 0x0008}
MAX_CPUS = 8192      # the kernel's largest NR_CPUS
MAX_NUMA_NODES = 1024  # and MAX_NUMNODES


def parse_list(text, field, limit):
    """"0-3,7" -> bit mask; the cpuset list syntax the spec uses for CPUs and NUMA nodes."""
    mask = 0
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
            if not lo.isdigit() or (sep and not hi.isdigit()):
                raise ValueError
        except ValueError:
            raise ConfigError("%s: invalid list %r" % (field, text))
        if a > b:
            raise ConfigError("%s: invalid range %r in %r" % (field, part, text))
        if b >= limit:
            raise ConfigError("%s: %d is out of range (at most %d)" % (field, b, limit - 1))
        mask |= ((1 << (b - a + 1)) - 1) << a
    return mask


def cpu_mask(text, field):
    mask = parse_list(text, field, MAX_CPUS)
    if not mask:
        raise ConfigError("%s: no CPU in %r" % (field, text))
    return mask


def attribute_steps(process, linux):
    """sched_setattr, ioprio_set, set_mempolicy, personality: decided here, performed by
    the init (and by an exec'd process: process.* only) before it execs."""
    out = []
    sch = process.get("scheduler")
    if sch:
        policy = sch.get("policy")
        if policy not in SCHED_POLICIES:
            raise ConfigError("process.scheduler.policy: %s is not supported by the kernel"
                              % policy)
        flags = 0
        for f in sch.get("flags") or ():
            if f not in SCHED_FLAGS:
                raise ConfigError("process.scheduler.flags: unknown flag %s" % f)
            flags |= SCHED_FLAGS[f]
        out.append(_step("sched", "set the scheduler to %s (process.scheduler)" % policy,
                         policy=SCHED_POLICIES[policy], flags=flags, nice=sch.get("nice", 0),
                         priority=sch.get("priority", 0), runtime=sch.get("runtime", 0),
                         deadline=sch.get("deadline", 0), period=sch.get("period", 0),
                         hint="a realtime policy needs CAP_SYS_NICE and realtime bandwidth "
                              "in the container's cpu cgroup: linux.resources.cpu."
                              "realtimeRuntime"))
    io = process.get("ioPriority")
    if io:
        cls = io.get("class")
        if cls not in IOPRIO_CLASSES:
            raise ConfigError("process.ioPriority.class: unknown class %s" % cls)
        prio = io.get("priority", 0)
        if not isinstance(prio, int) or isinstance(prio, bool) or not 0 <= prio <= 7:
            raise ConfigError("process.ioPriority.priority: %r is not in 0-7" % (prio,))
        out.append(_step("ioprio", "set the I/O priority to %s %d (process.ioPriority)"
                         % (cls, prio), value=(IOPRIO_CLASSES[cls] << 13) | prio))
    mp = linux.get("memoryPolicy")
    if mp:
        mode = mp.get("mode")
        if mode not in MPOL_MODES:
            raise ConfigError("linux.memoryPolicy.mode: unknown mode %s" % mode)
        nodes = parse_list(mp.get("nodes") or "", "linux.memoryPolicy.nodes", MAX_NUMA_NODES)
        if mode in ("MPOL_DEFAULT", "MPOL_LOCAL") and nodes:
            raise ConfigError("linux.memoryPolicy.nodes: must be empty for %s" % mode)
        if mode not in ("MPOL_DEFAULT", "MPOL_LOCAL", "MPOL_PREFERRED") and not nodes:
            raise ConfigError("linux.memoryPolicy.nodes: %s needs at least one node" % mode)
        flags = 0
        for f in mp.get("flags") or ():
            if f not in MPOL_FLAGS:
                raise ConfigError("linux.memoryPolicy.flags: unknown flag %s" % f)
            flags |= MPOL_FLAGS[f]
        if flags & MPOL_FLAGS["MPOL_F_STATIC_NODES"] and flags & MPOL_FLAGS["MPOL_F_RELATIVE_NODES"]:
            raise ConfigError("linux.memoryPolicy.flags: MPOL_F_STATIC_NODES and "
                              "MPOL_F_RELATIVE_NODES are mutually exclusive")
        out.append(_step("mempolicy", "set the memory policy %s %s (linux.memoryPolicy)"
                         % (mode, mp.get("nodes") or ""), mode=MPOL_MODES[mode] | flags,
                         mask=nodes))
    pers = linux.get("personality")
    if pers:
        dom = pers.get("domain")
        if dom is None:
            raise ConfigError("linux.personality.domain: required")
        if dom not in PERSONALITY_DOMAINS:
            raise ConfigError("linux.personality.domain: unknown domain %s" % dom)
        if pers.get("flags"):
            # the spec defines no flag yet
            raise ConfigError("linux.personality.flags: unsupported flags %s"
                              % ", ".join(map(str, pers["flags"])))
        out.append(_step("personality", "set the personality %s (linux.personality)" % dom,
                         value=PERSONALITY_DOMAINS[dom]))
    return out


def digest(plan):
    """sha256 of the plan's canonical JSON (bytes as hex): `create --debug` logs the
    digest of the plan it runs, `plan --debug` of the plan it prints; they must match."""
    import hashlib
    import json

    def enc(o):
        if isinstance(o, (bytes, bytearray)):
            return bytes(o).hex()
        raise TypeError(repr(o))
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"), default=enc)
    return hashlib.sha256(text.encode()).hexdigest()
