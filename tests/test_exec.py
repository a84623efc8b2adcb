"""exec: a new process in a running container (runc exec), end to end through the CLI."""
import array
import json
import os
import socket
import threading

import pytest

import util

# tests marked guest and guest_systemd also run in the cgroup v2 guest, with the cgroupfs
# driver (stage suite-v2) and under --systemd-cgroup (stage suite-v2-systemd): the ones that
# create, join, freeze or remove the container's cgroup (the guest is ~30-45x slower)

NS = ("mnt", "pid", "net", "ipc", "uts")


def running(rt, make_bundle, cid, args=("sleep", "1000"), **process):
    b = make_bundle(list(args))
    b.config["process"].update(process)
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid)
    return b, rt.state(cid)["pid"]


def test_output_and_exit_status(rt, make_bundle, cid):
    running(rt, make_bundle, cid)
    r = rt.run("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")
    assert rt.run("exec", cid, "sh", "-c", "kill -9 $$").returncode == 137
    assert rt.run("exec", cid, "true").returncode == 0


def test_stdin_flows(rt, make_bundle, cid):
    running(rt, make_bundle, cid)
    assert rt.ok("exec", cid, "cat", input="piped in\n").stdout == "piped in\n"


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_joins_every_namespace_and_cgroup(rt, make_bundle, cid):
    _, init = running(rt, make_bundle, cid)
    out = rt.ok("exec", cid, "sh", "-c",
                "for n in %s; do readlink /proc/self/ns/$n; done; echo $$; cat /proc/self/cgroup"
                % " ".join(NS)).stdout.splitlines()
    want = [os.readlink("/proc/%d/ns/%s" % (init, n)) for n in NS]
    assert out[:len(NS)] == want
    assert out[len(NS)] != "1"  # a new process in the container's pid namespace
    with open("/proc/%d/cgroup" % init) as f:
        assert sorted(out[len(NS) + 1:]) == sorted(f.read().splitlines())


def test_sees_container_processes(rt, make_bundle, cid):
    running(rt, make_bundle, cid)
    out = rt.ok("exec", cid, "cat", "/proc/1/cmdline").stdout
    assert out.split("\0")[:2] == ["sleep", "1000"]


def test_defaults_come_from_config_process(rt, make_bundle, cid):
    running(rt, make_bundle, cid, cwd="/tmp", user={"uid": 1000, "gid": 1000},
            env=["PATH=/bin", "FROM_CONFIG=yes"])
    out = rt.ok("exec", cid, "sh", "-c", "pwd; id -u; id -g; echo $FROM_CONFIG; echo $HOME").stdout
    assert out.split() == ["/tmp", "1000", "1000", "yes", "/home/user"]


def test_flags_override(rt, make_bundle, cid):
    running(rt, make_bundle, cid)
    out = rt.ok("exec", "--cwd", "/etc", "-e", "X=1", "-e", "Y=two words", "-u", "1000:5",
                "-g", "6", "-g", "7", cid, "sh", "-c",
                'pwd; echo "$X/$Y"; id -u; id -g; id -G').stdout.splitlines()
    assert out[:4] == ["/etc", "1/two words", "1000", "5"]
    assert sorted(out[4].split()) == ["5", "6", "7"]


@pytest.mark.parametrize("user", ["4294967295", "0:4294967295", "2147483648:0"])
def test_user_out_of_range_refused(rt, make_bundle, cid, user):
    # (uid_t)-1 to setresuid means "unchanged": the exec'd process would stay root
    running(rt, make_bundle, cid)
    r = rt.run("exec", "-u", user, cid, "sh", "-c", "echo ran; id -u")
    assert r.returncode == 255 and "ran" not in r.stdout, (r.stdout, r.stderr)
    assert "exec failed: " in r.stderr, r.stderr
    assert "uids and gids must be in range 0-2147483647" in r.stderr, r.stderr


def test_tty_false_unless_asked(rt, make_bundle, cid):
    # the config's terminal does not carry over to exec: only -t makes one
    running(rt, make_bundle, cid)
    r = rt.run("exec", cid, "sh", "-c", "test -t 0 || test -t 1; echo $?")
    assert r.stdout == "1\n"


def caps_of(out):
    f = dict(l.split(":\t") for l in out.splitlines() if l.startswith("Cap"))
    return {k: int(v, 16) for k, v in f.items()}


def test_caps_from_config_and_cap_flag(rt, make_bundle, cid):
    running(rt, make_bundle, cid)
    base = caps_of(rt.ok("exec", cid, "cat", "/proc/self/status").stdout)
    default = (1 << 29) | (1 << 5) | (1 << 10)  # AUDIT_WRITE KILL NET_BIND_SERVICE
    assert base["CapBnd"] == base["CapPrm"] == base["CapEff"] == default
    assert base["CapInh"] == 0
    more = caps_of(rt.ok("exec", "-c", "CAP_SYS_ADMIN", "-c", "CAP_NET_RAW", cid,
                         "cat", "/proc/self/status").stdout)
    added = default | (1 << 21) | (1 << 13)
    assert more["CapBnd"] == more["CapPrm"] == more["CapEff"] == added
    # never inheritable (CVE-2022-29162)
    assert more["CapInh"] == 0


