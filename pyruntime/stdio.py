"""The process's stdio when no terminal is asked for.

Detached (`create`, `run -d`, `exec -d`) the process gets the caller's own stdio, as runc.
In the foreground it gets pipes whose other ends the runtime relays to its own stdio (as
runc does): the caller's stdout may be a host file (a log), and a container holding that
file's open description could reopen it through /proc/self/fd/1, read what was written
before or rewrite it from offset 0. A pipe carries the bytes and nothing else.

The relay is one poll loop in the runtime's thread (signals keep being forwarded by the
handlers around it): output moves with splice (no copy through Python) and falls back to
read/write where the caller's side cannot splice (a terminal, an O_APPEND file on some
kernels); stdin goes through a non-blocking pipe, so a process that never reads its stdin
cannot stall the copying of its output.
"""
import errno
from . import oslite as os

_CHUNK = 1 << 16
_DEV_NULL = 0x103   # makedev(1, 3)
_SPLICE_NONBLOCK = 2  # SPLICE_F_NONBLOCK


def pipes(min_fd=3, stdout_fd=1, stderr_fd=2):
    """(child, parent): child = (stdin_r, stdout_w, stderr_w) for the process, parent =
    (stdin_w, stdout_r, stderr_r) for the relay. All close-on-exec and at or above min_fd
    (never on 0-2, never in the range --preserve-fds hands to the container).

    When our stdout and stderr are the same file (2>&1), the process gets one pipe for
    both, so what it writes to either keeps its order; stderr_r is then None."""
    import fcntl
    made = []
    try:
        joined = _same_file(stdout_fd, stderr_fd)
        for _ in range(2 if joined else 3):
            r, w = os.pipe2(os.O_CLOEXEC)
            made += [r, w]
        for i, fd in enumerate(made):
            if fd < min_fd:
                made[i] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, min_fd)
                os.close(fd)
    except BaseException:
        close(made)
        raise
    if joined:
        in_r, in_w, out_r, out_w = made
        err_r, err_w = None, out_w
    else:
        in_r, in_w, out_r, out_w, err_r, err_w = made
    os.set_blocking(in_w, False)
    return (in_r, out_w, err_w), (in_w, out_r, err_r)


def _same_file(a, b):
    try:
        sa, sb = os.fstat(a), os.fstat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def close(fds):
    for fd in set(fds):
        if fd is not None and fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def inherited_mask():
    """Which of our fds 0-2, handed to a process as they are, runc's fix-up may chown:
    anonymous pipes and sockets (an engine's), never a file of the host or a terminal."""
    mask = 0
    for fd in range(3):
        try:
            link = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:
            continue
        if link.startswith(("pipe:[", "socket:[")):
            mask |= 1 << fd
    return mask


class _Out:
    """One output stream: the container's pipe -> one of our fds."""

    def __init__(self, src, dst):
        self.src, self.dst = src, dst
        self.splice = True
        self.moved = 0

    def move(self, limit=_CHUNK):
        """Move what is readable now; False at EOF or when our side is gone."""
        while True:
            try:
                if self.splice:
                    n = os.splice(self.src, self.dst, limit)
                else:
                    data = os.read(self.src, limit)
                    n = len(data)
                    if n:
                        write_all(self.dst, data)
                self.moved += n
                return n > 0
            except InterruptedError:
                continue
            except BlockingIOError:
                if _readable(self.src):
                    # our side is a non-blocking pipe that is full: wait for room
                    import select
                    select.select([], [self.dst], [])
                    continue
                return True
            except OSError as e:
                if self.splice and e.errno in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
                                               errno.EBADF):
                    self.splice = False
                    continue
                # EPIPE and the like: nobody reads our side; closing the pipe lets the
                # process see it too
                return False


def _background(fd):
    try:
        return os.tcgetpgrp(fd) != os.getpgrp()
    except OSError:
        return False   # not our controlling terminal: no job control on it


def _queued(fd):
    """Bytes in a pipe now (FIONREAD)."""
    import fcntl
    try:
        return int.from_bytes(fcntl.ioctl(fd, 0x541B, b"\0\0\0\0"), "little")
    except OSError:
        return 0


def _readable(fd):
    import select
    p = select.poll()
    p.register(fd, select.POLLIN)
    return any(ev & (select.POLLIN | select.POLLHUP) for _, ev in p.poll(0))


