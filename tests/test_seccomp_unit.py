"""pyruntime.seccomp: compile OCI seccomp configs and check what the filters really do.

Every filter is loaded in a forked child (seccomp.load_for_test), which runs a syscall and
reports through its exit status; the pytest process itself is never filtered.
"""
import copy
import ctypes
import errno
import json
import os
import resource
import signal
import struct

import pytest

import util
from pyruntime import seccomp
from pyruntime.errors import SeccompError

DOCKER_PROFILE = os.path.join(util.REPO, "spec-fixtures", "seccomp", "docker-default-amd64.json")
BUSYBOX = "/bin/busybox"

# What the forked Python child needs between loading a default-deny filter and os._exit.
PY_BASE = ["brk", "mmap", "munmap", "mremap", "madvise", "mprotect", "rt_sigaction",
           "rt_sigprocmask", "rt_sigreturn", "sigaltstack", "exit", "exit_group", "write",
           "read", "close", "futex", "getpid", "gettid", "newfstatat", "fstat", "lseek",
           "getrandom", "clock_gettime"]

SYS_PERSONALITY = 135  # x86_64
SYS_UMASK = 95  # glibc's umask() does not report errors, so call it raw
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64",
                                reason="syscall numbers in these tests are x86_64's")


def raw_syscall(nr, *args):
    """errno of a raw syscall, 0 on success."""
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) for a in args])
    return ctypes.get_errno() if r == -1 else 0


def errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


def in_child(prog, fn, setup=None):
    """Fork; the child loads `prog` then exits with fn()'s value (0-255).
    Returns the raw wait status."""
    pid = os.fork()
    if pid == 0:
        code = 250
        try:
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # SIGSYS would dump core
            if setup:
                setup()
            seccomp.load_for_test(prog)
            code = fn()
        except BaseException:
            code = 251
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return status


def exit_code(status):
    assert os.WIFEXITED(status), "child died: %r" % (os.WTERMSIG(status) if os.WIFSIGNALED(status) else status)
    return os.WEXITSTATUS(status)


def cfg(default="SCMP_ACT_ALLOW", rules=(), **kw):
    c = {"defaultAction": default, "syscalls": list(rules)}
    c.update(kw)
    return c


def rule(names, action, **kw):
    r = {"names": list(names), "action": action}
    r.update(kw)
    return r


def arg(index, value, op, value2=None):
    a = {"index": index, "value": value, "op": op}
    if value2 is not None:
        a["valueTwo"] = value2
    return a


@pytest.fixture
def tmpdir_path(tmp_path):
    return str(tmp_path)


def test_library_version():
    v = seccomp.library_version()
    assert [int(p) for p in v.split(".")] >= [2, 5, 0]


def test_program_shape():
    p = seccomp.compile(cfg(rules=[rule(["mkdir"], "SCMP_ACT_ERRNO")]))
    assert isinstance(p.bpf, bytes) and len(p.bpf) % 8 == 0 and p.insns == len(p.bpf) // 8
    assert p.notify is False
    # Every libseccomp program starts by loading seccomp_data.arch.
    code, jt, jf, k = struct.unpack("=HBBI", p.bpf[:8])
    assert (code, k) == (0x20, 4)