def test_unknown_cap_is_a_warning(rt, make_bundle, cid):
    running(rt, make_bundle, cid)
    r = rt.run("exec", "-c", "CAP_NOPE", cid, "true")
    assert r.returncode == 0
    assert "CAP_NOPE" in r.stderr and "warning" in r.stderr


def test_no_new_privs_flag(rt, make_bundle, cid):
    running(rt, make_bundle, cid, noNewPrivileges=False)
    nnp = lambda *a: rt.ok("exec", *a, cid, "grep", "NoNewPrivs", "/proc/self/status").stdout.split()[1]
    assert nnp() == "0"
    assert nnp("--no-new-privs") == "1"


def test_rlimits_apply(rt, make_bundle, cid):
    running(rt, make_bundle, cid, rlimits=[{"type": "RLIMIT_NOFILE", "hard": 777, "soft": 555}])
    soft, hard = rt.ok("exec", cid, "sh", "-c", "ulimit -n; ulimit -Hn").stdout.split()
    assert hard == "777"
    if rt.is_pyruntime:
        # runc 1.1.5's Go runtime raises its own soft NOFILE to the hard limit in the
        # exec'd init (a runc bug fixed later): the oracle only agrees on the hard limit
        assert soft == "555"


def test_process_file(rt, make_bundle, cid, pyrt_tmp):
    running(rt, make_bundle, cid)
    p = os.path.join(pyrt_tmp, "process.json")
    with open(p, "w") as f:
        json.dump({"args": ["sh", "-c", "echo $A; pwd; id -u"], "env": ["PATH=/bin", "A=from-file"],
                   "cwd": "/dev", "user": {"uid": 7, "gid": 7}, "terminal": False}, f)
    # extra arguments after the id are ignored with -p (runc)
    assert rt.ok("exec", "-p", p, cid, "ignored").stdout.split() == ["from-file", "/dev", "7"]


@pytest.mark.parametrize("proc,msg", [
    ({"args": ["true"], "cwd": "rel"}, "Cwd must be an absolute path"),
    ({"args": ["true"], "cwd": ""}, "Cwd property must not be empty"),
    ({"args": [], "cwd": "/"}, "args must not be empty"),
])
def test_process_file_validated(rt, make_bundle, cid, pyrt_tmp, proc, msg):
    running(rt, make_bundle, cid)
    p = os.path.join(pyrt_tmp, "process.json")
    with open(p, "w") as f:
        json.dump(proc, f)
    r = rt.run("exec", "-p", p, cid)
    assert r.returncode == 255
    assert msg in r.stderr


def test_errors_like_runc(rt, make_bundle, cid):
    running(rt, make_bundle, cid)
    cases = [
        (("exec", "nosuchctr", "true"), "container does not exist"),
        (("exec", cid), "process args cannot be empty"),
        (("exec", cid, "nonexistent-binary"), 'exec: "nonexistent-binary": executable file not found in $PATH'),
        (("exec", "--cwd", "/nonexistent", cid, "true"), 'chdir to cwd ("/nonexistent") set in config.json failed: no such file or directory'),
        (("exec", "-u", "abc", cid, "true"), "parsing abc as int for uid failed"),
        (("exec", "-t", "-d", cid, "true"), "cannot allocate tty if runc will detach without setting console socket"),
    ]
    for args, msg in cases:
        r = rt.run(*args)
        assert r.returncode == 255, (args, r.stderr)
        err = r.stderr.replace('\\"', '"')  # the log line quotes the message
        assert "exec failed: " in err and msg in err, (args, r.stderr)


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_exec_in_stopped_container(rt, make_bundle, cid):
    b = make_bundle(["true"])
    rt.ok("create", "--bundle", b.path, cid)
    rt.ok("start", cid)
    assert util.wait_for(lambda: rt.state(cid)["status"] == "stopped")
    r = rt.run("exec", cid, "true")
    assert r.returncode == 255
    assert "cannot exec in a stopped container" in r.stderr


def test_exec_in_created_container(rt, make_bundle, cid):
    b = make_bundle(["true"])
    rt.ok("create", "--bundle", b.path, cid)
    assert rt.ok("exec", cid, "echo", "hi").stdout == "hi\n"


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_paused_and_ignore_paused(rt, make_bundle, cid, pyrt_tmp):
    _, init = running(rt, make_bundle, cid)
    rt.ok("pause", cid)
    r = rt.run("exec", cid, "true")
    assert r.returncode == 255
    assert "cannot exec in a paused container (use --ignore-paused to override)" in r.stderr
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 waits for the frozen process to report and hangs")
    pf = os.path.join(pyrt_tmp, "exec.pid")
    rt.ok("exec", "-d", "--ignore-paused", "--pid-file", pf, cid, "sh", "-c", "echo x > /dev/shm/marker")
    marker = "/proc/%d/root/dev/shm/marker" % init
    rt.ok("resume", cid)
    assert util.wait_for(lambda: os.path.exists(marker))


