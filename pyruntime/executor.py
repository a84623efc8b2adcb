"""Hands a plan to the C executor and speaks the sync protocol with the init."""
import errno as errno_mod
from . import oslite as os

from .errors import RuntimeErr, strerror
from ._executor import ffi, lib

MSG_PID, MSG_SYNC, MSG_READY, MSG_ERROR, MSG_FD = 1, 2, 3, 4, 5
MSG_GO, MSG_ABORT = 10, 11

RLIM_INFINITY = (1 << 64) - 1
_MKDIR = {None: 0, 0: 0, 1: 1, 2: 2, "dir": 1, "file": 2}


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


def to_c(steps, keep, fds=None):
    """fds: the run-time fds that travel beside the plan ({"mount": {flat step index: fd},
    "stdio": (3 fds) or None}): never in the steps, so the plan stays what was printed."""
    where = [None]
    try:
        return _to_c(steps, keep, where, fds or {})
    except (OverflowError, TypeError, ValueError) as e:
        # a value the C side cannot hold (huge ints, NUL bytes): one line, not a traceback
        desc = (where[0] or {}).get("desc", "")
        raise RuntimeErr("unable to start container process: invalid value for %s: %s"
                         % (desc, e))


# error_text's head for a create plan's step, which is all a step after wait_start is
LATE_HEAD = "unable to start container process: error during container init: "


def _op(name):
    # the numbers live in csrc/executor.h only; the compiled module has them
    n = getattr(lib, "OP_" + name.upper(), None) if name.isidentifier() else None
    if n is None or name == "ns_hook":
        raise ValueError("unknown step op %r" % name)
    return n


def _mask(keep, mask):
    """A bit mask as little-endian unsigned longs (a char[] kept alive), and its length."""
    if not mask:
        return ffi.NULL, 0
    n = (mask.bit_length() + 63) // 64 * 8
    b = ffi.new("char[]", mask.to_bytes(n, "little"))
    keep.append(b)
    return b, n


