"""No runtime-internal fd ever reaches a container process.

--preserve-fds N passes the caller's fds 3..3+N-1 that were open when the runtime started,
nothing else: not the runtime's locked state dir (start/delete would block on its lock
forever, and the container could reach the host through it), its fifo, rootfs or sync
socket, nor the namespace fds of an exec. The init closes the rest before a seccomp filter
is loaded, so an allow-list without close_range changes nothing.
"""
import json
import os
import subprocess

import pytest

LISTING = ("ls /proc/self/fd; echo --; "
           "for n in 0 1 2 3 4 5 6 7 8 9 10 11 12; do "
           "l=$(readlink /proc/self/fd/$n) && echo \"$n $l\"; done; true")

HERE = os.path.dirname(os.path.abspath(__file__))


def _argv(rt, fd3, args):
    """The runtime started by a shell that opened only fd 3 (on `fd3`)."""
    return ["sh", "-c", 'exec 3<"$F"; exec "$@"', "sh"] + rt.cmd + ["--root", rt.root] + list(args)


def _run(rt, pyrt_tmp, args, out=None, timeout=30):
    """Output to files, not pipes: a created container keeps the runtime's stdio."""
    import tempfile
    f = os.path.join(pyrt_tmp, "callers-file")
    if not os.path.exists(f):
        with open(f, "w") as fh:
            fh.write("preserved\n")
    env = dict(os.environ, F=f)
    with tempfile.TemporaryFile(dir=pyrt_tmp) as o, tempfile.TemporaryFile(dir=pyrt_tmp) as e:
        p = subprocess.run(_argv(rt, f, args), cwd=pyrt_tmp, env=env, stdout=out or o, stderr=e,
                           stdin=subprocess.DEVNULL, timeout=timeout)
        o.seek(0)
        e.seek(0)
        return subprocess.CompletedProcess(p.args, p.returncode, o.read().decode(),
                                           e.read().decode()), f


def _runc_refuses(rt, r):
    """runc refuses --preserve-fds beyond the fds it was given (one line, exit non-zero);
    pyruntime passes the open ones. Either way nothing else reaches the container."""
    if rt.is_pyruntime:
        return False
    assert r.returncode != 0 and "unable to stat preserved-fd" in r.stderr, r.stderr
    return True


def _check_listing(text, callers_file):
    """Only stdio, the caller's fd 3 and ls's own directory fd; every fd that resolves
    anywhere is stdio or the caller's file (no state dir, fifo, rootfs, nsfs)."""
    ls, _, links = text.partition("--\n")
    nums = sorted(int(x) for x in ls.split())
    assert nums == [0, 1, 2, 3, 4], text
    got = dict(line.split(" ", 1) for line in links.splitlines() if " " in line)
    assert got.get("3") == callers_file, text
    for n, target in got.items():
        if n in ("0", "1", "2", "3"):
            continue
        # the readlink child's fd 4 is closed: anything listed beyond is a leak
        raise AssertionError("fd %s -> %s leaked into the container:\n%s" % (n, target, text))


def _wait_file(path, needle, timeout=20):
    import time
    end = time.time() + timeout
    while time.time() < end:
        try:
            with open(path) as f:
                t = f.read()
            if needle in t:
                return t
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    raise AssertionError("no %r in %s" % (needle, path))


def _create_start_delete(rt, b, cid, pyrt_tmp, preserve):
    outp = os.path.join(pyrt_tmp, "out-" + cid)
    with open(outp, "w") as out:
        r, f = _run(rt, pyrt_tmp, ["create", "--preserve-fds", str(preserve), "-b", b.path, cid],
                    out=out)
    if preserve > 1 and _runc_refuses(rt, r):
        return None, f
    assert r.returncode == 0, r.stderr
    # the init holds nothing of the runtime's: start and delete take the lock at once
    rt.ok("start", cid, timeout=20)
    text = _wait_file(outp, "\nEND\n")
    rt.ok("delete", "-f", cid, timeout=20)
    return text.replace("END\n", ""), f


