"""Terminals: --console-socket (create and exec) and the relay of run -t / exec -t, driven
through real ptys."""
import array
import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time

import pytest

import util

SCRIPT = "tty; stty size; read x; echo got=$x; exit 3"


class ConsoleServer:
    """A --console-socket listener: receives the pty master (SCM_RIGHTS)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.fd = None
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        conn, _ = self.sock.accept()
        with conn:
            fds = array.array("i")
            _msg, anc, _f, _a = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(data[:fds.itemsize])
            self.fd = fds[0] if fds else None

    def master(self):
        self.t.join(20)
        assert self.fd is not None, "no console master received"
        return self.fd

    def close(self):
        self.sock.close()
        if self.fd is not None:
            os.close(self.fd)


def read_until(fd, needle, timeout=20):
    """Read from a pty master until `needle` shows up (or EOF/EIO); returns all read."""
    buf = b""
    deadline = time.monotonic() + timeout
    while needle.encode() not in buf and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], max(0, deadline - time.monotonic()))
        if not r:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        buf += chunk
    return buf.decode(errors="replace")


def set_size(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def test_create_console_socket(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sh", "-c", SCRIPT], terminal=True)
    b.config["process"]["consoleSize"] = {"height": 33, "width": 77}
    b.save()
    srv = ConsoleServer(os.path.join(pyrt_tmp, "console.sock"))
    try:
        rt.ok("create", "--console-socket", srv.path, "--bundle", b.path, cid)
        m = srv.master()
        rt.ok("start", cid)
        out = read_until(m, "33 77")
        assert "/dev/pts/0" in out and "33 77" in out
        os.write(m, b"hello\n")
        assert "got=hello" in read_until(m, "got=hello")
        assert util.wait_for(lambda: rt.state(cid)["status"] == "stopped")
    finally:
        srv.close()


def test_console_is_dev_console_and_ctty(rt, make_bundle, cid, pyrt_tmp):
    # /dev/console is the pts (major 136 = 0x88) and the process's controlling tty (tty_nr)
    b = make_bundle(["sh", "-c", "echo \"A=$(stat -c %t /dev/console) B=$(cut -d' ' -f7 /proc/self/stat) E\""],
                    terminal=True)
    srv = ConsoleServer(os.path.join(pyrt_tmp, "console.sock"))
    try:
        rt.ok("create", "--console-socket", srv.path, "--bundle", b.path, cid)
        m = srv.master()
        rt.ok("start", cid)
        out = read_until(m, " E")
        fields = dict(f.split("=") for f in out.split() if "=" in f)
        assert fields["A"] == "88"
        assert fields["B"] != "0"
    finally:
        srv.close()


def test_terminal_without_console_socket_refused_when_detached(rt, make_bundle, cid):
    b = make_bundle(["true"], terminal=True)
    r = rt.run("create", "--bundle", b.path, cid)
    assert r.returncode == 1
    assert "cannot allocate tty if runc will detach without setting console socket" in r.stderr
    b2 = make_bundle(["true"])
    r = rt.run("create", "--console-socket", "/nonexistent.sock", "--bundle", b2.path, cid)
    assert r.returncode == 1
    assert "cannot use console socket if runc will not detach or allocate tty" in r.stderr


def test_exec_console_socket(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sleep", "1000"])
    rt.ok("run", "-d", "--bundle", b.path, cid)
    srv = ConsoleServer(os.path.join(pyrt_tmp, "console.sock"))
    try:
        rt.ok("exec", "-t", "-d", "--console-socket", srv.path, cid, "sh", "-c", SCRIPT)
        m = srv.master()
        out = read_until(m, "\n")
        assert "/dev/pts/" in out
        os.write(m, b"viaexec\n")
        assert "got=viaexec" in read_until(m, "got=viaexec")
    finally:
        srv.close()


def spawn_on_pty(rt, args, rows=40, cols=100):
    """Run the runtime with a fresh pty as stdin/stdout/stderr (like a person's shell)."""
    master, slave = os.openpty()
    set_size(slave, rows, cols)
    argv = rt.cmd + ["--root", rt.root] + list(args)
    p = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    return p, master


def finish(p, master):
    try:
        rest = read_until(master, "\0", timeout=10)  # drain until EOF
        return p.wait(20), rest
    finally:
        os.close(master)


def test_run_t_relays_terminal(rt, make_bundle, cid):
    b = make_bundle(["sh", "-c", "stty size; while read x; do [ \"$x\" = q ] && exit 3; stty size; done"],
                    terminal=True)
    p, m = spawn_on_pty(rt, ["run", "--bundle", b.path, cid], rows=40, cols=100)
    try:
        assert "40 100" in read_until(m, "40 100")
        # a window size change reaches the container's terminal
        set_size(m, 50, 120)
        os.kill(p.pid, signal.SIGWINCH)
        out = ""
        deadline = time.monotonic() + 20
        while "50 120" not in out and time.monotonic() < deadline:
            os.write(m, b"\r")
            out += read_until(m, "\n", timeout=1)
        assert "50 120" in out
        os.write(m, b"q\r")
    except BaseException:
        p.kill()
        raise
    code, _ = finish(p, m)
    assert code == 3


def test_run_t_raw_mode_passes_control_chars(rt, make_bundle, cid):
    # ^C is a byte for the container's terminal (which turns it into SIGINT there), not a
    # signal to the runtime
    b = make_bundle(["sh", "-c", "trap 'echo caught-int; exit 4' INT; echo ready; while :; do sleep 1; done"],
                    terminal=True)
    p, m = spawn_on_pty(rt, ["run", "--bundle", b.path, cid])
    try:
        assert "ready" in read_until(m, "ready")
        os.write(m, b"\x03")
        assert "caught-int" in read_until(m, "caught-int")
    except BaseException:
        p.kill()
        raise
    code, _ = finish(p, m)
    assert code == 4


def test_exec_t_relays_terminal(rt, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    rt.ok("run", "-d", "--bundle", b.path, cid)
    p, m = spawn_on_pty(rt, ["exec", "-t", cid, "sh", "-c", SCRIPT], rows=25, cols=91)
    try:
        out = read_until(m, "25 91")
        assert "/dev/pts/" in out and "25 91" in out
        os.write(m, b"typed\r")
        assert "got=typed" in read_until(m, "got=typed")
    except BaseException:
        p.kill()
        raise
    code, _ = finish(p, m)
    assert code == 3
