"""Hands a plan to the C executor and speaks the sync protocol with the init."""
import errno as errno_mod
import os

from .errors import RuntimeErr
from ._executor import ffi, lib

OPS = {
    "sync": 1, "root_propagation": 2, "bind_rootfs": 3, "mount": 4, "remount": 5,
    "propagation": 6, "setattr": 7, "mknod": 8, "bind_device": 9, "symlink": 10,
    "pivot_root": 11, "chroot": 12, "mask": 13, "readonly": 14, "remount_root_ro": 15,
    "sethostname": 16, "setdomainname": 17, "write": 18, "rlimit": 19, "keyring": 20,
    "setsid": 21, "close_fds": 22, "identity": 23, "chdir": 24, "caps": 25, "umask": 26,
    "no_new_privs": 27, "seccomp": 28, "lookup": 29, "ready": 30, "wait_start": 31,
    "exec": 32, "become_root": 33, "console": 34, "dup_stdio": 35, "setns": 36, "mkdir": 37,
    "unshare": 38, "loopback_up": 39, "hook": 40,
    "sched": 41, "ioprio": 42, "mempolicy": 43, "personality": 44, "affinity": 45,
    "fork_init": 46, "detach_old_root": 47,
}
MSG_PID, MSG_SYNC, MSG_READY, MSG_ERROR, MSG_FD = 1, 2, 3, 4, 5
MSG_GO, MSG_ABORT = 10, 11

RLIM_INFINITY = (1 << 64) - 1
_MKDIR = {None: 0, 0: 0, 1: 1, 2: 2, "dir": 1, "file": 2}


def strerror(errno):
    """Go-style (lower-case) error text, as runc prints it."""
    s = os.strerror(errno)
    return s[:1].lower() + s[1:] if s else s


def _cstr(keep, s):
    if s is None:
        return ffi.NULL
    s = s.encode() if isinstance(s, str) else s
    if b"\0" in s:
        # C would silently cut the string there (runc: "invalid argument")
        raise ValueError("%r contains a NUL byte" % s.decode(errors="replace")[:80])
    b = ffi.new("char[]", s)
    keep.append(b)
    return b


def _cvec(keep, items):
    arr = ffi.new("char *[]", len(items) + 1)
    for i, s in enumerate(items):
        arr[i] = _cstr(keep, s)
    arr[len(items)] = ffi.NULL
    keep.append(arr)
    return arr


def _u64(v):
    v = int(v)
    return RLIM_INFINITY if v < 0 else v & RLIM_INFINITY


def to_c(steps, keep):
    where = [None]
    try:
        return _to_c(steps, keep, where)
    except (OverflowError, TypeError, ValueError) as e:
        # a value the C side cannot hold (huge ints, NUL bytes): one line, not a traceback
        desc = (where[0] or {}).get("desc", "")
        raise RuntimeErr("unable to start container process: invalid value for %s: %s"
                         % (desc, e))