@pytest.mark.parametrize("errno_ret, expected", [(None, errno.EPERM), (errno.ENOTSUP, errno.ENOTSUP)])
def test_errno_action(tmpdir_path, errno_ret, expected):
    kw = {} if errno_ret is None else {"errnoRet": errno_ret}
    p = seccomp.compile(cfg(rules=[rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", **kw)]))
    target = os.path.join(tmpdir_path, "d")
    assert exit_code(in_child(p, lambda: errno_of(os.mkdir, target))) == expected
    assert not os.path.exists(target)
    # Other syscalls are untouched.
    assert exit_code(in_child(p, lambda: errno_of(os.rmdir, target))) == errno.ENOENT


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_PROCESS"])
def test_kill_actions(tmpdir_path, action):
    p = seccomp.compile(cfg(rules=[rule(["mkdir", "mkdirat"], action)]))
    status = in_child(p, lambda: errno_of(os.mkdir, os.path.join(tmpdir_path, "d")))
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSYS


def test_trap_delivers_sigsys(tmpdir_path):
    got = []

    def setup():
        signal.signal(signal.SIGSYS, lambda *a: got.append(1))

    def fn():
        errno_of(os.mkdir, os.path.join(tmpdir_path, "d"))
        return 7 if got else 8

    p = seccomp.compile(cfg(rules=[rule(["mkdir", "mkdirat"], "SCMP_ACT_TRAP")]))
    assert exit_code(in_child(p, fn, setup)) == 7
    assert not os.path.exists(os.path.join(tmpdir_path, "d"))


def test_trace_without_tracer_is_enosys(tmpdir_path):
    # No tracer attached: the kernel fails the syscall with ENOSYS (errnoRet is the
    # value a tracer would see in PTRACE_GETEVENTMSG).
    p = seccomp.compile(cfg(rules=[rule(["mkdir", "mkdirat"], "SCMP_ACT_TRACE", errnoRet=5)]))
    assert exit_code(in_child(p, lambda: errno_of(os.mkdir, os.path.join(tmpdir_path, "d")))) \
        == errno.ENOSYS
    assert not os.path.exists(os.path.join(tmpdir_path, "d"))


def test_default_errno_ret(tmpdir_path):
    p = seccomp.compile(cfg("SCMP_ACT_ERRNO", [rule(PY_BASE, "SCMP_ACT_ALLOW")],
                            defaultErrnoRet=errno.ENXIO))
    assert exit_code(in_child(p, lambda: errno_of(os.mkdir, os.path.join(tmpdir_path, "d")))) \
        == errno.ENXIO


def test_default_errno_is_eperm(tmpdir_path):
    p = seccomp.compile(cfg("SCMP_ACT_ERRNO", [rule(PY_BASE, "SCMP_ACT_ALLOW")]))
    assert exit_code(in_child(p, lambda: errno_of(os.mkdir, os.path.join(tmpdir_path, "d")))) \
        == errno.EPERM


def test_log_allows(tmpdir_path):
    p = seccomp.compile(cfg("SCMP_ACT_ERRNO", [rule(PY_BASE, "SCMP_ACT_ALLOW"),
                                               rule(["mkdir", "mkdirat"], "SCMP_ACT_LOG")],
                            defaultErrnoRet=errno.ENXIO))
    target = os.path.join(tmpdir_path, "d")
    assert exit_code(in_child(p, lambda: errno_of(os.mkdir, target))) == 0
    assert os.path.isdir(target)


def test_arg_filter_personality():
    # Docker's style: personality allowed only for given personas.
    p = seccomp.compile(cfg("SCMP_ACT_ERRNO", [
        rule(PY_BASE, "SCMP_ACT_ALLOW"),
        rule(["personality"], "SCMP_ACT_ALLOW", args=[arg(0, 0xFFFFFFFF, "SCMP_CMP_EQ")]),
    ], defaultErrnoRet=errno.ENXIO))
    assert exit_code(in_child(p, lambda: raw_syscall(SYS_PERSONALITY, 0xFFFFFFFF))) == 0
    assert exit_code(in_child(p, lambda: raw_syscall(SYS_PERSONALITY, 0x20000))) == errno.ENXIO


def test_same_index_args_are_ored():
    p = seccomp.compile(cfg("SCMP_ACT_ERRNO", [
        rule(PY_BASE, "SCMP_ACT_ALLOW"),
        rule(["personality"], "SCMP_ACT_ALLOW",
             args=[arg(0, 0xFFFFFFFF, "SCMP_CMP_EQ"), arg(0, 0, "SCMP_CMP_EQ")]),
    ], defaultErrnoRet=errno.ENXIO))
    assert exit_code(in_child(p, lambda: raw_syscall(SYS_PERSONALITY, 0xFFFFFFFF))) == 0
    assert exit_code(in_child(p, lambda: raw_syscall(SYS_PERSONALITY, 0))) == 0
    assert exit_code(in_child(p, lambda: raw_syscall(SYS_PERSONALITY, 8))) == errno.ENXIO


def test_different_index_args_are_anded():
    # kill(own pid, 0) allowed; a match on one argument alone is not enough.
    p = seccomp.compile(cfg("SCMP_ACT_ERRNO", [
        rule(PY_BASE, "SCMP_ACT_ALLOW"),
        rule(["kill"], "SCMP_ACT_ALLOW", args=[arg(1, 0, "SCMP_CMP_EQ"), arg(0, 1, "SCMP_CMP_NE")]),
    ], defaultErrnoRet=errno.ENXIO))
    assert exit_code(in_child(p, lambda: errno_of(os.kill, os.getpid(), 0))) == 0
    assert exit_code(in_child(p, lambda: errno_of(os.kill, 1, 0))) == errno.ENXIO
    assert exit_code(in_child(p, lambda: errno_of(os.kill, os.getpid(), signal.SIGCONT))) \
        == errno.ENXIO


def test_masked_eq():
    # umask(m) denied when (m & 0o077) == 0o022, whatever the other bits.
    p = seccomp.compile(cfg(rules=[rule(["umask"], "SCMP_ACT_ERRNO", errnoRet=errno.EBADE,
                                        args=[arg(0, 0o077, "SCMP_CMP_MASKED_EQ", 0o022)])]))
    assert exit_code(in_child(p, lambda: raw_syscall(SYS_UMASK, 0o022))) == errno.EBADE
    assert exit_code(in_child(p, lambda: raw_syscall(SYS_UMASK, 0o722))) == errno.EBADE
    assert exit_code(in_child(p, lambda: raw_syscall(SYS_UMASK, 0o027))) == 0


@pytest.mark.parametrize("op, allowed, denied", [
    ("SCMP_CMP_NE", [0o027], [0o022]),
    ("SCMP_CMP_LT", [0o021], [0o022, 0o023]),
    ("SCMP_CMP_LE", [0o021, 0o022], [0o023]),
    ("SCMP_CMP_GE", [0o022, 0o023], [0o021]),
    ("SCMP_CMP_GT", [0o023], [0o021, 0o022]),
])
def test_comparison_ops(op, allowed, denied):
    # The rule allows; everything else about umask gets EBADE.
    p = seccomp.compile(cfg("SCMP_ACT_ERRNO", [
        rule(PY_BASE, "SCMP_ACT_ALLOW"),
        rule(["umask"], "SCMP_ACT_ALLOW", args=[arg(0, 0o022, op)]),
    ], defaultErrnoRet=errno.EBADE))
    for m in allowed:
        assert exit_code(in_child(p, lambda: raw_syscall(SYS_UMASK, m))) == 0, oct(m)
    for m in denied:
        assert exit_code(in_child(p, lambda: raw_syscall(SYS_UMASK, m))) == errno.EBADE, oct(m)


def test_unknown_syscall_name_skipped(tmpdir_path):
    p = seccomp.compile(cfg(rules=[rule(["pyrt_no_such_syscall", "mkdir", "mkdirat"],
                                        "SCMP_ACT_ERRNO", errnoRet=errno.EROFS)]))
    assert exit_code(in_child(p, lambda: errno_of(os.mkdir, os.path.join(tmpdir_path, "d")))) \
        == errno.EROFS
    only_unknown = seccomp.compile(cfg(rules=[rule(["pyrt_no_such_syscall"], "SCMP_ACT_KILL")]))
    assert only_unknown.bpf == seccomp.compile(cfg()).bpf


def test_rule_equal_to_default_skipped():
    # libseccomp refuses such a rule; runc drops it, and so do we.
    same = seccomp.compile(cfg("SCMP_ACT_ERRNO", [rule(["mkdir"], "SCMP_ACT_ERRNO", errnoRet=1)],
                               defaultErrnoRet=1, flags=[]))
    assert same.insns > 0
    assert seccomp.compile(cfg(rules=[rule(["mkdir"], "SCMP_ACT_ALLOW")])).bpf == \
        seccomp.compile(cfg()).bpf


def test_non_native_only_syscall_accepted():
    # chown32 exists on x86 only: fine in a multi-arch profile, no effect natively.
    p = seccomp.compile(cfg(rules=[rule(["chown32"], "SCMP_ACT_ERRNO")],
                            architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]))
    assert p.insns > 0


@pytest.mark.parametrize("bad, message", [
    (cfg(rules=[rule(["read"], "SCMP_ACT_ALLOW"), rule(["mkdir"], "SCMP_ACT_FOO")]),
     "seccomp: syscalls[1]: unknown action SCMP_ACT_FOO"),
    (cfg("SCMP_ACT_NOPE"), "seccomp: defaultAction: unknown action SCMP_ACT_NOPE"),
    ({"syscalls": []}, "seccomp: defaultAction: unknown action None"),
    (cfg(rules=[rule([], "SCMP_ACT_ERRNO")]), "seccomp: syscalls[0]: names must be a non-empty list"),
    (cfg(rules=[rule([""], "SCMP_ACT_ERRNO")]), "seccomp: syscalls[0]: names[0]"),
    (cfg(rules=[rule(["mkdir"], "SCMP_ACT_ERRNO", args=[arg(6, 0, "SCMP_CMP_EQ")])]),
     "seccomp: syscalls[0].args[0]: index 6 out of range (0-5)"),
    (cfg(rules=[rule(["mkdir"], "SCMP_ACT_ERRNO", args=[arg(0, 0, "SCMP_CMP_EQ"), arg(1, 0, "EQ")])]),
     "seccomp: syscalls[0].args[1]: unknown operator 'EQ'"),
    (cfg(rules=[rule(["mkdir"], "SCMP_ACT_ERRNO", args=[arg(0, -1, "SCMP_CMP_EQ")])]),
     "seccomp: syscalls[0].args[0]: value -1 is not a 64-bit unsigned integer"),
    (cfg(rules=[rule(["mkdir"], "SCMP_ACT_ALLOW", errnoRet=1)], default="SCMP_ACT_ERRNO"),
     "seccomp: syscalls[0]: errnoRet is not allowed with action SCMP_ACT_ALLOW"),
    (cfg(defaultErrnoRet=1), "seccomp: defaultAction: defaultErrnoRet is not allowed with action SCMP_ACT_ALLOW"),
    (cfg(rules=[rule(["mkdir"], "SCMP_ACT_ERRNO", errnoRet=70000)]),
     "seccomp: syscalls[0]: errnoRet 70000 out of range (0-65535)"),
    (cfg("SCMP_ACT_NOTIFY", listenerPath="/x"), "seccomp: defaultAction: SCMP_ACT_NOTIFY cannot be used as default action"),
    (cfg(rules=[rule(["read", "write"], "SCMP_ACT_NOTIFY")], listenerPath="/x"),
     "seccomp: syscalls[0]: SCMP_ACT_NOTIFY cannot be used for the write syscall"),
    (cfg(rules=[rule(["mkdir"], "SCMP_ACT_NOTIFY")]), "seccomp: listenerPath: must be set"),
    (cfg(architectures=["SCMP_ARCH_X86_64", "SCMP_ARCH_Z80"]),
     "seccomp: architectures[1]: unknown architecture 'SCMP_ARCH_Z80'"),
    (cfg(architectures=["SCMP_ARCH_PPC64"]), "seccomp: architectures[0]: SCMP_ARCH_PPC64 cannot share"),
    (cfg(flags=["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_BOGUS"]),
     "seccomp: flags[1]: unknown flag 'SECCOMP_FILTER_FLAG_BOGUS'"),
    (cfg(rules=[rule(["mkdir"], "SCMP_ACT_ERRNO", args=[arg(0, 1, "SCMP_CMP_EQ")]),
                rule(["mkdir"], "SCMP_ACT_KILL", args=[arg(0, 1, "SCMP_CMP_EQ")])]),
     "seccomp: syscalls[1]: rule for mkdir conflicts"),
])
def test_malformed_rule_named(bad, message):
    with pytest.raises(SeccompError) as ei:
        seccomp.compile(bad)
    text = str(ei.value)
    assert text.startswith(message), text
    assert "\n" not in text


def test_flags():
    spec_allow_ok = "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in seccomp.features()["supportedFlags"]
    # No `flags` at all: SPEC_ALLOW by default (runc), an explicit empty list: none.
    assert seccomp.compile(cfg()).flags == (seccomp.FLAG_SPEC_ALLOW if spec_allow_ok else 0)
    assert seccomp.compile(cfg(flags=[])).flags == 0
    assert seccomp.compile(cfg(flags=["SECCOMP_FILTER_FLAG_LOG"])).flags == seccomp.FLAG_LOG
    # WAIT_KILLABLE_RECV only applies to a listener; without one the kernel would refuse it.
    assert seccomp.compile(cfg(flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])).flags == 0
    p = seccomp.compile(cfg(rules=[rule(["mkdir"], "SCMP_ACT_NOTIFY")], listenerPath="/run/x.sock",
                            listenerMetadata="meta", flags=["SECCOMP_FILTER_FLAG_TSYNC"]))
    assert p.notify and p.listener_path == "/run/x.sock" and p.listener_metadata == "meta"
    assert p.flags == (seccomp.FLAG_TSYNC | seccomp.FLAG_TSYNC_ESRCH | seccomp.FLAG_NEW_LISTENER)


def test_flags_are_accepted_by_kernel(tmpdir_path):
    p = seccomp.compile(cfg(rules=[rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO")],
                            flags=["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                                   "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]))
    assert exit_code(in_child(p, lambda: errno_of(os.mkdir, os.path.join(tmpdir_path, "d")))) \
        == errno.EPERM


def test_notify_load_returns_listener():
    p = seccomp.compile(cfg(rules=[rule(["mkdir"], "SCMP_ACT_NOTIFY")], listenerPath="/x",
                            flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]))
    assert p.flags & seccomp.FLAG_WAIT_KILLABLE_RECV

    pid = os.fork()
    if pid == 0:
        code = 250
        try:
            fd = seccomp.load_for_test(p)
            code = 0 if os.readlink("/proc/self/fd/%d" % fd) == "anon_inode:seccomp notify" else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert exit_code(status) == 0


def _docker_profile():
    with open(DOCKER_PROFILE) as f:
        return json.load(f)


def test_docker_profile_runs_busybox():
    p = seccomp.compile(_docker_profile())
    assert p.insns > 100 and not p.notify
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.dup2(w, 1)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            seccomp.load_for_test(p)
            # fork+exec+wait inside the filter: clone's flag mask, execve, wait4...
            os.execv(BUSYBOX, [BUSYBOX, "sh", "-c", "echo ok; /bin/busybox true && echo forked"])
        finally:
            os._exit(127)
    os.close(w)
    with os.fdopen(r) as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    assert exit_code(status) == 0
    assert out == "ok\nforked\n"


def test_docker_profile_denials():
    p = seccomp.compile(_docker_profile())
    checks = {
        "clone3": (435, errno.ENOSYS),   # errnoRet 38 so that glibc falls back to clone
        "acct": (163, errno.EPERM),      # named nowhere: the default action
        "unshare": (272, errno.EPERM),
        "beyond": (1000, errno.ENOSYS),  # newer than the profile: the -ENOSYS stub
    }

    def fn():
        bad = 0
        for i, (nr, want) in enumerate(checks.values()):
            if raw_syscall(nr, 0, 0) != want:
                bad |= 1 << i
        return bad

    assert exit_code(in_child(p, fn)) == 0


def test_enosys_stub_not_used_with_permissive_default():
    p = seccomp.compile(cfg(rules=[rule(["mkdir"], "SCMP_ACT_ERRNO")]))
    assert exit_code(in_child(p, lambda: raw_syscall(1000))) == errno.ENOSYS  # the kernel's own
    q = seccomp.compile(cfg("SCMP_ACT_ERRNO", [rule(PY_BASE, "SCMP_ACT_ALLOW")],
                            defaultErrnoRet=errno.ENXIO))
    # Below the largest named syscall: default action; above it: ENOSYS.
    assert exit_code(in_child(q, lambda: raw_syscall(SYS_PERSONALITY, 0xFFFFFFFF))) == errno.ENXIO
    assert exit_code(in_child(q, lambda: raw_syscall(1000))) == errno.ENOSYS


def test_cache_hit_identical(tmp_path):
    prof = _docker_profile()
    cache = str(tmp_path / "cache")
    cold = seccomp.compile(prof, cache_dir=cache)
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].endswith(".bpf")
    path = os.path.join(cache, files[0])
    mtime = os.stat(path).st_mtime_ns
    warm = seccomp.compile(copy.deepcopy(prof), cache_dir=cache)
    assert warm.bpf == cold.bpf and warm.flags == cold.flags and warm.notify == cold.notify
    assert os.stat(path).st_mtime_ns == mtime  # read, not rewritten
    assert seccomp.compile(prof).bpf == cold.bpf
    # Key order does not matter; content does.
    reordered = dict(reversed(list(prof.items())))
    assert seccomp.compile(reordered, cache_dir=cache).bpf == cold.bpf
    other = copy.deepcopy(prof)
    other["defaultErrnoRet"] = errno.EACCES
    assert seccomp.compile(other, cache_dir=cache).bpf != cold.bpf
    assert len(os.listdir(cache)) == 2


def test_cache_corrupt_entry_recompiled(tmp_path):
    cache = str(tmp_path)
    c = cfg(rules=[rule(["mkdir"], "SCMP_ACT_ERRNO")])
    good = seccomp.compile(c, cache_dir=cache)
    (name,) = os.listdir(cache)
    with open(os.path.join(cache, name), "wb") as f:
        f.write(b"garbage")
    assert seccomp.compile(c, cache_dir=cache).bpf == good.bpf
    with open(os.path.join(cache, name), "rb") as f:
        assert f.read().endswith(good.bpf)


def test_cache_errors_still_validate(tmp_path):
    with pytest.raises(SeccompError):
        seccomp.compile(cfg(rules=[rule(["mkdir"], "SCMP_ACT_FOO")]), cache_dir=str(tmp_path))
    assert os.listdir(str(tmp_path)) == []


def test_features():
    f = seccomp.features()
    assert f["enabled"] is True
    assert "SCMP_ACT_NOTIFY" in f["actions"] and "SCMP_CMP_MASKED_EQ" in f["operators"]
    assert {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"} <= set(f["archs"])
    assert set(f["supportedFlags"]) <= set(f["knownFlags"])
