"""The container's stdio and the files the runtime reads for it.

- Foreground `run`/`exec` without a terminal give the container pipes the runtime relays
  (as runc does), never the caller's own files: a container must not read back what the
  caller's stdout file held, nor rewrite it at offset 0 through /proc/self/fd/1.
- The pipes and the terminal belong to process.user (runc's stdio fix-up), so a non-root
  process can reopen /proc/self/fd/N; /dev/null is never chowned.
- The user lookup (HOME from /etc/passwd) never blocks on, or is steered by, a file the
  container controls: FIFOs, devices, symlinks out of the rootfs, huge files.
"""
import os
import secrets
import stat
import subprocess
import time

import pytest

SECRET = "SECRET-%s\n" % secrets.token_hex(8)


def _running(rt, make_bundle, cid, **process):
    b = make_bundle(["sleep", "1000"])
    b.config["process"].update(process)
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid)
    return b


def _foreground(rt, make_bundle, cid, how, args):
    """The command line that runs `args` in the foreground: `run` of a new container, or
    `exec` in a running one."""
    if how == "run":
        return ["run", "--bundle", make_bundle(args).path, cid]
    _running(rt, make_bundle, cid)
    return ["exec", cid] + args


def _secret_file(pyrt_tmp):
    path = os.path.join(pyrt_tmp, "caller-stdout")
    with open(path, "w") as f:
        f.write(SECRET)
    return path


# Reopen our stdout for reading (in the background: a pipe would block), then reopen it
# read-write without O_APPEND or O_TRUNC and write at offset 0.
PROBE = ("head -c 64 < /proc/self/fd/1 > /tmp/got & p=$!; sleep 0.5; kill $p 2>/dev/null; "
         "grep -q SECRET /tmp/got && echo LEAKED-READ; "
         "printf OVERWRITE 1<>/proc/self/fd/1; echo; echo done")


def _check_probe(path, r):
    with open(path) as f:
        content = f.read()
    assert content.startswith(SECRET), "the host file was rewritten: %r" % content[:80]
    assert "LEAKED-READ" not in content
    assert "done\n" in content, (content, r.stderr)