def _to_c(steps, keep, where):
    arr = ffi.new("struct pyrt_step[]", len(steps))
    keep.append(arr)
    for i, st in enumerate(steps):
        where[0] = st
        c = arr[i]
        op = st["op"]
        c.op = OPS[op]
        g = st.get
        if op == "sync":
            c.s1 = _cstr(keep, g("tag", ""))
        elif op == "root_propagation" or op == "propagation":
            c.flags = g("flags", 0)
            c.s2 = _cstr(keep, g("target"))
        elif op == "bind_rootfs":
            c.s1 = _cstr(keep, st["path"])
            c.s2 = _cstr(keep, g("parent"))
            c.n1 = 1 if g("from_cwd") else 0
        elif op == "pivot_root":
            c.n1 = 1 if g("keep_old_root") else 0
        elif op == "chroot":
            c.n1 = 1 if g("plain") else 0   # no mount namespace: chroot, never MS_MOVE
        elif op == "mount":
            c.s1 = _cstr(keep, g("source") or "")
            c.s2 = _cstr(keep, st["target"])
            c.s3 = _cstr(keep, g("fstype") or None) if g("fstype") else ffi.NULL
            c.s4 = _cstr(keep, g("data")) if g("data") else ffi.NULL
            c.flags = g("flags", 0)
            c.n1 = _MKDIR.get(g("mkdir"), 0)
            c.n2 = 1 if g("sysfs_fallback") else 0
            c.m[0] = g("fs_magic", 0)           # the target must be this fs after mounting
            c.m[1] = 1 if g("no_symlinks") else 0  # no symlink anywhere in the target path
            c.m[2] = g("fallback_attrs", 0)     # MOUNT_ATTR_* for the sysfs bind fallback (recursive)
            if g("mount_fd") is not None:       # a detached mount to move in (idmapped mounts)
                c.m[3] = g("mount_fd") + 1
            if g("fsmount"):                    # made by fsopen/fsmount, attached by fd
                c.m[4] = st["fsmount"]["attrs"] + 1
                c.v1 = _cvec(keep, st["fsmount"]["options"])
            if g("fallback_n"):
                mask = 0
                for e in g("fallback_errnos") or ():
                    mask |= 1 << (getattr(errno_mod, e) if isinstance(e, str) else e)
                c.n3 = mask
                c.n4 = g("fallback_n")
        elif op == "remount":
            c.s2 = _cstr(keep, st["target"])
            c.flags = g("flags", 0)
            c.n1 = 1 if g("keep") else 0
        elif op == "setattr":
            c.s2 = _cstr(keep, st["target"])
            c.m[0] = g("attr_set", 0)
            c.m[1] = g("attr_clr", 0)
            c.m[2] = g("propagation", 0)
            c.n1 = 1 if g("recursive") else 0
            c.n2 = g("userns_fd", -1)
        elif op == "mknod":
            c.s2 = _cstr(keep, st["target"])
            c.n1 = st["mode"]
            c.n2 = st["major"]
            c.n3 = st["minor"]
            c.m[0] = g("uid", 0)
            c.m[1] = g("gid", 0)
        elif op == "bind_device":
            c.s1 = _cstr(keep, st["source"])
            c.s2 = _cstr(keep, st["target"])
        elif op == "symlink":
            # like ln -s: target is the link's text, linkname where it is made
            c.s1 = _cstr(keep, st["target"])
            c.s2 = _cstr(keep, st["linkname"])
        elif op == "mkdir":
            c.s2 = _cstr(keep, st["target"])
        elif op in ("mask", "readonly"):
            c.s1 = _cstr(keep, st["path"])
            c.s2 = _cstr(keep, g("data") or "")
        elif op in ("sethostname", "setdomainname", "keyring"):
            c.s1 = _cstr(keep, st["name"])
        elif op == "write":
            c.s1 = _cstr(keep, st["path"])
            c.s2 = _cstr(keep, st["data"])
            c.m[0] = g("fs_magic", 0)
        elif op == "rlimit":
            c.n1 = st["resource"]
            c.m[0] = _u64(st["soft"])
            c.m[1] = _u64(st["hard"])
        elif op == "close_fds":
            # the caller's fds that were open when the runtime started (and only those)
            fds = g("pass_fds")
            if fds is None:
                fds = list(range(3, 3 + int(g("keep", 0))))
            b = ffi.new("int[]", list(fds) or [0])
            keep.append(b)
            c.buf = b
            c.buflen = 4 * len(fds)
            c.n1 = len(fds)
        elif op == "identity":
            c.n1 = st["uid"]
            c.n2 = st["gid"]
            c.v1 = _cvec(keep, g("groups") or [])
            c.m[0] = st["caps"]["bounding"]
            c.n3 = st["last_cap"]
            c.n4 = 1 if g("setgroups_denied") else 0
        elif op == "chdir":
            c.s1 = _cstr(keep, st["path"])
        elif op == "caps":
            caps = st["caps"]
            c.m[1] = caps["effective"]
            c.m[2] = caps["permitted"]
            c.m[3] = caps["inheritable"]
            c.m[4] = caps["ambient"]
            c.n3 = st["last_cap"]
        elif op == "umask":
            c.n1 = st["mask"]
        elif op == "seccomp":
            prog = st["program"]
            b = ffi.new("char[]", prog)
            keep.append(b)
            c.buf = b
            c.buflen = len(prog)
            c.flags = g("flags", 0)
        elif op in ("lookup", "exec"):
            c.v1 = _cvec(keep, st["args"])
            c.v2 = _cvec(keep, st["env"])
        elif op == "console":
            c.n1 = g("rows", 0)
            c.n2 = g("cols", 0)
            c.s1 = _cstr(keep, "1" if g("dev_console") else "")
        elif op == "unshare":
            c.flags = st["flags"]
        elif op == "dup_stdio":
            for i, fd in enumerate(g("fds") or (None, None, None)):
                c.m[i] = 0 if fd is None else fd + 1
            c.n1 = g("uid", 0)
            c.n3 = g("chown", 0)
        elif op == "setns":
            c.n1 = st["fd"]
            c.n2 = st["nstype"]
        elif op == "hook":
            c.s1 = _cstr(keep, st["path"])
            c.v1 = _cvec(keep, st.get("args") or [st["path"]])
            c.v2 = _cvec(keep, st["env"]) if st.get("env") is not None else ffi.NULL
            c.s2 = _cstr(keep, g("stdin_head", ""))
            c.s3 = _cstr(keep, g("stdin_tail", ""))
            c.n1 = int(g("timeout") or 0)
            c.n2 = g("index", 0)
        elif op == "sched":
            c.m[0] = st["policy"]
            c.m[1] = g("flags", 0)
            c.n1 = g("nice", 0)
            c.n2 = g("priority", 0)
            c.m[2] = g("runtime", 0)
            c.m[3] = g("deadline", 0)
            c.m[4] = g("period", 0)
        elif op in ("ioprio", "personality"):
            c.n1 = st["value"]
        elif op in ("mempolicy", "affinity"):
            # a bit mask (nodes / CPUs) as little-endian unsigned longs; none: see the C side
            mask = g("mask") or 0
            if mask:
                n = (mask.bit_length() + 63) // 64 * 8
                b = ffi.new("char[]", mask.to_bytes(n, "little"))
                keep.append(b)
                c.buf = b
                c.buflen = n
            c.n1 = g("mode", 0)
    return arr