@pytest.mark.guest
def test_create_preserve_fds_more_than_open(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sh", "-c", LISTING + "; echo END"])
    text, f = _create_start_delete(rt, b, cid, pyrt_tmp, 8)
    if text is not None:
        _check_listing(text, f)


def test_run_preserve_fds_more_than_open(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sh", "-c", LISTING])
    r, f = _run(rt, pyrt_tmp, ["run", "--preserve-fds", "8", "-b", b.path, cid])
    if _runc_refuses(rt, r):
        return
    assert r.returncode == 0, r.stderr
    _check_listing(r.stdout, f)


@pytest.mark.guest
def test_exec_preserve_fds_more_than_open(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sleep", "1000"])
    rt.ok("run", "-d", "-b", b.path, cid)
    r, f = _run(rt, pyrt_tmp, ["exec", "--preserve-fds", "8", cid, "sh", "-c", LISTING])
    if not _runc_refuses(rt, r):
        assert r.returncode == 0, r.stderr
        _check_listing(r.stdout, f)
    rt.ok("delete", "-f", cid, timeout=20)


def _profile_without_close_range(errno_ret, also=()):
    with open(os.path.join(os.path.dirname(HERE), "spec-fixtures", "seccomp",
                           "docker-default-amd64.json")) as fh:
        prof = json.load(fh)
    for rule in prof.get("syscalls") or ():
        rule["names"] = [n for n in rule.get("names") or ()
                         if n != "close_range" and n not in also]
    prof["syscalls"] = [r for r in prof["syscalls"] if r.get("names")]
    prof["defaultAction"] = "SCMP_ACT_ERRNO"
    prof["defaultErrnoRet"] = errno_ret
    return prof


@pytest.mark.guest
@pytest.mark.parametrize("also", [(), ("openat2",)], ids=["", "no-openat2"])
@pytest.mark.parametrize("errno_ret", [1, 38])
def test_seccomp_allow_list_without_close_range(rt, make_bundle, cid, pyrt_tmp, errno_ret, also):
    """The OCI validation suite's shape: an allow-list lacking close_range (and, as in
    that suite, openat2, which the init's chdir uses) and noNewPrivileges false.
    create/start/delete complete; the container sees only stdio (and the caller's
    preserved fd)."""
    b = make_bundle(["sh", "-c", LISTING + "; echo END"])
    b.config["process"]["noNewPrivileges"] = False
    b.config["linux"]["seccomp"] = _profile_without_close_range(errno_ret, also)
    b.save()
    text, f = _create_start_delete(rt, b, cid, pyrt_tmp, 1)
    _check_listing(text, f)


# Runs argv[1:] under a seccomp filter that fails close_range with ENOSYS (as an old kernel
# or a strict profile would); x86_64 syscall numbers.
NO_CLOSE_RANGE = r'''
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
def ins(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)
prog = (ins(0x20, 0) + ins(0x15, 436, 0, 1) +          # A = nr; nr == close_range?
        ins(0x06, 0x00050000 | 38) + ins(0x06, 0x7fff0000))  # ENOSYS : allow
buf = ctypes.create_string_buffer(prog, len(prog))
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
p = Prog(len(prog) // 8, ctypes.addressof(buf))
assert libc.prctl(38, 1, 0, 0, 0) == 0                  # PR_SET_NO_NEW_PRIVS
assert libc.syscall(317, 1, 0, ctypes.byref(p)) == 0    # seccomp(SET_MODE_FILTER)
assert libc.syscall(436, 3, 3, 0) == -1 and ctypes.get_errno() == 38
os.execvp(sys.argv[1], sys.argv[1:])
'''


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the filter uses x86_64 numbers")
def test_fds_closed_without_close_range(rt, make_bundle, cid, pyrt_tmp):
    """The runtime and its init where close_range fails: the caller's stray fds (5, 9)
    still never reach the container."""
    import sys
    wrap = os.path.join(pyrt_tmp, "no_close_range.py")
    with open(wrap, "w") as fh:
        fh.write(NO_CLOSE_RANGE)
    f = os.path.join(pyrt_tmp, "callers-file")
    with open(f, "w") as fh:
        fh.write("x\n")
    b = make_bundle(["sh", "-c", "ls /proc/self/fd"])
    argv = (["sh", "-c", 'exec 5<"$F" 9<"$F"; exec "$@"', "sh", sys.executable, wrap]
            + rt.cmd + ["--root", rt.root, "run", "-b", b.path, cid])
    r = subprocess.run(argv, cwd=pyrt_tmp, env=dict(os.environ, F=f), capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    assert sorted(int(x) for x in r.stdout.split()) == [0, 1, 2, 3], r.stdout