@pytest.mark.guest
def test_run_cannot_read_or_rewrite_callers_stdout(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sh", "-c", PROBE])
    b.config["root"]["readonly"] = False
    b.save()
    path = _secret_file(pyrt_tmp)
    with open(path, "ab") as out:
        r = rt.run("run", "--bundle", b.path, cid, stdout=out, timeout=30)
    assert r.returncode == 0, r.stderr
    _check_probe(path, r)


@pytest.mark.guest
def test_exec_cannot_read_or_rewrite_callers_stdout(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sleep", "1000"])
    b.config["root"]["readonly"] = False
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid)
    path = _secret_file(pyrt_tmp)
    with open(path, "ab") as out:
        r = rt.run("exec", cid, "sh", "-c", PROBE, stdout=out, timeout=30)
    assert r.returncode == 0, r.stderr
    _check_probe(path, r)


def test_foreground_gets_pipes_detached_inherits(rt, make_bundle, cid, pyrt_tmp):
    show = "for i in 0 1 2; do readlink /proc/self/fd/$i; done"
    b = make_bundle(["sh", "-c", show])
    r = rt.ok("run", "--bundle", b.path, cid)
    assert [line.split(":")[0] for line in r.stdout.split()] == ["pipe"] * 3, r.stdout
    # detached: the caller's own files, as runc
    out = os.path.join(pyrt_tmp, "out")
    with open(out, "w") as f:
        rt.ok("run", "-d", "--bundle", make_bundle(["sh", "-c", show + "; sleep 1000"]).path,
              cid + "d", stdout=f, stderr=f)
        rt.ok("exec", "-d", cid + "d", "sh", "-c", show, stdout=f, stderr=f)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(out) as f:
            lines = f.read().split()
        if len(lines) >= 6:
            break
        time.sleep(0.05)
    assert lines == ["/dev/null", out, out] * 2, lines


def test_large_output_arrives_complete_and_in_order(rt, make_bundle, cid, pyrt_tmp):
    n = 8 << 20
    b = make_bundle(["sh", "-c", "head -c %d /dev/zero; head -c %d /dev/zero >&2; seq 1 30000"
                     % (n, n // 2)])
    path = os.path.join(pyrt_tmp, "big")
    with open(path, "wb") as out:
        r = rt.run("run", "--bundle", b.path, cid, stdout=out, timeout=60)
    assert r.returncode == 0
    assert len(r.stderr) == n // 2
    with open(path, "rb") as f:
        data = f.read()
    assert data[:n] == b"\0" * n
    assert data[n:].decode().split() == [str(i) for i in range(1, 30001)]


def test_large_output_through_a_pipe_to_exec(rt, make_bundle, cid):
    _running(rt, make_bundle, cid)
    n = 6 << 20
    r = rt.run("exec", cid, "head", "-c", str(n), "/dev/zero", stdout=subprocess.PIPE, timeout=60)
    assert r.returncode == 0
    assert len(r.stdout) == n


@pytest.mark.parametrize("how", ["run", "exec"])
def test_stdin_eof_and_big_stdin(rt, make_bundle, cid, how):
    data = "".join("line %d\n" % i for i in range(200000))  # ~2.5 MB, both ways at once
    argv = _foreground(rt, make_bundle, cid, how, ["cat"])
    r = rt.run(*argv, input=data, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == data
    # EOF with nothing sent: the container sees it at once
    if how == "exec":
        r = rt.run("exec", cid, "sh", "-c", "cat; echo eof", input="", timeout=20)
        assert r.stdout == "eof\n"


def test_dev_null_stdin_is_an_ended_pipe(rt, make_bundle, cid):
    # /dev/null as stdin is not relayed (nothing to move): the process still gets a pipe
    # of ours, never the caller's file, and reads EOF at once
    probe = "readlink /proc/self/fd/0; cat; echo eof"
    r = rt.run("run", "--bundle", make_bundle(["sh", "-c", probe]).path, cid,
               stdin=subprocess.DEVNULL, timeout=20)
    assert r.returncode == 0 and r.stdout.startswith("pipe:[") and r.stdout.endswith("\neof\n"), r
    _running(rt, make_bundle, cid + "e")
    r = rt.run("exec", cid + "e", "sh", "-c", probe, stdin=subprocess.DEVNULL, timeout=20)
    assert r.returncode == 0 and r.stdout.startswith("pipe:[") and r.stdout.endswith("\neof\n"), r


def test_exit_codes_kept(rt, make_bundle, cid):
    assert rt.run("run", "--bundle", make_bundle(["sh", "-c", "echo x; exit 7"]).path,
                  cid).returncode == 7
    # a signal the runtime forwards: the exit status says which
    b = make_bundle(["sh", "-c", "trap 'exit 5' TERM; echo up; while :; do sleep 0.05; done"])
    p = subprocess.Popen(rt.cmd + ["--root", rt.root, "run", "--bundle", b.path, cid + "k"],
                         stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        assert p.stdout.readline() == b"up\n"
        p.send_signal(15)
        assert p.wait(20) == 5
    finally:
        p.kill()
        p.wait()
    _running(rt, make_bundle, cid + "e")
    r = rt.run("exec", cid + "e", "sh", "-c", "echo out; echo err >&2; exit 9")
    assert (r.returncode, r.stdout, r.stderr) == (9, "out\n", "err\n")


# ---- ownership -------------------------------------------------------------------------

REOPEN = ("echo reopened-out > /proc/self/fd/1 && echo reopened-err > /proc/self/fd/2 && "
          "stat -L -c %u /proc/self/fd/0 /proc/self/fd/1 /proc/self/fd/2")


@pytest.mark.guest
def test_run_pipes_belong_to_user(rt, make_bundle, cid):
    b = make_bundle(["sh", "-c", REOPEN])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.save()
    r = rt.run("run", "--bundle", b.path, cid, input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["reopened-out", "1000", "1000", "1000"]
    assert r.stderr == "reopened-err\n"


def test_exec_pipes_belong_to_user(rt, make_bundle, cid):
    _running(rt, make_bundle, cid)
    r = rt.run("exec", "--user", "1000:1000", cid, "sh", "-c", REOPEN, input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["reopened-out", "1000", "1000", "1000"]
    assert r.stderr == "reopened-err\n"


TTY_PROBE = "echo reopened > $(tty) && stat -L -c %u:%g /proc/self/fd/0 && echo ok; exit 3"


def _on_pty(rt, args):
    from test_tty import finish, spawn_on_pty
    p, m = spawn_on_pty(rt, args)
    try:
        code, out = finish(p, m)
    except BaseException:
        p.kill()
        p.wait()
        raise
    return code, out.split()


def test_run_t_terminal_belongs_to_user(rt, make_bundle, cid):
    b = make_bundle(["sh", "-c", TTY_PROBE], terminal=True)
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.save()
    assert _on_pty(rt, ["run", "--bundle", b.path, cid]) == (3, ["reopened", "1000:5", "ok"])


def test_exec_t_user_terminal_belongs_to_user(rt, make_bundle, cid):
    _running(rt, make_bundle, cid)
    assert _on_pty(rt, ["exec", "-t", "--user", "1000:1000", cid, "sh", "-c", TTY_PROBE]) == (
        3, ["reopened", "1000:5", "ok"])


def test_dev_null_never_chowned(rt, make_bundle, cid):
    before = os.stat("/dev/null")
    b = make_bundle(["sh", "-c", "true"])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid, stdout=subprocess.DEVNULL,
          stderr=subprocess.DEVNULL)
    _running(rt, make_bundle, cid + "x")
    rt.ok("exec", "-d", "--user", "1000:1000", cid + "x", "true", stdout=subprocess.DEVNULL,
          stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    after = os.stat("/dev/null")
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid,
                                                             before.st_mode)


def test_detached_never_chowns_a_host_file(rt, make_bundle, cid, pyrt_tmp):
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1 chowns whatever stdio it inherits, host files included")
    path = os.path.join(pyrt_tmp, "log")
    open(path, "w").close()
    b = make_bundle(["sh", "-c", "echo hi"])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.save()
    with open(path, "a") as f:
        rt.ok("run", "-d", "--bundle", b.path, cid, stdout=f, stderr=f)
    time.sleep(0.3)
    assert os.stat(path).st_uid == 0


# ---- files the runtime reads in the rootfs ---------------------------------------------

HOSTILE = ["fifo", "chardev", "proc_link", "host_link_rel", "host_link_abs", "huge"]


def _make_hostile(kind, rootfs, pyrt_tmp):
    """Replace rootfs/etc/passwd from the host side."""
    passwd = os.path.join(rootfs, "etc", "passwd")
    os.unlink(passwd)
    host = os.path.join(pyrt_tmp, "host-passwd")
    with open(host, "w") as f:
        f.write("root:x:0:0::/LEAKED:/bin/sh\nuser:x:1000:1000::/LEAKED:/bin/sh\n")
    if kind == "fifo":
        os.mkfifo(passwd)
    elif kind == "chardev":
        os.mknod(passwd, stat.S_IFCHR | 0o644, os.makedev(1, 5))  # a /dev/zero
    elif kind == "proc_link":
        os.symlink("/proc/self/environ", passwd)
    elif kind == "host_link_rel":
        os.symlink("../../../../../../../../../.." + host, passwd)
    elif kind == "host_link_abs":
        os.symlink(host, passwd)
    elif kind == "huge":
        with open(passwd, "wb") as f:
            f.truncate(100 << 20)
            f.seek(100 << 20)
            f.write(b"\nuser:x:1000:1000::/LEAKED:/bin/sh\n")


def _skip_runc_blocks(rt, kind):
    if not rt.is_pyruntime and kind == "fifo":
        pytest.skip("runc 1.1 blocks forever on a FIFO /etc/passwd")


def _check_outcome(rt, kind, r):
    if kind in ("fifo", "chardev", "huge"):
        # a file that cannot be a passwd: one line, as runc says when it cannot parse it
        assert r.returncode != 0 and r.stdout == ""
        assert len(r.stderr.splitlines()) == 1, r.stderr
        if rt.is_pyruntime:
            assert "/etc/passwd" in r.stderr, r.stderr
    else:
        # nothing there inside the rootfs: runc's default
        assert (r.returncode, r.stdout) == (0, "HOME=/\n"), r.stderr


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_passwd_at_run(rt, make_bundle, cid, pyrt_tmp, kind):
    _skip_runc_blocks(rt, kind)
    b = make_bundle(["sh", "-c", "echo HOME=$HOME"])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.save()
    _make_hostile(kind, b.rootfs, pyrt_tmp)
    t = time.monotonic()
    r = rt.run("run", "--bundle", b.path, cid, timeout=20)
    assert time.monotonic() - t < 10
    _check_outcome(rt, kind, r)


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_passwd_at_exec(rt, make_bundle, cid, pyrt_tmp, kind):
    _skip_runc_blocks(rt, kind)
    b = _running(rt, make_bundle, cid)
    assert rt.ok("exec", "--user", "1000", cid, "sh", "-c", "echo $HOME").stdout == "/home/user\n"
    _make_hostile(kind, b.rootfs, pyrt_tmp)
    t = time.monotonic()
    r = rt.run("exec", "--user", "1000", cid, "sh", "-c", "echo HOME=$HOME", timeout=20)
    assert time.monotonic() - t < 10
    _check_outcome(rt, kind, r)
    # the container still works once its passwd is a file again
    os.unlink(os.path.join(b.rootfs, "etc", "passwd"))
    assert rt.ok("exec", "--user", "1000", cid, "sh", "-c", "echo $HOME").stdout == "/\n"


@pytest.mark.guest
def test_container_made_fifo_passwd_does_not_hang_exec(rt, make_bundle, cid):
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1 blocks forever on a FIFO /etc/passwd")
    b = make_bundle(["sleep", "1000"])
    b.config["root"]["readonly"] = False
    b.config["process"]["capabilities"] = {k: ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER"]
                                           for k in ("bounding", "effective", "permitted")}
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid)
    rt.ok("exec", cid, "sh", "-c", "rm /etc/passwd && mkfifo /etc/passwd")
    t = time.monotonic()
    r = rt.run("exec", "--user", "1000", cid, "sh", "-c", "echo HOME=$HOME", timeout=20)
    assert time.monotonic() - t < 10
    _check_outcome(rt, "fifo", r)
    # with HOME given, the runtime has nothing to look up: the container can repair it
    rt.ok("exec", "--env", "HOME=/root", cid, "sh", "-c", "rm /etc/passwd && echo fixed")
    # and a link to its own /proc
    rt.ok("exec", cid, "sh", "-c", "ln -s /proc/1/environ /etc/passwd")
    r = rt.run("exec", "--user", "1000", cid, "sh", "-c", "echo HOME=$HOME", timeout=20)
    assert (r.returncode, r.stdout) == (0, "HOME=/\n"), r.stderr


@pytest.mark.parametrize("how", ["run", "exec"])
def test_joined_stdout_stderr_keep_their_order(rt, make_bundle, cid, pyrt_tmp, how):
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1 relays stdout and stderr through two pipes: 2>&1 loses order")
    script = "i=0; while [ $i -lt 300 ]; do echo o$i; echo e$i >&2; i=$((i+1)); done"
    argv = _foreground(rt, make_bundle, cid, how, ["sh", "-c", script])
    path = os.path.join(pyrt_tmp, "both")
    with open(path, "wb") as f:
        rt.ok(*argv, stdout=f, stderr=f)
    with open(path) as f:
        assert f.read().split() == [x for i in range(300) for x in ("o%d" % i, "e%d" % i)]


@pytest.mark.parametrize("how", ["run", "exec"])
def test_reader_gone_stops_the_writer(rt, make_bundle, cid, how):
    # `runtime run ... | head -c 10`: the container's next write fails as it would
    # without a runtime in between, and nobody hangs
    argv = _foreground(rt, make_bundle, cid, how, ["yes"])
    p = subprocess.Popen(rt.cmd + ["--root", rt.root] + argv, stdout=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert p.stdout.read(10) == b"y\ny\ny\ny\ny\n"
        p.stdout.close()
        code = p.wait(20)
    finally:
        p.kill()
        p.wait()
    # as the namespace's init, yes is immune to an unhandled SIGPIPE: its write fails
    # with EPIPE and it exits 1; exec'd, SIGPIPE kills it
    assert code == (1 if how == "run" else 128 + 13), p.stderr.read()


def test_exec_returns_when_its_process_exits_despite_a_writing_child(rt, make_bundle, cid):
    # what the process wrote is out; a child it left behind, still writing, gets EPIPE
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1 waits for every writer of the pipe: this never returns")
    _running(rt, make_bundle, cid)
    t = time.monotonic()
    r = rt.run("exec", cid, "sh", "-c", "(while :; do echo bg; done) & echo fg; exit 4",
               timeout=30)
    assert time.monotonic() - t < 10
    assert r.returncode == 4
    assert "fg\n" in r.stdout


@pytest.mark.parametrize("how", ["run", "exec"])
def test_unread_stdin_does_not_stall_output(rt, make_bundle, cid, how):
    script = "head -c 3000000 /dev/zero; exit 6"
    argv = _foreground(rt, make_bundle, cid, how, ["sh", "-c", script])
    r = rt.run(*argv, input="x" * (4 << 20), stdout=subprocess.PIPE, timeout=60)
    assert r.returncode == 6
    assert len(r.stdout) == 3000000


def test_detached_inherited_pipe_belongs_to_user(rt, make_bundle, cid):
    # an engine's pipe handed to `run -d`/`create` is fixed up as runc does
    b = make_bundle(["sh", "-c", "echo reopened > /proc/self/fd/1 && stat -L -c %u /proc/self/fd/1"])
    b.config["process"]["user"] = {"uid": 1000, "gid": 1000}
    b.save()
    r = rt.run("run", "-d", "--bundle", b.path, cid, stdout=subprocess.PIPE, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["reopened", "1000"]


_BG_JOB = r"""
import os, sys
os.setsid()
tty = os.open(sys.argv[1], os.O_RDWR)   # our controlling terminal; we stay its foreground
out = os.open(sys.argv[2], os.O_WRONLY)
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)                    # a background job, as `runtime exec ... &`
    os.dup2(tty, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.execvp(sys.argv[3], sys.argv[3:])
_, status, ru = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), ru.ru_utime + ru.ru_stime)
"""


@pytest.mark.parametrize("how", ["run", "exec"])
def test_background_job_on_a_terminal_does_not_spin(rt, make_bundle, cid, pyrt_tmp, how):
    # Reading a terminal from a background job raises SIGTTIN: the relay must neither
    # spin on it nor pass it on (it would stop the container's process).
    import sys
    script = "sleep 1; echo done; exit 3"
    argv = _foreground(rt, make_bundle, cid, how, ["sh", "-c", script])
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1 reads the terminal from the background and stops until `fg`")
    master, slave = os.openpty()
    os.write(master, b"typed at the shell\n")   # the terminal has input: reading it is tempting
    out = os.path.join(pyrt_tmp, "out")
    open(out, "w").close()
    try:
        r = subprocess.run([sys.executable, "-c", _BG_JOB, os.ttyname(slave), out]
                           + rt.cmd + ["--root", rt.root] + argv,
                           capture_output=True, text=True, timeout=30)
    finally:
        os.close(slave)
        os.close(master)
    code, cpu = r.stdout.split()
    with open(out) as f:
        assert f.read() == "done\n"
    assert int(code) == 3
    assert float(cpu) < 0.8