def flatten(steps):
    """Inline each step's "fallback" steps after it (the executor runs them only when the
    step fails with one of its fallback_errnos, and skips them otherwise)."""
    if not any("fallback" in s for s in steps):
        return steps
    out = []
    for s in steps:
        fb = s.get("fallback")
        if fb:
            s = dict(s)
            del s["fallback"]
            fb = flatten(fb)
            s["fallback_n"] = len(fb)
            out.append(s)
            out.extend(fb)
        else:
            out.append(s)
    return out


_STUB = [-1]


def stub_fd():
    """The sealed memfd copy of the init stub (pyruntime/_pyrt_init), made once per command:
    every process the runtime starts in a container is this program until it execs the
    container's, never a clone of the host's interpreter."""
    if _STUB[0] < 0:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_pyrt_init")
        fd = lib.pyrt_stub_open(os.fsencode(path))
        if fd < 0:
            raise RuntimeErr("unable to start container process: open the init stub %s: %s"
                             % (path, strerror(-fd)))
        _STUB[0] = fd
    return _STUB[0]


def open_fds(lo, hi):
    """Which of the fds lo..hi-1 are open (the caller's, recorded before the runtime
    opens anything of its own)."""
    out = []
    for fd in range(lo, hi):
        try:
            os.get_inheritable(fd)
        except OSError:
            continue
        out.append(fd)
    return out


def _ns_flags(names):
    from .plan import NS_FLAGS
    f = 0
    for n in names:
        f |= NS_FLAGS[n]
    return f