def test_detach_and_pid_file(rt, make_bundle, cid, pyrt_tmp, pyrt_ctx):
    _, init = running(rt, make_bundle, cid)
    pf = os.path.join(pyrt_tmp, "exec.pid")
    r = rt.ok("exec", "-d", "--pid-file", pf, cid, "sleep", "1000")
    assert r.stdout == ""
    with open(pf) as f:
        pid = int(f.read())
    pyrt_ctx.record_pid(pid)
    assert util.pid_alive(pid)
    assert os.readlink("/proc/%d/ns/pid" % pid) == os.readlink("/proc/%d/ns/pid" % init)
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"1000"]


def test_seccomp_applies_to_exec(rt, make_bundle, cid):
    b = make_bundle(["sleep", "1000"])
    b.config["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid)
    r = rt.run("exec", cid, "mkdir", "/dev/shm/d")
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_cgroup_sub_cgroup(rt, make_bundle, cid):
    _, init = running(rt, make_bundle, cid)
    with open("/proc/%d/cgroup" % init) as f:
        lines = f.read().splitlines()
    line = [l for l in lines if l.split(":")[1] == "pids"]
    if not line and lines[0].startswith("0::") and len(lines) == 1:
        # v2 (the guest): `--cgroup sub` (no controller) joins <container cgroup>/sub
        sub = "/sys/fs/cgroup" + lines[0][3:] + "/sub"
        os.mkdir(sub)
        try:
            out = rt.ok("exec", "--cgroup", "sub", cid, "cat", "/proc/self/cgroup").stdout
            assert out.strip() == lines[0] + "/sub"
            r = rt.run("exec", "--cgroup", "nosuch", cid, "true")
            assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        finally:
            util.wait_for(lambda: not open(sub + "/cgroup.procs").read())
            os.rmdir(sub)
        return
    if not line:
        pytest.skip("no v1 pids hierarchy")
    sub = "/sys/fs/cgroup/pids" + line[0].split(":", 2)[2] + "/sub"
    os.mkdir(sub)
    try:
        out = rt.ok("exec", "--cgroup", "pids:sub", cid, "cat", "/proc/self/cgroup").stdout
        pids = [l for l in out.splitlines() if l.split(":")[1] == "pids"][0]
        assert pids.endswith("/sub")
        # other hierarchies keep the container's own cgroup
        mem = [l for l in out.splitlines() if l.split(":")[1] == "memory"]
        assert not mem or not mem[0].endswith("/sub")
    finally:
        util.wait_for(lambda: not open(sub + "/cgroup.procs").read())
        os.rmdir(sub)


def _recv_fd_server(path):
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    got = {}

    def serve():
        conn, _ = srv.accept()
        with conn:
            fds = array.array("i")
            msg, anc, _flags, _addr = conn.recvmsg(1024, socket.CMSG_SPACE(fds.itemsize))
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                    fds.frombytes(data[:fds.itemsize])
            got["name"] = msg
            got["fd"] = fds[0] if fds else None

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t, got


def test_pidfd_socket(rt, make_bundle, cid, pyrt_tmp, pyrt_ctx):
    if not rt.is_pyruntime:
        pytest.skip("--pidfd-socket is runc 1.2 (the oracle is 1.1.5)")
    running(rt, make_bundle, cid)
    path = os.path.join(pyrt_tmp, "pidfd.sock")
    srv, t, got = _recv_fd_server(path)
    pf = os.path.join(pyrt_tmp, "exec.pid")
    try:
        rt.ok("exec", "-d", "--pidfd-socket", path, "--pid-file", pf, cid, "sleep", "1000")
        t.join(10)
        with open(pf) as f:
            pid = int(f.read())
        pyrt_ctx.record_pid(pid)
        assert got.get("fd") is not None
        with open("/proc/self/fdinfo/%d" % got["fd"]) as f:
            info = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        assert int(info["Pid"]) == pid
        # the pidfd works: signal through it
        import signal
        signal.pidfd_send_signal(got["fd"], signal.SIGKILL)
        assert util.wait_for(lambda: not util.pid_alive(pid))
    finally:
        srv.close()
        if got.get("fd") is not None:
            os.close(got["fd"])


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_apparmor_profile_applied_like_create(rt, make_bundle, cid):
    """exec's process.apparmorProfile is applied as create's is (Docker sends "unconfined"
    with every exec on an AppArmor host): written to the process's /proc/self/attr; without
    AppArmor that fails with runc's words."""
    running(rt, make_bundle, cid)
    try:
        with open("/sys/module/apparmor/parameters/enabled") as f:
            # the LSM is active (securityfs need not be mounted: the plain guest boot)
            on = f.read().startswith("Y")
    except OSError:
        on = False
    r = rt.run("exec", "--apparmor", "unconfined", cid, "cat", "/proc/self/attr/current")
    if on:
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip().startswith("unconfined"), r.stdout
    else:
        assert r.returncode != 0
        assert "apparmor failed to apply profile" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