def write_all(fd, data):
    """All of `data` to `fd`, waiting for room when `fd` is non-blocking and full."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except BlockingIOError:
            import select
            select.select([], [fd], [])
            continue
        view = view[n:]


_OK, _FULL, _EOF = 0, 1, 2


class _In:
    """Our stdin -> the process's stdin pipe (non-blocking: `_FULL` means wait for room)."""

    def __init__(self, src, dst):
        self.src, self.dst = src, dst
        self.splice = True
        self.pending = b""

    def from_src(self):
        try:
            if self.splice:
                try:
                    return _OK if os.splice(self.src, self.dst, _CHUNK, flags=_SPLICE_NONBLOCK) else _EOF
                except BlockingIOError:
                    # either the pipe is full or our (non-blocking) stdin had nothing
                    return _FULL if _readable(self.src) else _OK
                except OSError as e:
                    if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                        raise
                    self.splice = False
            data = os.read(self.src, _CHUNK)
        except BlockingIOError:
            return _OK
        except OSError:
            return _EOF   # EPIPE: the process closed its stdin; the rest of ours stays unread
        if not data:
            return _EOF
        self.pending = data
        return self.flush()

    def flush(self):
        try:
            while self.pending:
                n = os.write(self.dst, self.pending)
                self.pending = self.pending[n:]
        except BlockingIOError:
            return _FULL
        except OSError:
            return _EOF
        return _OK

    def close(self):
        self.dst = _close1(self.dst)


def relay(pid, parent, forwarder=None, stdin_fd=0, stdout_fd=1, stderr_fd=2):
    """Relay until `pid` (our child) exits and what it wrote is out; return its wait status.
    Closes the parent ends."""
    in_w, out_r, err_r = parent
    outs = {out_r: _Out(out_r, stdout_fd)}
    if err_r is not None:
        outs[err_r] = _Out(err_r, stderr_fd)
    pidfd = watch(pid, forwarder)
    # here, not at the top: create (which relays nothing) never loads it
    import select
    IN, OUT = select.POLLIN, select.POLLOUT
    p = select.poll()
    for fd in outs:
        p.register(fd, IN)
    if pidfd >= 0:
        p.register(pidfd, IN)
    inp = _In(stdin_fd, in_w)
    # A background job that reads its terminal gets SIGTTIN: stopped (run) or, with the
    # signal forwarded (exec), spinning and stopping the process. Until we are in the
    # foreground the process's stdin stays open and quiet; we look again now and then.
    tty_in = parked = False
    try:
        # /dev/null is what engines pass when there is no input: EOF is all there is to
        # relay, and splice from it fails (its exception alone cost 64 KiB of exec's RSS)
        relayed = os.fstat(stdin_fd).st_rdev != _DEV_NULL
    except OSError:
        relayed = False
    if not relayed:
        inp.close()   # no stdin (or /dev/null): the process reads EOF at once
    else:
        tty_in = os.isatty(stdin_fd)
        parked = tty_in and _background(stdin_fd)
        if not parked:
            p.register(stdin_fd, IN)
    status = None
    try:
        while True:
            if pidfd < 0:
                r, status = os.waitpid(pid, os.WNOHANG)
                if r:
                    break
            if parked and inp.dst is not None and not _background(stdin_fd):
                parked = False
                p.register(stdin_fd, IN)
            exited = False
            for fd, ev in p.poll(250 if parked else -1 if pidfd >= 0 else 100):
                if fd == pidfd:
                    exited = True
                elif fd in outs:
                    if not outs[fd].move():
                        p.unregister(fd)
                        os.close(outs.pop(fd).src)
                elif fd == stdin_fd:
                    if tty_in and _background(stdin_fd):
                        parked = True
                        p.unregister(stdin_fd)
                        continue
                    r = inp.from_src()
                    if r != _OK:
                        p.unregister(stdin_fd)
                        if r == _FULL:
                            p.register(inp.dst, OUT)
                        else:
                            inp.close()   # our stdin ended: so does the process's
                elif fd == inp.dst:
                    r = inp.flush()
                    if r != _FULL:
                        p.unregister(fd)
                        if r == _OK:
                            p.register(stdin_fd, IN)
                        else:
                            inp.close()
            if exited:
                break
        inp.close()
        # What the process wrote before it exited is in the pipes: move that. A
        # background child that still holds a pipe (exec) does not keep us waiting,
        # however much it writes.
        for fd, o in outs.items():
            os.set_blocking(fd, False)
            left = _queued(fd)
            while left > 0:
                before = o.moved
                if not o.move(min(left, _CHUNK)) or o.moved == before:
                    break
                left -= o.moved - before
        return reap(pid) if status is None else status
    finally:
        if pidfd >= 0:
            os.close(pidfd)
        inp.close()
        close(list(outs))


def watch(pid, forwarder=None):
    """Before a relay loop: pass on the signals that came before `pid` (our child) was
    known, and return a pidfd that polls readable at its exit (-1 where the kernel has none:
    the loop then polls waitpid)."""
    gc_back_on()   # a relay lasts as long as the process
    if forwarder is not None:
        forwarder.flush()
    try:
        return os.pidfd_open(pid)
    except OSError:
        return -1


def gc_back_on():
    """The cyclic GC back on, for what waits as long as a container: the CLI runs without
    it (cli.entry). What the command made so far is frozen first (never collected: it
    lives until the exit anyway); the first collection would walk all of it, 0.2-0.4 ms of
    every `run`. A library caller's GC is left as its program set it."""
    import gc
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def reap(pid):
    """The wait status of `pid` (our child), waiting for it; 0 if it was reaped elsewhere."""
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except InterruptedError:
            continue
        except ChildProcessError:
            return 0


def _close1(fd):
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
    return None
