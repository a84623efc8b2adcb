"""Launching a process into a container: what create/run and exec share.

The process's console (--console-socket or the runtime's own relay) and the terminal
rule, its seccomp filter (compiled, cached), the caller's socket-activation fds, the pid
file, the one signal forwarder of a foreground process and its exit code. The plan
itself is made by plan.build (create) and execproc.build_plan (exec); executor.Launch
runs it.
"""
from . import oslite as os

from .errors import RuntimeErr

# What a foreground run/exec passes on to its process (runc forwards every signal it can
# catch, SIGCHLD aside): one list for both.
FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH",
             "SIGCONT", "SIGTSTP", "SIGTTIN", "SIGTTOU")


def check_terminal(terminal, console_socket, detach):
    """runc's rule: a detached terminal needs a console socket, and a console socket
    needs a detached terminal."""
    if terminal and detach and not console_socket:
        raise RuntimeErr("cannot allocate tty if runc will detach without setting console socket")
    if console_socket and (not terminal or not detach):
        raise RuntimeErr("cannot use console socket if runc will not detach or allocate tty")


def seccomp_filter(linux, cache):
    """The compiled linux.seccomp as the plan's seccomp fact (None without one)."""
    if not linux.get("seccomp"):
        return None
    from . import seccomp
    prog = seccomp.compile(linux["seccomp"], cache_dir=cache)
    return {"program": prog.bpf, "flags": prog.flags, "notify": prog.notify}


def exit_code(status):
    """A wait status as the runtime's exit code: 128+N for a signal (as a shell)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def cache_path(base, kind):
    """A content-addressed cache (validated configs, compiled seccomp filters) under the
    runtime's cache dir (Runtime(cache_dir=...)), or None: no caching."""
    return os.path.join(base, kind) if base else None


def write_pid_file(path, pid):
    """Through "<dir>/.<name>" and a rename, so a reader never sees half a pid; a failure
    is worded as runc words it ("open <dir>/.<name>: ..."), which engines show as is."""
    from .errors import RuntimeErr, strerror
    from .state import replace_file
    path = os.path.abspath(path)
    d, name = os.path.split(path)
    try:
        replace_file(path, str(pid).encode(), 0o644, tmp=os.path.join(d, "." + name))
    except OSError as e:
        raise RuntimeErr("%s: %s" % (e.op, strerror(e)))


class ConsoleKeeper:
    """run -t without --console-socket: keep the console master for the terminal relay."""

    def __init__(self, launch):
        self.launch = launch

    def send(self, fd):
        self.launch.console_master = os.dup(fd)
        if os.isatty(0):
            # before start: the process sees our size from its first instruction
            from .tty import copy_winsize
            copy_winsize(0, fd)


class ConsoleSender:
    """Delivers the console master to --console-socket, as runc does (SCM_RIGHTS)."""

    def __init__(self, path):
        self.path = path

    def send(self, fd):
        import socket
        from .executor import send_fd
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                s.connect(self.path)
            except OSError as e:
                from .errors import strerror
                # Go's net.Dial words, as runc reports an unusable --console-socket
                raise RuntimeErr("dial unix %s: connect: %s" % (self.path, strerror(e)))
            send_fd(s.fileno(), fd, "/dev/ptmx")
        except OSError as e:
            raise RuntimeErr("failed to send the console to %s: %s" % (self.path, e.strerror))
        finally:
            s.close()


class Forwarder:
    """Signals sent to the runtime go to the process (as runc's signal handler does)."""

    def __init__(self):
        import _signal as signal  # the C module: `signal` builds enums
        self.target = 0
        self.pending = []
        self.old = {}
        for name in FORWARDED:
            s = getattr(signal, name)
            self.old[s] = signal.signal(s, self._handle)

    def _handle(self, signum, _frame):
        if self.target:
            try:
                os.kill(self.target, signum)
            except ProcessLookupError:
                pass
        else:
            self.pending.append(signum)

    def flush(self):
        for s in self.pending:
            try:
                os.kill(self.target, s)
            except ProcessLookupError:
                pass
        self.pending = []

    def wait(self, pid):
        self.flush()
        while True:
            try:
                _, status = os.waitpid(pid, 0)
                return status
            except InterruptedError:
                continue
            except ChildProcessError:
                return 0

    def restore(self):
        import _signal as signal  # the C module: `signal` builds enums
        for s, h in self.old.items():
            try:
                signal.signal(s, h)
            except (TypeError, ValueError):
                pass
        self.old = {}
