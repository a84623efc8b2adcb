"""linux.seccomp end to end: real containers through the CLI, the filter enforced by the kernel.

Each test runs busybox under a filter and looks at what the container saw (errno text printed
by busybox, exit status, /proc/self/status). The notify test runs a seccomp agent in-process:
a unix socket server that receives the listener fd and the container process state per the
runtime-spec protocol, then answers the notified syscalls with SECCOMP_IOCTL_NOTIF_RECV/SEND.
"""
import errno
import fcntl
import json
import os
import select
import socket
import struct
import threading

import pytest

import util

# tests marked guest and guest_systemd also run in the cgroup v2 guest, with the cgroupfs
# driver (stage suite-v2) and under --systemd-cgroup (stage suite-v2-systemd): the ones that
# create, join, freeze or remove the container's cgroup (the guest is ~30-45x slower)

DOCKER_PROFILE = os.path.join(util.REPO, "spec-fixtures", "seccomp", "docker-default-amd64.json")
MKDIR = ["mkdir", "mkdirat"]


def _bundle(make_bundle, script, seccomp, **kw):
    b = make_bundle(args=["/bin/sh", "-c", script], **kw)
    # a writable root: without the filter every mkdir below would succeed
    b.config["root"]["readonly"] = False
    b.config["linux"]["seccomp"] = seccomp
    b.save()
    return b


def _run(rt, cid, b, timeout=60):
    return rt.run("run", "-b", b.path, cid, timeout=timeout)


def _allow_but(rules):
    return {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules}


def test_denied_syscall_returns_eperm(rt, make_bundle, cid):
    b = _bundle(make_bundle, "mkdir /newdir; echo rc=$?; touch /f && echo touched",
                _allow_but([{"names": MKDIR, "action": "SCMP_ACT_ERRNO"}]))
    r = _run(rt, cid, b)
    assert r.returncode == 0, r.stderr
    assert "Operation not permitted" in r.stdout + r.stderr
    assert "rc=1" in r.stdout
    assert "touched" in r.stdout          # only the named syscalls are affected
    assert not os.path.exists(os.path.join(b.rootfs, "newdir"))


def test_cached_filter_too_long_is_not_cut_short(rt, make_bundle, cid, pyrt_tmp):
    """A compiled filter comes back from the runtime's cache; one longer than the kernel
    takes must be compiled again, never handed to seccomp(2) with its length cut to 16
    bits (65537 instructions would load as 1: here "allow everything")."""
    if not rt.is_pyruntime:
        pytest.skip("pyruntime's own filter cache")
    env = {"PYRUNTIME_CACHE_DIR": os.path.join(pyrt_tmp, "cache")}
    b = _bundle(make_bundle, "mkdir /newdir; echo rc=$?",
                _allow_but([{"names": MKDIR, "action": "SCMP_ACT_ERRNO"}]))
    r = rt.run("run", "-b", b.path, cid, env=env)
    assert r.returncode == 0 and "rc=1" in r.stdout, (r.stdout, r.stderr)
    cached = [os.path.join(d, f) for d, _, fs in os.walk(env["PYRUNTIME_CACHE_DIR"])
              for f in fs if f.endswith(".bpf")]
    assert len(cached) == 1, cached
    with open(cached[0], "rb") as f:
        head, _, _ = f.read().partition(b"\n\n")
    allow = struct.pack("<HBBI", 0x06, 0, 0, 0x7fff0000)   # BPF_RET|BPF_K ALLOW
    with open(cached[0], "wb") as f:
        f.write(head + b"\n\n" + allow * 65537)
    r = rt.run("run", "-b", b.path, cid, env=env)
    assert "rc=1" in r.stdout, (r.stdout, r.stderr)
    assert not os.path.exists(os.path.join(b.rootfs, "newdir"))


def test_errno_ret_is_the_configured_errno(rt, make_bundle, cid):
    b = _bundle(make_bundle, "mkdir /newdir; echo rc=$?",
                _allow_but([{"names": MKDIR, "action": "SCMP_ACT_ERRNO",
                             "errnoRet": errno.ENOSPC}]))
    r = _run(rt, cid, b)
    assert r.returncode == 0, r.stderr
    assert os.strerror(errno.ENOSPC) in r.stdout + r.stderr
    assert not os.path.exists(os.path.join(b.rootfs, "newdir"))