def _to_c(steps, keep, where, fds):
    mount_fds = fds.get("mount") or {}
    arr = ffi.new("struct pyrt_step[]", len(steps))
    keep.append(arr)
    late = False
    for i, st in enumerate(steps):
        where[0] = st
        c = arr[i]
        op = st["op"]
        c.op = _op(op)
        if late:
            # past the wait for start the init words its own failure (for `start`)
            c.late_error = _cstr(keep, LATE_HEAD + st["desc"])
        late = late or op == "wait_start"
        g = st.get
        u = c.u
        if op == "sync":
            u.sync.tag = _cstr(keep, g("tag", ""))
        elif op == "root_propagation" or op == "propagation":
            u.flags.flags = g("flags", 0)
            u.flags.target = _cstr(keep, g("target"))
        elif op == "bind_rootfs":
            b = u.bind_rootfs
            b.path = _cstr(keep, st["path"])
            b.parent = _cstr(keep, g("parent"))
            b.from_cwd = 1 if g("from_cwd") else 0
        elif op == "pivot_root":
            u.pivot_root.keep_old_root = 1 if g("keep_old_root") else 0
        elif op == "chroot":
            u.chroot.plain = 1 if g("plain") else 0   # no mount namespace: chroot, never MS_MOVE
        elif op == "mount":
            m = u.mount
            m.source = _cstr(keep, g("source") or "")
            m.target = _cstr(keep, st["target"])
            m.fstype = _cstr(keep, g("fstype")) if g("fstype") else ffi.NULL
            m.data = _cstr(keep, g("data")) if g("data") else ffi.NULL
            m.flags = g("flags", 0)
            m.mkdir = _MKDIR.get(g("mkdir"), 0)
            m.fs_magic = g("fs_magic", 0)
            m.no_symlinks = 1 if g("no_symlinks") else 0
            # a detached mount to move in (idmapped mounts)
            m.mount_fd = mount_fds.get(i, -1)
            if g("fsmount"):
                m.fsmount = 1
                m.fsmount_attrs = st["fsmount"]["attrs"]
                m.fs_options = _cvec(keep, st["fsmount"]["options"])
            if g("fallback_n"):
                mask = 0
                for e in g("fallback_errnos") or ():
                    mask |= 1 << (getattr(errno_mod, e) if isinstance(e, str) else e)
                m.fallback_errnos = mask
                m.fallback_n = g("fallback_n")
        elif op == "remount":
            r = u.remount
            r.target = _cstr(keep, st["target"])
            r.flags = g("flags", 0)
            r.keep = 1 if g("keep") else 0
        elif op == "setattr":
            a = u.setattr
            a.target = _cstr(keep, st["target"])
            a.attr_set = g("attr_set", 0)
            a.attr_clr = g("attr_clr", 0)
            a.propagation = g("propagation", 0)
            a.recursive = 1 if g("recursive") else 0
            a.userns_fd = g("userns_fd", -1)
        elif op == "mknod":
            n = u.mknod
            n.target = _cstr(keep, st["target"])
            n.mode = st["mode"]
            n.major = st["major"]
            n.minor = st["minor"]
            n.uid = g("uid", 0)
            n.gid = g("gid", 0)
        elif op == "bind_device":
            u.bind_device.source = _cstr(keep, st["source"])
            u.bind_device.target = _cstr(keep, st["target"])
        elif op == "symlink":
            # like ln -s: target is the link's text, linkname where it is made
            u.symlink.target = _cstr(keep, st["target"])
            u.symlink.linkname = _cstr(keep, st["linkname"])
        elif op == "mkdir":
            u.path.path = _cstr(keep, st["target"])
        elif op == "mask":
            u.mask.path = _cstr(keep, st["path"])
            u.mask.tmpfs_data = _cstr(keep, g("data") or "")
        elif op == "readonly":
            u.path.path = _cstr(keep, st["path"])
        elif op in ("sethostname", "setdomainname", "keyring"):
            u.name.name = _cstr(keep, st["name"])
        elif op == "write":
            w = u.write
            w.path = _cstr(keep, st["path"])
            w.data = _cstr(keep, st["data"])
            w.fs_magic = g("fs_magic", 0)
        elif op == "rlimit":
            r = u.rlimit
            r.resource = st["resource"]
            r.soft = _u64(st["soft"])
            r.hard = _u64(st["hard"])
        elif op == "close_fds":
            # the caller's fds that were open when the runtime started (and only those)
            pass_fds = g("pass_fds")
            if pass_fds is None:
                pass_fds = list(range(3, 3 + int(g("keep", 0))))
            b = ffi.new("int[]", list(pass_fds) or [0])
            keep.append(b)
            u.close_fds.pass_fds = b
            u.close_fds.npass = len(pass_fds)
        elif op == "identity":
            d = u.identity
            d.uid = st["uid"]
            d.gid = st["gid"]
            d.groups = _cvec(keep, g("groups") or [])
            d.bounding = st["caps"]["bounding"]
            d.last_cap = st["last_cap"]
            d.setgroups_denied = 1 if g("setgroups_denied") else 0
        elif op == "chdir":
            u.path.path = _cstr(keep, st["path"])
        elif op == "caps":
            caps = st["caps"]
            k = u.caps
            k.effective = caps["effective"]
            k.permitted = caps["permitted"]
            k.inheritable = caps["inheritable"]
            k.ambient = caps["ambient"]
            k.last_cap = st["last_cap"]
        elif op == "umask":
            u.umask.mask = st["mask"]
        elif op == "seccomp":
            prog = st["program"]
            b = ffi.new("char[]", prog)
            keep.append(b)
            u.seccomp.program = b
            u.seccomp.len = len(prog)
            u.seccomp.flags = g("flags", 0)
        elif op in ("lookup", "exec"):
            u.exec.args = _cvec(keep, st["args"])
            u.exec.env = _cvec(keep, st["env"])
        elif op == "console":
            k = u.console
            k.rows = g("rows", 0)
            k.cols = g("cols", 0)
            k.dev_console = 1 if g("dev_console") else 0
        elif op == "unshare":
            u.flags.flags = st["flags"]
        elif op == "dup_stdio":
            # "pipes": the runtime's relay pipes (run/exec in the foreground), beside the plan
            pipes = fds.get("stdio") if g("pipes") else None
            d = u.dup_stdio
            for k, fd in enumerate(pipes or (None, None, None)):
                d.fds[k] = -1 if fd is None else fd
            d.uid = g("uid", 0)
            d.chown = g("chown", 0)
        elif op == "setns":
            u.setns.fd = st["fd"]
            u.setns.nstype = st["nstype"]
        elif op == "hook":
            h = u.hook
            h.path = _cstr(keep, st["path"])
            h.args = _cvec(keep, st.get("args") or [st["path"]])
            h.env = _cvec(keep, st["env"]) if st.get("env") is not None else ffi.NULL
            h.state_head = _cstr(keep, g("stdin_head", ""))
            h.state_tail = _cstr(keep, g("stdin_tail", ""))
            h.error_prefix = _cstr(keep, st["error_prefix"])
            h.timeout = int(g("timeout") or 0)
            h.output_cap = st["output_cap"]
            h.kill_group = 1 if st["kill_group"] else 0
        elif op == "sched":
            k = u.sched
            k.policy = st["policy"]
            k.flags = g("flags", 0)
            k.nice = g("nice", 0)
            k.priority = g("priority", 0)
            k.runtime = g("runtime", 0)
            k.deadline = g("deadline", 0)
            k.period = g("period", 0)
        elif op in ("ioprio", "personality"):
            u.value.value = st["value"]
        elif op in ("mempolicy", "affinity"):
            # a bit mask (nodes / CPUs); none: see the C side
            k = u.cpumask
            k.mask, k.len = _mask(keep, g("mask") or 0)
            k.mode = g("mode", 0)
    return arr


