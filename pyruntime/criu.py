"""checkpoint and restore through criu, driven as runc drives it: `criu swrk` and criu's
RPC messages (criu's own `rpc_pb2`, from Debian's `criu` package), never its command line.

Only the checkpoint and restore commands import this module: protobuf and criu's
messages cost tens of milliseconds that no other command should pay.

What runc does, and so what is done here (facts from runc's libcontainer criu code):
- dump: criu is given the init's pid, the rootfs as its root, the container's cgroup
  freezer (v1) or cgroup (v2) to freeze with, the bind mounts (and v1's cgroup binds,
  masked files, device nodes) as external mounts keyed by their container path, a
  network or pid namespace the config names by path as external (`extRootNetNS`,
  `extRootPidNS`), and notify scripts on. The init's fds 0-2 as criu will see them go to
  `descriptors.json` in the image directory, so a restore can hand new pipes for them.
  Without --leave-running (and --pre-dump) the container is destroyed afterwards.
- restore: a new state directory under the given id (the checkpointed one may be gone),
  the container's cgroups made from the bundle's config with criu swrk placed in them
  (criu restores the tree where it stands, given as its cgroup root), the rootfs
  bind-mounted at <state dir>/criu-root as criu's root, external mounts mapped to their
  sources, pipes of descriptors.json mapped to the runtime's own stdio, external
  namespaces handed as inherited fds, the tree restored as the runtime's child
  (rst_sibling), and a pseudo-terminal master criu makes anew (orphan_pts_master) sent
  to --console-socket."""
import os
import socket

from . import state as st
from .errors import InvalidState, RuntimeErr

DIST = "/usr/lib/python3/dist-packages"   # Debian's criu package puts pycriu here
CRIU_CONFIG = "/etc/criu/runc.conf"       # runc's default; criu reads it if present
DESCRIPTORS = "descriptors.json"
CG_MODES = {"": 0, "ignore": 0, "soft": 3, "full": 4, "strict": 5}   # criu_cg_mode; "" = DEFAULT
NS_FLAGS = {"mount": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "user": 0x10000000,
            "pid": 0x20000000, "network": 0x40000000, "cgroup": 0x02000000}
MS_BIND, MS_REC, MNT_DETACH = 0x1000, 0x4000, 2


def rpc():
    """criu's RPC messages. The runtime's interpreter need not be Debian's, but the
    messages and protobuf runtime of Debian's criu package are pure data and an ABI-stable
    extension: the dist-packages directory is on the path only while they are imported."""
    try:
        from pycriu import rpc_pb2
        return rpc_pb2
    except ImportError:
        pass
    import sys
    added = DIST not in sys.path
    if added:
        sys.path.append(DIST)
    try:
        from pycriu import rpc_pb2
        return rpc_pb2
    except ImportError as e:
        raise RuntimeErr("checkpoint/restore needs criu's Python RPC messages (pycriu.rpc_pb2, "
                         "Debian package criu with python3-protobuf): %s" % e) from None
    finally:
        if added:
            try:
                sys.path.remove(DIST)
            except ValueError:
                pass


class Swrk:
    """One `criu swrk` and its RPC socket."""

    def __init__(self, criu, pass_fds=(), stdio=(None, None, None)):
        import subprocess
        self.pb = rpc()
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.proc = subprocess.Popen(
                [criu, "swrk", str(b.fileno())], pass_fds=(b.fileno(),) + tuple(pass_fds),
                stdin=stdio[0], stdout=stdio[1], stderr=stdio[2], close_fds=True)
        except OSError as e:
            a.close()
            raise RuntimeErr("cannot run criu (%s): %s" % (criu, e.strerror)) from None
        finally:
            b.close()
        self.sock = a
        self.pid = self.proc.pid

    def call(self, req, on_notify=None):
        """Send req, answer criu's notifications, return its final response."""
        pb = self.pb
        self.sock.sendall(req.SerializeToString())
        while True:
            data, anc, _flags, _addr = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(16 * 4))
            fds = []
            for level, typ, cdata in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    n = len(cdata) // 4
                    fds.extend(int.from_bytes(cdata[i * 4:i * 4 + 4], "little") for i in range(n))
            if not data:
                for fd in fds:
                    os.close(fd)
                return None   # criu died without a word
            resp = pb.criu_resp()
            resp.ParseFromString(data)
            if resp.type != pb.NOTIFY or not resp.success:
                for fd in fds:
                    os.close(fd)
                return resp
            try:
                if on_notify is not None:
                    on_notify(resp.notify.script, resp.notify.pid, fds)
            finally:
                for fd in fds:
                    os.close(fd)
            ack = pb.criu_req()
            ack.type = pb.NOTIFY
            ack.notify_success = True
            self.sock.sendall(ack.SerializeToString())

    def close(self):
        self.sock.close()
        try:
            return self.proc.wait(60)
        except Exception:
            self.proc.kill()
            return self.proc.wait()