def test_default_errno_ret(rt, make_bundle, cid):
    """defaultErrnoRet is what every syscall outside the allow list returns."""
    with open(DOCKER_PROFILE) as f:
        prof = json.load(f)
    prof["defaultErrnoRet"] = errno.EXDEV
    for rule in prof["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n not in MKDIR]
    prof["syscalls"] = [r for r in prof["syscalls"] if r["names"]]
    b = _bundle(make_bundle, "mkdir /newdir; echo rc=$?; echo alive", prof)
    r = _run(rt, cid, b)
    assert r.returncode == 0, r.stderr
    assert os.strerror(errno.EXDEV) in r.stdout + r.stderr
    assert "rc=1" in r.stdout and "alive" in r.stdout


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS"])
def test_kill_action_kills_with_sigsys(rt, make_bundle, cid, action):
    b = make_bundle(args=["/bin/mkdir", "/newdir"])
    b.config["root"]["readonly"] = False
    b.config["linux"]["seccomp"] = _allow_but([{"names": MKDIR, "action": action}])
    b.save()
    r = _run(rt, cid, b)
    assert r.returncode == 128 + 31, (r.returncode, r.stdout, r.stderr)   # SIGSYS
    assert not os.path.exists(os.path.join(b.rootfs, "newdir"))


def test_argument_filters(rt, make_bundle, cid):
    """EQ and MASKED_EQ conditions: only matching argument values are denied."""
    # chmod(path, mode) mode is arg 1, fchmodat(dirfd, path, mode) arg 2: deny modes with no
    # group/other bits (mode & 077 == 0) and exactly 0640.
    rules = []
    for name, idx in (("chmod", 1), ("fchmodat", 2), ("fchmodat2", 2)):
        rules.append({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EACCES,
                      "args": [{"index": idx, "op": "SCMP_CMP_MASKED_EQ", "value": 0o077,
                                "valueTwo": 0}]})
        rules.append({"names": [name], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSPC,
                      "args": [{"index": idx, "op": "SCMP_CMP_EQ", "value": 0o640}]})
    script = ("touch /f; for m in 755 700 750 640 644; do chmod $m /f; echo $m=$?; done; "
              "stat -c %a /f")
    b = _bundle(make_bundle, script, _allow_but(rules))
    r = _run(rt, cid, b)
    assert r.returncode == 0, r.stderr
    res = dict(line.split("=") for line in r.stdout.split() if "=" in line)
    assert res == {"755": "0", "700": "1", "750": "0", "640": "1", "644": "0"}, r.stdout
    assert r.stdout.split()[-1] == "644"
    out = r.stdout + r.stderr
    assert os.strerror(errno.EACCES) in out and os.strerror(errno.ENOSPC) in out


def test_docker_default_profile_runs_a_shell(rt, make_bundle, cid):
    with open(DOCKER_PROFILE) as f:
        prof = json.load(f)
    script = ("echo hello; ls / >/dev/null && echo listed; mkdir /tmp/d && echo made; "
              "grep Seccomp: /proc/self/status; unshare -n true; echo unshare=$?")
    b = _bundle(make_bundle, script, prof)
    r = _run(rt, cid, b)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "hello" in out and "listed" in out and "made" in out
    assert "Seccomp:\t2" in out                    # filter mode
    assert "unshare=1" in out                      # unshare(2) is not in the default allow list
    assert "Operation not permitted" in r.stdout + r.stderr


def test_log_and_trace_free_actions_allow(rt, make_bundle, cid):
    """SCMP_ACT_LOG lets the call through; SCMP_ACT_TRACE without a tracer fails with ENOSYS."""
    rules = [{"names": MKDIR, "action": "SCMP_ACT_LOG"},
             {"names": ["rmdir"], "action": "SCMP_ACT_TRACE", "errnoRet": 0}]
    b = _bundle(make_bundle, "mkdir /d && echo made; rmdir /d; echo rmdir=$?", _allow_but(rules))
    r = _run(rt, cid, b)
    assert r.returncode == 0, r.stderr
    assert "made" in r.stdout
    assert "rmdir=1" in r.stdout
    assert os.strerror(errno.ENOSYS) in r.stdout + r.stderr


# --- seccomp notify ------------------------------------------------------------------------

# linux/seccomp.h: struct seccomp_notif {u64 id; u32 pid; u32 flags; struct seccomp_data
# {i32 nr; u32 arch; u64 ip; u64 args[6]}}, struct seccomp_notif_resp {u64 id; i64 val;
# i32 error; u32 flags}; _IOWR('!', 0/1, ...)
NOTIF = struct.Struct("=QIIiIQ6Q")
RESP = struct.Struct("=QqiI")
NOTIF_RECV = 0xC0000000 | (NOTIF.size << 16) | (ord("!") << 8) | 0
NOTIF_SEND = 0xC0000000 | (RESP.size << 16) | (ord("!") << 8) | 1


class Agent(threading.Thread):
    """A minimal seccomp agent: accepts one connection, then answers every notification
    with `reply(nr) -> (val, error)`."""

    def __init__(self, path, reply):
        super().__init__(daemon=True)
        self.path = path
        self.reply = reply
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(1)
        self.srv.settimeout(60)
        self.state = None
        self.nfds = 0
        self.fd_is_listener = False
        self.notified = []
        self.error = None
        self.stop = threading.Event()

    def run(self):
        fd = -1
        try:
            conn, _ = self.srv.accept()
            with conn:
                msg, fds, _flags, _addr = socket.recv_fds(conn, 1 << 16, 4)
                self.state = json.loads(msg)
                self.nfds = len(fds)
                fd = fds[0]
                for extra in fds[1:]:
                    os.close(extra)
            link = os.readlink("/proc/self/fd/%d" % fd)
            self.fd_is_listener = link == "anon_inode:seccomp notify"
            while not self.stop.is_set():
                r, _, x = select.select([fd], [], [fd], 0.2)
                if x and not r:
                    break
                if not r:
                    continue
                buf = bytearray(NOTIF.size)
                try:
                    fcntl.ioctl(fd, NOTIF_RECV, buf, True)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.EINTR):
                        continue
                    break          # the filter has no users left
                nid, pid, _fl, nr, _arch, _ip, *args = NOTIF.unpack(buf)
                self.notified.append(nr)
                val, err = self.reply(nr)
                try:
                    fcntl.ioctl(fd, NOTIF_SEND, bytearray(RESP.pack(nid, val, err, 0)), True)
                except OSError as e:
                    if e.errno != errno.ENOENT:   # the caller died meanwhile
                        raise
        except Exception as e:  # surfaced by the test
            self.error = e
        finally:
            if fd >= 0:
                os.close(fd)
            self.srv.close()

    def finish(self):
        self.stop.set()
        self.join(10)
        assert self.error is None, self.error


