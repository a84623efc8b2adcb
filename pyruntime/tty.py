"""Terminal relay for `run -t` / `exec -t` without --console-socket: a person at a shell.

The container's pty master comes from the executor's console step; we copy our stdin to it
and its output to our stdout until the process exits, with our terminal in raw mode (the
container's line discipline does the editing and signals), and window size changes copied
to the master (the kernel then sends SIGWINCH to the container's foreground group).
"""
import errno
from . import oslite as os
import select
import signal

from .stdio import reap, watch, write_all

_BUF = 65536


def copy_winsize(src_fd, dst_fd):
    import fcntl
    import termios
    try:
        ws = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst_fd, termios.TIOCSWINSZ, ws)
    except OSError:
        pass


def relay(master, pid, stdin_fd=0, stdout_fd=1, forwarder=None):
    """Copy stdin -> master and master -> stdout until `pid` (our child) exits; return
    its wait status. `forwarder` (launch.Forwarder) keeps forwarding signals; the
    relay takes SIGWINCH over (it resizes the pty instead)."""
    import termios
    saved = None
    is_tty = os.isatty(stdin_fd)
    if is_tty:
        import tty as tty_mod
        try:
            saved = termios.tcgetattr(stdin_fd)
            tty_mod.setraw(stdin_fd, termios.TCSANOW)
        except termios.error:
            saved = None
        copy_winsize(stdin_fd, master)
    old_winch = None
    if is_tty:
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: copy_winsize(stdin_fd, master))
    pidfd = watch(pid, forwarder)
    status = None
    try:
        p = select.poll()
        p.register(master, select.POLLIN)
        try:
            os.fstat(stdin_fd)
            p.register(stdin_fd, select.POLLIN)
        except OSError:
            pass
        if pidfd >= 0:
            p.register(pidfd, select.POLLIN)
        master_open = True
        while True:
            if pidfd < 0:
                # no pidfd (old kernel): poll for the exit between reads
                r, status = os.waitpid(pid, os.WNOHANG)
                if r:
                    break
            events = p.poll(-1 if pidfd >= 0 else 100)
            exited = False
            for fd, ev in events:
                if fd == master:
                    if not _pump(master, stdout_fd):
                        p.unregister(master)
                        master_open = False
                elif fd == stdin_fd:
                    try:
                        data = os.read(stdin_fd, _BUF)
                    except OSError:
                        data = b""
                    if data:
                        write_all(master, data)
                    else:
                        # EOF on a pipe: pass it on as the terminal's EOF character
                        p.unregister(stdin_fd)
                        if not is_tty:
                            _send_eof(master)
                elif fd == pidfd:
                    exited = True
            if exited:
                break
        # drain what the process wrote before it exited
        if master_open:
            os.set_blocking(master, False)
            while _pump(master, stdout_fd):
                pass
        return reap(pid) if status is None else status
    finally:
        if pidfd >= 0:
            os.close(pidfd)
        if old_winch is not None:
            signal.signal(signal.SIGWINCH, old_winch)
        if saved is not None:
            try:
                termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
            except termios.error:
                pass


def _send_eof(master):
    import termios
    try:
        veof = termios.tcgetattr(master)[6][termios.VEOF]
    except termios.error:
        veof = b"\x04"
    if not isinstance(veof, bytes):
        veof = bytes([veof])
    try:
        write_all(master, veof)
    except OSError:
        pass


def _pump(src, dst):
    """One read from src to dst; False at EOF/EIO (every slave fd closed) or nothing left."""
    try:
        data = os.read(src, _BUF)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno == errno.EIO:
            return False
        raise
    if not data:
        return False
    write_all(dst, data)
    return True