class Launch:
    """One init (or exec'd process) being brought up by the executor."""

    def __init__(self, plan, fifo_fd=-1, force_stage1=False, context="container init"):
        self.plan = plan
        self.steps = flatten(plan["steps"])
        self.fifo_fd = fifo_fd
        self.force_stage1 = force_stage1
        self.context = context
        self.pid = 0
        self.sock = -1
        self._join_fds = []
        self._cgroup_fd = -1
        # 0: the init was born in plan["clone_into_cgroup"]; an errno: it was not (the
        # runtime moves it); None: not asked
        self.cgroup_errno = None

    @property
    def born_in_cgroup(self):
        return self.cgroup_errno == 0

    def spawn(self):
        from .plan import NS_FLAGS
        keep = []
        ns = self.plan["namespaces"]
        clone = [n for n in ns["clone"] if n != "time"]
        join = ns["join"]
        fds = ffi.new("int[2]")
        r = lib.pyrt_socketpair(fds)
        if r < 0:
            raise RuntimeErr("socketpair: " + strerror(-r))
        self.sock, child_sock = fds[0], fds[1]
        try:
            jfds = []
            jtypes = []
            for j in join:
                try:
                    fd = os.open(j["path"], os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    raise RuntimeErr("unable to join %s namespace %s: %s"
                                     % (j["type"], j["path"], strerror(e.errno)))
                jfds.append(fd)
                jtypes.append(NS_FLAGS[j["type"]])
            self._join_fds = list(jfds)
            for i, st in enumerate(self.steps):
                if st["op"] == "setns" and "fd" not in st:
                    # a namespace the init's builder joins itself (a pid namespace
                    # entered only once the root is built)
                    try:
                        fd = os.open(st["path"], os.O_RDONLY | os.O_CLOEXEC)
                    except OSError as e:
                        raise RuntimeErr("unable to join %s namespace %s: %s"
                                         % (st["type"], st["path"], strerror(e.errno)))
                    self._join_fds.append(fd)
                    self.steps[i] = dict(st, fd=fd, nstype=NS_FLAGS[st["type"]])
            sp = ffi.new("struct pyrt_spawn *")
            sp.clone_flags = _ns_flags(clone)
            sp.nsteps = len(self.steps)
            sp.steps = to_c(self.steps, keep)
            jf = ffi.new("int[]", jfds or [0])
            jt = ffi.new("int[]", jtypes or [0])
            keep += [jf, jt]
            sp.njoin = len(jfds)
            sp.join_fds = jf
            sp.join_types = jt
            offs = ""
            if "time" in ns["clone"]:
                sp.unshare_time = 1
                for clock, v in (self.plan.get("time_offsets") or {}).items():
                    offs += "%s %d %d\n" % (clock, v.get("secs", 0), v.get("nanosecs", 0))
            sp.timens_offsets = _cstr(keep, offs)
            sp.sock = child_sock
            sp.parent_sock = self.sock
            sp.fifo_fd = self.fifo_fd
            sp.force_stage1 = 1 if self.force_stage1 else 0
            sp.stub_fd = stub_fd()
            sp.cgroup_fd = -1
            if self.plan.get("clone_into_cgroup"):
                try:
                    self._cgroup_fd = os.open(self.plan["clone_into_cgroup"],
                                              os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                    sp.cgroup_fd = self._cgroup_fd
                except OSError as e:
                    self.cgroup_errno = e.errno   # the runtime moves it, as without
            # An unprivileged runtime writes the maps of a new user namespace itself: the
            # init's /proc files must stay its own until then (the init stays dumpable
            # only until the first GO, before it does anything).
            sp.keep_dumpable = 1 if (os.geteuid() != 0 and "user" in clone
                                     and self.plan.get("uid_mappings")) else 0
            root = next((st["path"] for st in self.steps
                         if st["op"] == "bind_rootfs" and st.get("from_cwd")), None)
            back = None
            try:
                if root is not None:
                    # the init starts here (its bind_rootfs clones "."): a path the
                    # mapped root of a new user namespace might not be allowed to walk
                    back = os.open(".", os.O_PATH | os.O_CLOEXEC)
                    try:
                        os.chdir(root)
                    except OSError as e:
                        raise RuntimeErr("unable to start container process: rootfs %s: %s"
                                         % (root, strerror(e.errno)))
                pid = lib.pyrt_spawn(sp)
            finally:
                if back is not None:
                    os.fchdir(back)
                    os.close(back)
            if sp.cgroup_fd >= 0:
                self.cgroup_errno = sp.cgroup_errno
        finally:
            os.close(child_sock)
            if self._cgroup_fd >= 0:
                os.close(self._cgroup_fd)
                self._cgroup_fd = -1
            for fd in self._join_fds:
                os.close(fd)
            self._join_fds = []
        if pid == lib.PYRT_STAGE_ERROR:
            m = ffi.new("struct pyrt_msg *")
            lib.pyrt_last_msg(m)
            if m.step <= -100:
                j = join[-100 - m.step]
                what = "join %s namespace %s" % (j["type"], j["path"])
            elif m.step == -2:
                what = "create the time namespace"
            elif m.step == -4:
                what = "exec the init stub"
            else:
                what = "clone the container init"
            self.close()
            raise RuntimeErr("unable to start %s: %s: %s" % (self.context, what, strerror(m.err)))
        if pid < 0:
            self.close()
            raise RuntimeErr("unable to start %s: clone: %s" % (self.context, strerror(-pid)))
        self.pid = pid
        return pid

    def send(self, kind=MSG_GO):
        lib.pyrt_send(self.sock, kind, 0)

    def recv(self, timeout_ms=-1):
        m = ffi.new("struct pyrt_msg *")
        fdp = ffi.new("int *")
        r = lib.pyrt_recv(self.sock, m, fdp, timeout_ms)
        if r < 0:
            return None, r
        return (m.kind, m.step, m.err, m.value, ffi.string(m.text).decode(errors="replace"), fdp[0]), 0

    def run(self, on_sync=None, on_fd=None, until=MSG_READY, on_pid=None):
        """Process init messages until READY. Raises RuntimeErr on a failed step."""
        while True:
            msg, r = self.recv()
            if msg is None:
                if r == -32:  # EPIPE: the init died without a word (e.g. killed)
                    raise RuntimeErr("unable to start %s: the init process exited unexpectedly" % self.context)
                raise RuntimeErr("unable to start %s: sync: %s" % (self.context, strerror(-r)))
            kind, step, err, value, text, fd = msg
            if kind == until:
                return
            if kind == MSG_ERROR:
                raise RuntimeErr(self.error_text(step, err, text))
            if kind == MSG_PID:
                # fork_init: the builder forked the init into the joined pid namespace
                # and exits; the init waits for our GO, so its pid is on record first
                self._reap(self.pid)
                self.pid = value
                if on_pid is not None:
                    on_pid(value)
                self.send(MSG_GO)
                continue
            if kind == MSG_SYNC:
                st = self.steps[step]
                try:
                    if on_sync is not None:
                        on_sync(st.get("tag"), st)
                except BaseException:
                    self.send(MSG_ABORT)
                    raise
                self.send(MSG_GO)
            elif kind == MSG_FD:
                if on_fd is not None:
                    on_fd(self.steps[step], fd)
                elif fd >= 0:
                    os.close(fd)

    def error_text(self, step, err, text):
        if text.startswith("exec: "):
            return "unable to start container process: " + text
        desc = self.steps[step]["desc"] if 0 <= step < len(self.steps) else "step %d" % step
        msg = "unable to start container process: error during %s: %s" % (self.context, desc)
        if text:
            msg += ": " + text
        hint = self.steps[step].get("hint") if 0 <= step < len(self.steps) else None
        msg += ": " + strerror(err) if err else ""
        if hint and err in (1, 13):  # EPERM, EACCES
            msg += " (" + hint + ")"
        return msg

    def close(self):
        if self.sock >= 0:
            os.close(self.sock)
            self.sock = -1

    @staticmethod
    def _reap(pid):
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass

    def kill(self):
        """Kill the init and reap it (it is our child through CLONE_PARENT)."""
        if self.pid > 0:
            try:
                os.kill(self.pid, 9)
            except ProcessLookupError:
                pass
            self._reap(self.pid)
            self.pid = 0
        self.close()


def open_in_root(root, path, flags=os.O_RDONLY):
    fd = lib.pyrt_open_in_root(root.encode(), path.encode(), flags)
    if fd < 0:
        raise OSError(-fd, os.strerror(-fd), path)
    return fd


def send_fd(sock, fd, name):
    r = lib.pyrt_send_fd(sock, fd, name.encode())
    if r < 0:
        raise OSError(-r, os.strerror(-r))