def _notify_cfg(path, metadata):
    return {"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": path,
            "listenerMetadata": metadata,
            "syscalls": [{"names": MKDIR, "action": "SCMP_ACT_NOTIFY"}]}


@pytest.mark.guest
@pytest.mark.guest_systemd
@pytest.mark.parametrize("answer", ["error", "fake-success"])
def test_notify_agent_answers(rt, make_bundle, cid, pyrt_tmp, answer):
    sock = os.path.join(pyrt_tmp, "agent.sock")
    mkdir_nrs = {83, 258}   # x86_64 mkdir, mkdirat
    if answer == "error":
        agent = Agent(sock, lambda nr: (0, -errno.EXDEV) if nr in mkdir_nrs else (0, -errno.ENOSYS))
    else:
        # "success" without doing anything: the directory must not appear
        agent = Agent(sock, lambda nr: (0, 0))
    agent.start()
    try:
        b = _bundle(make_bundle, "mkdir /newdir; echo rc=$?",
                    _notify_cfg(sock, "agent-metadata=42"))
        r = _run(rt, cid, b)
    finally:
        agent.finish()
    assert r.returncode == 0, r.stderr
    st = agent.state
    assert st is not None, "the agent got no connection"
    assert agent.nfds == 1 and agent.fd_is_listener
    assert st["fds"] == ["seccompFd"]
    assert st["metadata"] == "agent-metadata=42"
    assert st["ociVersion"]
    assert st["state"]["id"] == cid
    assert st["state"]["status"] == "creating"
    assert st["state"]["bundle"] == b.path
    assert st["pid"] == st["state"]["pid"] and st["pid"] > 0
    assert agent.notified and set(agent.notified) <= mkdir_nrs
    if answer == "error":
        assert "rc=1" in r.stdout
        assert os.strerror(errno.EXDEV) in r.stdout + r.stderr
    else:
        assert "rc=0" in r.stdout
    assert not os.path.exists(os.path.join(b.rootfs, "newdir"))


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_notify_without_agent_fails_create(rt, make_bundle, cid, pyrt_tmp):
    b = _bundle(make_bundle, "true", _notify_cfg(os.path.join(pyrt_tmp, "nobody.sock"), ""))
    r = rt.run("create", "-b", b.path, cid)
    assert r.returncode != 0
    assert "nobody.sock" in r.stderr
    assert rt.run("state", cid).returncode != 0   # nothing left behind
