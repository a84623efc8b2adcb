"""OCI hooks (runtime-spec config.md, "POSIX-platform Hooks").

    run_hooks(config["hooks"], "createRuntime", state_dict)               # runtime namespaces
    run_hooks(config["hooks"], "createContainer", state_dict, ns_pid=pid)  # the init's namespaces
    run_hooks(config["hooks"], "poststop", state_dict, warn=log_warning)   # failures only warn

Each hook: `path` is executed with `args` (args[0] is argv[0]; none: [path]) and `env`
(none: the runtime's environment, as runc's Go exec does), the state JSON on stdin, stdout
and stderr captured for the error message, `timeout` seconds enforced (killed, fails).
startContainer hooks are not run here: the container init runs them (plan "hook" steps,
csrc/executor.c do_hook), with the policy decided here and carried by the step:
OUTPUT_CAP, KILL_GROUP and error_prefix() are the one home of both runners' behaviour.
Errors read like runc's: "error running hook #N: <kind> hook <path>: exit status 3, stdout:
..., stderr: ..." ("error running hook #N: " is what engines and people grep for; what
follows the prefix is runc's text: "exit status N, stdout: ..., stderr: ...", "hook ran past
specified timeout of N.0s").
"""
from . import oslite as os
import select
import sys
import time

import _signal  # `signal` imports enum: ~4 ms, and Docker gives every container a hook

from .fastjson import dumps

from .errors import HookError
from .stdio import reap

# bytes of a failed hook's stdout, and of its stderr, kept for the message
OUTPUT_CAP = 1 << 20
# a hook leads its own process group, killed on a timeout or a failure: nothing the hook
# started outlives it (runc 1.1.5 kills the hook alone, and then waits for whatever still
# holds its stdout). Always so here (_kill); the plan's hook steps carry it to the init's
# runner (csrc/executor.c do_hook), which has no other policy source.
KILL_GROUP = True


def error_prefix(index, kind, path):
    return "error running hook #%d: %s hook %s" % (index, kind, path)


def run_hooks(hooks, kind, state, ns_pid=None, warn=None):
    """Run the `kind` hooks in order. The first failure raises HookError, unless `warn`
    is given (poststop): then each failure is passed to warn() and the rest still run."""
    for i, h in enumerate((hooks or {}).get(kind) or ()):
        try:
            run_hook(h, kind, state, ns_pid=ns_pid, index=i)
        except HookError as e:
            if warn is None:
                raise
            warn(str(e))


def run_hook(h, kind, state, ns_pid=None, index=0):
    path = h.get("path") or ""
    args = list(h.get("args") or [path])
    env = h.get("env")
    if env is None:
        env = ["%s=%s" % kv for kv in os.environ.items()]
    timeout = h.get("timeout")
    what = error_prefix(index, kind, path)
    data = dumps(state).encode()
    # stdin from a sealed-size memfd: the hook may read it or not, we never block on it
    stdin = os.memfd_create("pyrt-hook-state", os.MFD_CLOEXEC)
    out_r = err_r = -1
    pid = -1
    try:
        os.write(stdin, data)
        os.lseek(stdin, 0, os.SEEK_SET)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        try:
            if ns_pid:
                pid = _spawn_in_ns(ns_pid, path, args, env, stdin, out_w, err_w)
            else:
                pid = _spawn(path, args, env, stdin, out_w, err_w, cwd=state.get("bundle"))
        except HookError as e:
            raise HookError("%s: %s" % (what, e)) from None
        finally:
            os.close(out_w)
            os.close(err_w)
        out, err, timed_out = _collect(out_r, err_r, timeout)
        if timed_out:
            _kill(pid)
        elif _failed(pid):
            _kill(pid)  # what the failed hook left behind (its group outlives it)
        status = reap(pid)
        pid = -1
    finally:
        os.close(stdin)
        for fd in (out_r, err_r):
            if fd >= 0:
                os.close(fd)
        if pid > 0:  # interrupted: leave nothing running
            _kill(pid)
            reap(pid)
    if timed_out:
        raise HookError("%s: hook ran past specified timeout of %.1fs" % (what, float(timeout)))
    if os.WIFSIGNALED(status):
        raise HookError("%s: signal: %s, stdout: %s, stderr: %s"
                        % (what, _signame(os.WTERMSIG(status)), out, err))
    code = os.WEXITSTATUS(status)
    if code:
        raise HookError("%s: exit status %d, stdout: %s, stderr: %s" % (what, code, out, err))


def _failed(pid):
    # waited for but not reaped: while the leader is a zombie its pid cannot be reused,
    # so the group kill that may follow reaches only what the hook started
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except ChildProcessError:
        return False
    return info is not None and (info.si_code != os.CLD_EXITED or info.si_status != 0)