def flatten(steps, positions=None):
    """Inline each step's "fallback" steps after it (the executor runs them only when the
    step fails with one of its fallback_errnos, and skips them otherwise). positions, a
    list, gets the flat index of each of `steps`."""
    if not any("fallback" in s for s in steps):
        if positions is not None:
            positions.extend(range(len(steps)))
        return steps
    out = []
    for s in steps:
        if positions is not None:
            positions.append(len(out))
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


class Launch:
    """One init (or exec'd process) being brought up by the executor."""

    def __init__(self, plan, fifo_fd=-1, force_stage1=False, context="container init",
                 mount_fds=None, stdio_fds=None):
        """mount_fds {index in plan["steps"]: fd} (idmapped mounts) and stdio_fds (the
        relay pipes of a foreground process) exist only at run time: they travel here,
        beside the plan, and never change its steps."""
        self.plan = plan
        pos = []
        self.steps = flatten(plan["steps"], pos)
        self.fds = {"mount": {pos[i]: fd for i, fd in (mount_fds or {}).items()},
                    "stdio": stdio_fds}
        self.fifo_fd = fifo_fd
        self.force_stage1 = force_stage1
        self.context = context
        self.pid = 0
        self.sock = -1
        self._join_fds = []
        self._cgroup_fd = -1
        self._cgroup_join_fds = []
        self._joins = []
        # 0: the init was born in plan["clone_into_cgroup"]; an errno: it was not (the
        # runtime moves it); None: not asked
        self.cgroup_errno = None
        # the same for plan["cgroup_join"], the v1 hierarchies its builder joined first
        self.cgroup_join_errno = None

    @property
    def placed_in_cgroups(self):
        """Whether the init was born in every cgroup the plan names (clone3 and the v1
        joins), so that nothing needs to move it."""
        asked = self.plan.get("clone_into_cgroup") or self.plan.get("cgroup_join")
        return bool(asked) and self.cgroup_errno in (None, 0) \
            and self.cgroup_join_errno in (None, 0)

    def spawn(self):
        from .namespaces import NS_FLAGS, flags as ns_flags
        keep = []
        ns = self.plan["namespaces"]
        clone = [n for n in ns["clone"] if n != "time"]
        join = self._joins = ns["join"]
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
            sp.clone_flags = ns_flags(clone)
            sp.nsteps = len(self.steps)
            sp.steps = to_c(self.steps, keep, self.fds)
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
            cj = []
            for path in self.plan.get("cgroup_join") or ():
                try:
                    cj.append(os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC))
                except OSError as e:
                    self.cgroup_join_errno = e.errno   # none joined: the runtime moves it
                    break
            self._cgroup_join_fds = cj
            if self.cgroup_join_errno is None and cj:
                cjf = ffi.new("int[]", cj)
                keep.append(cjf)
                sp.ncgroup_join = len(cj)
                sp.cgroup_join_fds = cjf
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
            if sp.ncgroup_join > 0:
                self.cgroup_join_errno = sp.cgroup_join_errno
        finally:
            os.close(child_sock)
            for fd in self._cgroup_join_fds:
                os.close(fd)
            self._cgroup_join_fds = []
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
                if step <= -100 and -100 - step < len(self._joins):
                    # the cgroup namespace, joined after a clone3 into the cgroup
                    j = self._joins[-100 - step]
                    raise RuntimeErr("unable to start %s: join %s namespace %s: %s"
                                     % (self.context, j["type"], j["path"], strerror(err)))
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
    fd = try_open_in_root(root, path, flags)
    if fd < 0:
        raise OSError(-fd, os.strerror(-fd), path)
    return fd


def try_open_in_root(root, path, flags=os.O_RDONLY):
    """open_in_root's fd, or -errno: for an expected miss (create's look for the image's
    /etc/passwd), whose OSError would format os.strerror, interpreter and libc code that
    create uses nowhere else (64 KiB of its peak RSS)."""
    return lib.pyrt_open_in_root(root.encode(), path.encode(), flags)


def send_fd(sock, fd, name):
    r = lib.pyrt_send_fd(sock, fd, name.encode())
    if r < 0:
        raise OSError(-r, os.strerror(-r))