def _errors_of(log):
    """criu's own words: the first and last Error lines of its log, trimmed."""
    try:
        with open(log, errors="replace") as f:
            lines = [ln.strip() for ln in f if "Error" in ln]
    except OSError:
        return ""
    if not lines:
        return ""

    def trim(ln):
        # "(00.012345) Error (criu/vdso.c:381): vdso: ..." -> "vdso: ..."
        if "): " in ln:
            ln = ln.split("): ", 1)[1]
        return ln
    pick = [trim(lines[0])]
    if len(lines) > 1 and trim(lines[-1]) != pick[0]:
        pick.append(trim(lines[-1]))
    return "; ".join(pick)


def check(criu):
    """criu's own check of this kernel (RPC CHECK), before anything is touched: -> None,
    or raises one line saying why criu cannot work here."""
    import tempfile
    with tempfile.TemporaryDirectory(prefix="pyrt-criu-check-") as d:
        wfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            w = Swrk(criu, pass_fds=(wfd,))
            pb = w.pb
            req = pb.criu_req()
            req.type = pb.CHECK
            req.opts.images_dir_fd = wfd
            req.opts.work_dir_fd = wfd
            req.opts.log_file = "check.log"
            req.opts.log_level = 4
            try:
                resp = w.call(req)
            finally:
                w.close()
        finally:
            os.close(wfd)
        if resp is not None and resp.success:
            return
        why = _errors_of(os.path.join(d, "check.log")) or "criu check failed"
    raise RuntimeErr("criu cannot checkpoint/restore on this host (criu check: %s)" % why)


def _fail(what, resp, logdir, logfile):
    why = _errors_of(os.path.join(logdir, logfile))
    if resp is None:
        head = "criu failed: it exited without an answer"
    else:
        head = "criu failed: type %s errno %d" % (
            rpc().criu_req_type.Name(resp.type), resp.cr_errno)
    return RuntimeErr("%s: %s%s (log: %s)" % (what, head, ": " + why if why else "",
                                              os.path.join(logdir, logfile)))


