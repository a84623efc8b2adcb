"""A step that fails in the init after its wait for `start` (the user's program's exec, a
no_new_privs seccomp filter, a startContainer hook): nobody reads the sync socket then, so
the init writes why into the exec fifo and `start` (and `run`) says it: one line on
stderr, a non-zero exit, nothing left behind but the stopped container (`start`) or
nothing at all (`run`). The fast path of `start` (csrc/launcher.c) and the Python path
alike.

runc 1.1.5: `run` prints the init's own line and exits 1; `start` exits 0 and the line
goes to the container's stderr; it loads a no_new_privs filter before the start wait, so
there `create` fails.
"""
import ctypes
import os
import struct

import pytest
import util

SECCOMP = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]}


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _filters():
    """Allow-all filters, largest first, whose loading fills the kernel's limit on the
    instructions of a task's filter chain (MAX_INSNS_PER_PATH): then the container's own
    filter, whatever its size, is refused (ENOMEM). Built before the fork (preexec_fn)."""
    progs = []
    n = 4096
    while n:
        insns = (struct.pack("HBBI", 0x20, 0, 0, 0) * (n - 1)      # ld [nr]
                 + struct.pack("HBBI", 0x06, 0, 0, 0x7fff0000))    # ret ALLOW
        buf = ctypes.create_string_buffer(insns, len(insns))
        progs.append((buf, _Prog(n, ctypes.addressof(buf))))
        n //= 2
    libc = ctypes.CDLL(None, use_errno=True)

    def fill():
        for _buf, prog in progs:
            while libc.prctl(22, 2, ctypes.byref(prog), 0, 0) == 0:  # PR_SET_SECCOMP
                pass
    return fill


def _bundle(make_bundle, case):
    b = make_bundle(args=["/bin/bad"] if case == "exec" else ["/bin/true"])
    if case == "exec":
        with open(os.path.join(b.rootfs, "bin", "bad"), "wb") as f:
            f.write(b"\x00\x01not a program\n")   # ENOEXEC at the exec, after start
        os.chmod(os.path.join(b.rootfs, "bin", "bad"), 0o755)
    else:
        assert b.config["process"]["noNewPrivileges"]
        b.config["linux"]["seccomp"] = SECCOMP
        b.save()
    return b


WANT = {"exec": "exec /bin/bad: exec format error",
        "seccomp": "cannot allocate memory"}


def _error_lines(stderr):
    return [l for l in stderr.splitlines() if "level=error" in l]


@pytest.mark.parametrize("case", ["exec", "seccomp"])
@pytest.mark.parametrize("fastpath", ["1", "0"])
def test_start_reports_a_failure_after_start(rt, make_bundle, cid, case, fastpath):
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5's start exits 0 here (the line goes to the container)")
    b = _bundle(make_bundle, case)
    pre = _filters() if case == "seccomp" else None
    rt.ok("create", "--bundle", b.path, cid, preexec_fn=pre)
    r = rt.run("start", cid, env={"PYRT_FASTPATH": fastpath})
    assert r.returncode == 1, r
    lines = _error_lines(r.stderr)
    assert len(lines) == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "unable to start container process: error during container init: " in lines[0]
    assert lines[0].endswith(WANT[case] + '"'), r.stderr
    assert rt.state(cid)["status"] == "stopped"
    assert not os.path.exists(os.path.join(rt.root, cid, "exec.fifo"))
    rt.ok("delete", cid)


@pytest.mark.parametrize("case", ["exec", "seccomp"])
@pytest.mark.parametrize("detach", [False, True])
def test_run_reports_a_failure_after_start(rt, make_bundle, cid, case, detach):
    b = _bundle(make_bundle, case)
    pre = _filters() if case == "seccomp" else None
    r = rt.run("run", *(["-d"] if detach else []), "--bundle", b.path, cid, preexec_fn=pre)
    if detach and not rt.is_pyruntime and case == "exec":
        assert r.returncode == 0  # runc 1.1.5: its start does not look
        util.wait_for(lambda: rt.state(cid)["status"] == "stopped")
        rt.ok("delete", cid)
        return
    assert r.returncode != 0, r
    assert WANT[case] in r.stderr, r.stderr
    if rt.is_pyruntime:
        lines = _error_lines(r.stderr)
        assert len(lines) == 1 and r.stderr.count("\n") == 1, r.stderr
        assert lines[0].endswith(WANT[case] + '"'), r.stderr
    assert rt.container_ids() == []