def _kill(pid):
    # the hook leads its own group (_spawn): the group goes, as KILL_GROUP tells the init's
    # runner to do for startContainer hooks
    try:
        os.killpg(pid, _signal.SIGKILL)
    except OSError:
        pass


def _spawn(path, args, env, stdin, out_w, err_w, cwd=None):
    """fork+exec in its own process group (a timeout kills the group), from the bundle."""
    if cwd and not os.path.isdir(cwd):
        cwd = None
    return _exec_hook([], path, args, env, stdin, out_w, err_w, cwd)


def _spawn_in_ns(ns_pid, path, args, env, stdin, out_w, err_w):
    """Run the hook in the namespaces of `ns_pid` (createContainer: the container's mount
    namespace, before pivot_root). The runtime's user namespace is kept: host root can
    enter every namespace the container's user namespace owns."""
    from .namespaces import namespaces_to_join
    joins = [j for j in namespaces_to_join(ns_pid, for_children=True) if j["type"] != "user"]
    return _exec_hook(joins, path, args, env, stdin, out_w, err_w, None)


def _exec_hook(joins, path, args, env, stdin, out_w, err_w, cwd):
    """The C executor forks (joining `joins` first) and execs: no Python runs between
    fork and exec, and `subprocess` (~9 ms to import) stays out of create and delete."""
    from .namespaces import NS_FLAGS
    from ._executor import ffi, lib
    from .errors import strerror
    from .executor import stub_fd
    fds = []
    keep = []

    def vec(items):
        arr = ffi.new("char *[]", len(items) + 1)
        for i, s in enumerate(items):
            b = ffi.new("char[]", s.encode() if isinstance(s, str) else s)
            keep.append(b)
            arr[i] = b
        arr[len(items)] = ffi.NULL
        keep.append(arr)
        return arr

    ex_r, ex_w = os.pipe2(os.O_CLOEXEC)
    try:
        for j in joins:
            try:
                fds.append(os.open(j["path"], os.O_RDONLY | os.O_CLOEXEC))
            except OSError as e:
                raise HookError("open %s: %s" % (j["path"], strerror(e.errno)))
        types = [NS_FLAGS[j["type"]] for j in joins]
        pid = lib.pyrt_setns_run(len(fds), ffi.new("int[]", fds or [0]),
                                 ffi.new("int[]", types or [0]), os.fsencode(path), vec(args),
                                 vec(env), stdin, out_w, err_w,
                                 os.fsencode(cwd) if cwd else ffi.NULL, ex_w,
                                 stub_fd() if fds else -1)
        if pid == lib.PYRT_STAGE_ERROR:
            m = ffi.new("struct pyrt_msg *")
            lib.pyrt_last_msg(m)
            raise HookError("exec the init stub: %s" % strerror(m.err))
        if pid < 0:
            raise HookError("fork: %s" % strerror(-pid))
        os.close(ex_w)
        ex_w = -1
        # EOF: the hook is running (the pipe closed on exec); 4 bytes: the exec's errno
        err = os.read(ex_r, 4)
        if len(err) == 4:
            reap(pid)
            raise HookError("fork/exec %s: %s" % (path, strerror(int.from_bytes(err, sys.byteorder))))
        return pid
    finally:
        for fd in fds + [ex_r, ex_w]:
            if fd >= 0:
                os.close(fd)


def _collect(out_r, err_r, timeout):
    """Read both pipes to EOF (or until the deadline); -> (stdout, stderr, timed_out)."""
    bufs = {out_r: bytearray(), err_r: bytearray()}
    p = select.poll()
    for fd in bufs:
        p.register(fd, select.POLLIN)
    open_ = set(bufs)
    deadline = time.monotonic() + timeout if timeout else None
    while open_:
        ms = -1
        if deadline is not None:
            ms = max(0, int((deadline - time.monotonic()) * 1000))
        events = p.poll(ms)
        if not events and deadline is not None and time.monotonic() >= deadline:
            return _text(bufs[out_r]), _text(bufs[err_r]), True
        for fd, _ev in events:
            chunk = os.read(fd, 65536)
            if not chunk:
                p.unregister(fd)
                open_.discard(fd)
            elif len(bufs[fd]) < OUTPUT_CAP:
                bufs[fd] += chunk[:OUTPUT_CAP - len(bufs[fd])]
    return _text(bufs[out_r]), _text(bufs[err_r]), False


def _text(b):
    return bytes(b).decode(errors="replace")


def _signame(n):
    try:
        return _signal.strsignal(n) or str(n)
    except ValueError:
        return str(n)