def _work_dir(o, work_path, keep):
    """--work-path: criu's logs and work files go there instead of beside the images
    (the fd is kept open until criu has answered). Returns it, or None."""
    if not work_path:
        return None
    os.makedirs(work_path, 0o700, exist_ok=True)
    wdir = os.open(work_path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    keep.append(wdir)
    o.work_dir_fd = wdir
    return work_path


def _config_file(opts, annotations):
    # runc: annotation org.criu.config names another criu config file ("" = none)
    if "org.criu.config" in (annotations or {}):
        if annotations["org.criu.config"]:
            opts.config_file = annotations["org.criu.config"]
    else:
        opts.config_file = CRIU_CONFIG


def _cg_mode(mode):
    if mode not in CG_MODES:
        raise RuntimeErr("invalid manage-cgroups-mode value")
    return CG_MODES[mode]


def empty_ns_flags(names):
    f = 0
    for n in names or ():
        if n not in NS_FLAGS:
            raise RuntimeErr('namespace "%s" is not supported' % n)
        f |= NS_FLAGS[n]
    return f


def _is_bind(m):
    return m.get("type") == "bind" or any(o in ("bind", "rbind") for o in m.get("options") or ())


def _clean_dest(dest):
    return "/" + "/".join(p for p in dest.split("/") if p and p != ".")


def _ext_ns_path(config, kind):
    for n in (config.get("linux") or {}).get("namespaces") or ():
        if n.get("type") == kind:
            return n.get("path") or ""
    return ""


def _cgroup_binds(mgr, config):
    """v1 without a cgroup namespace: the cgroup mount is a set of binds of the
    container's own cgroup dirs -> [(container path, host dir)]."""
    if mgr is None or getattr(mgr, "driver", None) == "v2" or mgr.mode == "unified":
        return []
    linux = config.get("linux") or {}
    cgroupns = any(n.get("type") == "cgroup" for n in linux.get("namespaces") or ())
    if cgroupns:
        return []
    out = []
    for m in config.get("mounts") or ():
        if m.get("type") != "cgroup":
            continue
        for s in mgr.mount_steps(m, cgroupns):
            if s.get("op") == "mount" and s.get("flags", 0) & MS_BIND:
                out.append((_clean_dest(s["target"]), s["source"]))
    return out


# ---- checkpoint ------------------------------------------------------------------------

def image_paths(image_path, parent_path):
    """runc: --image-path defaults to ./checkpoint; --parent-path is relative to it and
    must be a directory. -> (image dir, parent, made) where made is the image dir if this
    call created it."""
    image_path = os.path.abspath(image_path or "checkpoint")
    made = None
    if not os.path.isdir(image_path):
        parent = os.path.dirname(image_path)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o700, exist_ok=True)
        os.mkdir(image_path, 0o700)
        made = image_path
    if parent_path:
        if os.path.isabs(parent_path):
            raise RuntimeErr("--parent-path must be relative")
        real = os.path.join(image_path, parent_path)
        if not os.path.isdir(real):
            why = "not a directory" if os.path.exists(real) else "no such file or directory"
            raise RuntimeErr("invalid --parent-path: stat %s: %s" % (real, why))
    return image_path, parent_path, made


def checkpoint(rt, cid, criu="criu", image_path=None, work_path=None, parent_path=None,
               leave_running=False, tcp_established=False, ext_unix_sk=False,
               shell_job=False, file_locks=False, pre_dump=False, manage_cgroups_mode="",
               empty_ns=(), auto_dedup=False, lazy_pages=False, status_fd=-1,
               page_server=None, tcp_skip_in_flight=False, link_remap=False):
    cg_mode = _cg_mode(manage_cgroups_mode or "")
    ens = empty_ns_flags(empty_ns)
    c = rt.load(cid, lock=True)
    destroy = False
    try:
        status = c.status()
        if status not in ("running", "paused"):
            raise InvalidState("Container cannot be checkpointed in %s state" % status)
        check(criu)
        config = c.config()
        images, parent, made = image_paths(image_path, parent_path)
        try:
            _dump(c, config, criu, images, work_path, parent, cg_mode, ens, pre_dump,
                  dict(leave_running=leave_running, tcp_established=tcp_established,
                       ext_unix_sk=ext_unix_sk, shell_job=shell_job, file_locks=file_locks,
                       auto_dedup=auto_dedup, lazy_pages=lazy_pages,
                       tcp_skip_in_flight=tcp_skip_in_flight, link_remap=link_remap),
                  status_fd, page_server)
        except BaseException:
            if made is not None and work_path:
                # the image dir this call made holds nothing useful (the log is elsewhere)
                import shutil
                shutil.rmtree(made, ignore_errors=True)
            raise
        destroy = not leave_running and not pre_dump
    finally:
        if c.dirfd is not None:
            os.close(c.dirfd)
            c.dirfd = None
    if destroy:
        # runc destroys a checkpointed container (its processes are gone): its id is
        # free for the restore
        try:
            rt.delete(cid, force=True)
        except RuntimeErr as e:
            rt._warn(str(e))


def _dump(c, config, criu, images, work_path, parent, cg_mode, ens, pre_dump, flags,
          status_fd, page_server):
    pb = rpc()
    pid = c.pid
    idir = os.open(images, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    wdir = None
    keep = [idir]
    try:
        req = pb.criu_req()
        req.type = pb.PRE_DUMP if pre_dump else pb.DUMP
        o = req.opts
        o.images_dir_fd = idir
        o.log_level = 4
        o.log_file = "dump.log"
        o.root = c.data.get("rootfs") or config.get("root", {}).get("path", "")
        o.manage_cgroups = True
        o.manage_cgroups_mode = cg_mode
        o.notify_scripts = True
        o.pid = pid
        o.orphan_pts_master = True
        o.empty_ns = ens
        for k, v in flags.items():
            setattr(o, k, bool(v))
        logdir = _work_dir(o, work_path, keep) or images
        _config_file(o, config.get("annotations"))
        for kind, key in (("network", "extRootNetNS"), ("pid", "extRootPidNS")):
            path = _ext_ns_path(config, kind)
            if path:
                try:
                    ino = os.stat(path).st_ino
                except OSError as e:
                    raise RuntimeErr("%s namespace %s: %s" % (kind, path, e.strerror)) from None
                o.external.append("%s[%d]:%s" % ("net" if kind == "network" else kind, ino, key))
        mgr = None
        if c.data.get("cgroup"):
            from . import cgroups
            mgr = cgroups.from_state(c.data["cgroup"])
            # criu freezes with the cgroup freezer (v1) or cgroup.freeze (v2), not ptrace
            fcg = mgr.paths.get("" if mgr.mode == "unified" else "freezer")
            if fcg:
                o.freeze_cgroup = fcg
        if page_server:
            host, _, port = page_server.rpartition(":")
            if not host or not port.isdigit():
                raise RuntimeErr("Use --page-server ADDRESS:PORT to specify page server")
            o.ps.address = host
            o.ps.port = int(port)
        if parent:
            o.parent_img = parent
            o.track_mem = True
        if flags.get("lazy_pages") and status_fd >= 0:
            o.status_fd = status_fd
            keep.append(status_fd)
        if not pre_dump:
            root = o.root
            for m in config.get("mounts") or ():
                if _is_bind(m):
                    d = _clean_dest(m["destination"])
                    o.ext_mnt.add(key=d, val=d)
            for d, _src in _cgroup_binds(mgr, config):
                o.ext_mnt.add(key=d, val=d)
            for p in (config.get("linux") or {}).get("maskedPaths") or ():
                try:
                    import stat
                    if stat.S_ISDIR(os.stat("/proc/%d/root/%s" % (pid, p.lstrip("/"))).st_mode):
                        continue
                except OSError:
                    continue
                o.ext_mnt.add(key=p, val="/dev/null")
            for dev in (config.get("linux") or {}).get("devices") or ():
                d = _clean_dest(dev["path"])
                o.ext_mnt.add(key=d, val=d)
            fds = []
            for i in range(3):
                try:
                    fds.append(os.readlink("/proc/%d/fd/%d" % (pid, i)))
                except OSError:
                    fds.append("/dev/null")
            from . import fastjson
            st.write_atomic(os.path.join(images, DESCRIPTORS), fastjson.dumps(fds).encode())
            del root

        def on_notify(script, npid, fds):
            if script == "status-ready" and status_fd >= 0:
                try:
                    os.write(status_fd, b"\0")
                except OSError:
                    pass

        w = Swrk(criu, pass_fds=tuple(keep))
        try:
            resp = w.call(req, on_notify)
        finally:
            rc = w.close()
        if resp is None or not resp.success:
            raise _fail("checkpoint", resp, logdir, "dump.log")
        # pre-dump: criu waits for more requests; it was stopped by closing its socket
        if rc != 0 and not pre_dump:
            raise RuntimeErr("checkpoint: criu failed: exit status %d" % rc)
    finally:
        for fd in (idir, wdir):
            if fd is not None:
                os.close(fd)


# ---- restore ---------------------------------------------------------------------------

def _libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def _mount_bind(src, dst):
    import ctypes
    libc = _libc()
    if libc.mount(os.fsencode(src), os.fsencode(dst), None, MS_BIND | MS_REC, None) != 0:
        e = ctypes.get_errno()
        raise RuntimeErr("bind %s to %s: %s" % (src, dst, os.strerror(e)))


def _umount(path):
    _libc().umount2(os.fsencode(path), MNT_DETACH)


def _prepare_mountpoints(rootfs, config):
    """runc makes the config's mountpoints in the rootfs before criu restores (a fresh
    rootfs may lack them); those on a tmpfs of the config come back with the tmpfs.
    Resolved inside the rootfs: the image's symlinks never lead out."""
    from .executor import open_in_root
    mounts = config.get("mounts") or ()
    tmpfs = [_clean_dest(m["destination"]) for m in mounts if m.get("type") == "tmpfs"]
    for m in mounts:
        if m.get("type") in ("cgroup", "cgroup2"):
            continue
        dest = _clean_dest(m["destination"])
        if dest == "/" or any(dest.startswith(t + "/") for t in tmpfs):
            continue
        want_file = False
        if _is_bind(m):
            src = m.get("source") or ""
            want_file = os.path.exists(src) and not os.path.isdir(src)
        parts = [p for p in dest.split("/") if p]
        cur = "/"
        for i, p in enumerate(parts):
            nxt = cur.rstrip("/") + "/" + p
            try:
                fd = open_in_root(rootfs, nxt, os.O_PATH)
                os.close(fd)
            except OSError as e:
                if e.errno != 2:
                    break
                try:
                    pfd = open_in_root(rootfs, cur, os.O_PATH | os.O_DIRECTORY)
                except OSError:
                    break
                try:
                    if i == len(parts) - 1 and want_file:
                        os.close(os.open(p, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o755,
                                         dir_fd=_reopen_dir(pfd)))
                    else:
                        os.mkdir(p, 0o755, dir_fd=_reopen_dir(pfd))
                except OSError:
                    break
                finally:
                    os.close(pfd)
            cur = nxt


_dirs = []


def _reopen_dir(pfd):
    # an O_PATH fd cannot be a dir_fd for mkdir on every kernel: reopen it as a directory
    fd = os.open("/proc/self/fd/%d" % pfd, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    _dirs.append(fd)
    return fd


def _close_dirs():
    while _dirs:
        os.close(_dirs.pop())


def restore(rt, cid, bundle, criu="criu", image_path=None, work_path=None, detach=False,
            pid_file=None, console_socket=None, no_subreaper=False, no_pivot=False,
            tcp_established=False, ext_unix_sk=False, shell_job=False, file_locks=False,
            manage_cgroups_mode="", empty_ns=(), auto_dedup=False, lazy_pages=False,
            lsm_profile=None, lsm_mount_context=None):
    """Restore the checkpoint at image_path as container cid. -> exit status (0 when
    detached)."""
    from .launch import ConsoleSender as _ConsoleSender, write_pid_file as _write_pid_file
    from .state import now_rfc3339 as _now_rfc3339, record_cgroups as _record_cgroups
    from .ids import validate
    from . import config as config_mod, fastjson
    validate(cid)
    cg_mode = _cg_mode(manage_cgroups_mode or "")
    ens = empty_ns_flags(empty_ns)
    images = os.path.abspath(image_path or "checkpoint")
    if not os.path.isdir(images):
        raise RuntimeErr("invalid directory to restore checkpoint: %s" % images)
    bundle = os.path.abspath(bundle or ".")
    config = config_mod.load(bundle)
    process = config.get("process") or {}
    if process.get("terminal") and not console_socket:
        raise RuntimeErr("cannot allocate tty if runc will detach without setting console socket"
                         if detach else
                         "restore of a terminal container needs --console-socket")
    try:
        with open(os.path.join(images, DESCRIPTORS), "rb") as f:
            descriptors = fastjson.loads(f.read())
    except (OSError, ValueError) as e:
        raise RuntimeErr("%s: %s" % (os.path.join(images, DESCRIPTORS),
                                     getattr(e, "strerror", None) or e)) from None
    check(criu)
    st.ensure_root(rt.root)
    path = os.path.join(rt.root, cid)
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise RuntimeErr("container with given ID already exists") from None
    except OSError as e:
        raise RuntimeErr("unable to create the state directory %s: %s"
                         % (path, st._strerror(e))) from None
    dirfd = st.lock_dir(path)
    cr_start, _ = st.proc_start_time(os.getpid())
    linux = config.get("linux") or {}
    c = st.Container(rt.root, cid, {
        "ociVersion": "1.3.0", "id": cid, "status": "creating", "pid": 0,
        "bundle": bundle, "rootfs": config["_rootfs"], "created": _now_rfc3339(),
        "owner": "", "annotations": config.get("annotations") or {},
        "creator_pid": os.getpid(), "creator_start": cr_start,
        "hooks": {k: v for k, v in (config.get("hooks") or {}).items()
                  if k in ("poststart", "poststop") and v},
        "restored": True,
    })
    mgr = None
    w = None
    mounted = None
    keep = []
    restored = {}
    try:
        c.save()
        st.write_atomic(os.path.join(path, "config.json"),
                        fastjson.dumps({k: v for k, v in config.items()
                                        if not k.startswith("_")}).encode())
        if rt._needs_cgroup(config):
            from . import cgroups
            mgr = cgroups.new(cid, linux.get("cgroupsPath"), linux.get("resources"),
                              systemd=rt.systemd_cgroup, rootless=rt._is_rootless(),
                              linux_devices=linux.get("devices"),
                              annotations=config.get("annotations"))
            _record_cgroups(c, mgr, mgr.intent())
        pb = rpc()
        req = pb.criu_req()
        req.type = pb.RESTORE
        o = req.opts
        idir = os.open(images, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        keep.append(idir)
        o.images_dir_fd = idir
        o.evasive_devices = True
        o.log_level = 4
        o.log_file = "restore.log"
        o.rst_sibling = True
        o.manage_cgroups = True
        o.manage_cgroups_mode = cg_mode
        o.notify_scripts = True
        o.shell_job = shell_job
        o.ext_unix_sk = ext_unix_sk
        o.tcp_established = tcp_established
        o.file_locks = file_locks
        o.empty_ns = ens
        o.orphan_pts_master = True
        o.auto_dedup = auto_dedup
        o.lazy_pages = lazy_pages
        if lsm_profile:
            o.lsm_profile = lsm_profile
        if lsm_mount_context:
            o.lsm_mount_context = lsm_mount_context
        logdir = _work_dir(o, work_path, keep) or images
        _config_file(o, config.get("annotations"))
        for n in linux.get("namespaces") or ():
            npath = n.get("path")
            if not npath:
                continue
            kind = n.get("type")
            if kind in ("network", "pid"):
                try:
                    nfd = os.open(npath, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    raise RuntimeErr("Requested %s namespace %s does not exist" % (
                        kind, npath)) from None
                keep.append(nfd)
                o.inherit_fd.add(key="extRootNetNS" if kind == "network" else "extRootPidNS",
                                 fd=nfd)
            elif kind == "cgroup":
                raise RuntimeErr("Do not know how to handle namespace cgroup")
            else:
                o.join_ns.add(ns={"mount": "mnt"}.get(kind, kind), ns_file=npath)
        # criu's root must be a mount point whose parent is not overmounted
        croot = os.path.join(path, "criu-root")
        os.mkdir(croot, 0o755)
        _prepare_mountpoints(config["_rootfs"], config)
        _close_dirs()
        _mount_bind(config["_rootfs"], croot)
        mounted = croot
        o.root = croot
        for m in config.get("mounts") or ():
            if _is_bind(m):
                src = m.get("source") or ""
                if not src.startswith("/"):
                    src = os.path.join(bundle, src)
                o.ext_mnt.add(key=_clean_dest(m["destination"]), val=src)
        for d, src in _cgroup_binds(mgr, config):
            o.ext_mnt.add(key=d, val=src)
        if linux.get("maskedPaths"):
            o.ext_mnt.add(key="/dev/null", val="/dev/null")
        for dev in linux.get("devices") or ():
            d = _clean_dest(dev["path"])
            o.ext_mnt.add(key=d, val=d)
        for i, s in enumerate(descriptors if isinstance(descriptors, list) else ()):
            if isinstance(s, str) and "pipe:" in s:
                o.inherit_fd.add(key=s, fd=i)
        if not no_subreaper and not detach:
            _libc().prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
        w = Swrk(criu, pass_fds=tuple(keep))
        if mgr is not None:
            # criu restores the tree into the cgroup it stands in (its cgroup root)
            intent = mgr.intent()
            try:
                mgr.create()
            finally:
                if mgr.created != intent:
                    _record_cgroups(c, mgr)
            mgr.apply()
            mgr.add_pid(w.pid)
            with open("/proc/%d/cgroup" % w.pid) as f:
                for line in f:
                    _h, ctrl, cgpath = line.rstrip("\n").split(":", 2)
                    if ctrl.startswith("name="):
                        continue
                    cr = o.cg_root.add(path=cgpath)
                    if ctrl:
                        cr.ctrl = ctrl
        hooks = config.get("hooks") or {}
        console = _ConsoleSender(console_socket) if console_socket else None

        def on_notify(script, npid, fds):
            if script == "setup-namespaces" and (hooks.get("prestart") or hooks.get("createRuntime")):
                from . import hooks as hooks_mod
                s = c.oci_state("creating")
                s["pid"] = npid
                hooks_mod.run_hooks(hooks, "prestart", s)
                hooks_mod.run_hooks(hooks, "createRuntime", s)
            elif script == "post-restore":
                restored["pid"] = npid
                c.data["pid"] = npid
                c.data["start_time"], _ = st.proc_start_time(npid)
                c.data["pidns"] = any(n.get("type") == "pid" and not n.get("path")
                                      for n in linux.get("namespaces") or ())
                c.data["status"] = "running"
                c.data["created"] = _now_rfc3339()
                _record_cgroups(c, mgr)
            elif script == "orphan-pts-master" and fds:
                if console is not None:
                    console.send(fds[0])

        try:
            resp = w.call(req, on_notify)
        finally:
            rc = w.close()
            w = None
        if resp is None or not resp.success:
            raise _fail("restore", resp, logdir, "restore.log")
        if rc != 0:
            raise RuntimeErr("restore: criu failed: exit status %d" % rc)
        pid = restored.get("pid") or resp.restore.pid
        if not restored.get("pid"):
            c.data["pid"] = pid
            c.data["start_time"], _ = st.proc_start_time(pid)
            c.data["status"] = "running"
            _record_cgroups(c, mgr)
        # the launcher's plan for state, kill and delete, as create writes it
        from . import fastplan
        fastplan.write(c)
        if pid_file:
            _write_pid_file(pid_file, pid)
        if hooks.get("poststart"):
            from . import hooks as hooks_mod
            hooks_mod.run_hooks(hooks, "poststart", c.oci_state("running"), warn=rt._warn)
    except BaseException:
        if w is not None:
            w.proc.kill()
            w.close()
        pid = restored.get("pid")
        if pid:
            from .teardown import signal_init
            signal_init(pid, c.data.get("start_time"), 9)
            try:
                os.waitpid(pid, 0)
            except OSError:
                pass
        if mgr is not None:
            try:
                mgr.destroy(kill=True)
            except Exception:
                pass
        if mounted:
            _umount(mounted)
            mounted = None
        _close_dirs()
        st.remove_dir(path)
        raise
    finally:
        for fd in keep:
            os.close(fd)
        if mounted:
            _umount(mounted)
            try:
                os.rmdir(mounted)
            except OSError:
                pass
        os.close(dirfd)
    if detach:
        return 0
    return _foreground(rt, cid, pid)


def _foreground(rt, cid, pid):
    """restore without --detach: the runtime waits for the restored init (its child),
    forwards signals to it, and deletes the container once it exits, as runc does."""
    import signal
    fwd = [s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
                       signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)]
    for s in fwd:
        signal.signal(s, lambda n, _f: _kill(pid, n))
    status = 255
    while True:
        try:
            wpid, ws = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if wpid == pid:
            status = os.waitstatus_to_exitcode(ws)
            status = 128 - status if status < 0 else status
            break
    try:
        rt.delete(cid, force=True)
    except RuntimeErr as e:
        rt._warn(str(e))
    return status


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass
