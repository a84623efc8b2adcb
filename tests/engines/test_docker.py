"""Docker (Debian's docker.io: dockerd + its own containerd) running containers on pyruntime.

dockerd runs under a temp dir: -H unix://<tmp>/docker.sock, --data-root, --exec-root,
--pidfile, an empty --config-file, no iptables/bridge/forwarding/masquerading, cgroupfs
driver, cgroups under the sandbox's name. pyruntime is registered with --add-runtime and is
the --default-runtime. Containers run with --network none (Docker still gives them a new
network namespace and its libnetwork-setkey prestart hook) or --network host.
Images: `docker import` of the busybox rootfs, `docker load` of the two-layer image
(an overlayfs union of both layers).
"""
import json
import os

import pytest

import daemons
import engutil

pytestmark = pytest.mark.skipif(engutil.have("dockerd", "docker", "containerd") is not None,
                                reason="docker.io is not installed (tools/engines/install.sh)")

sandbox = engutil.make_sandbox_fixture("dkr")


class Docker(daemons.Cli):
    image = "pyrt-busybox:1"
    layered = "pyrt/busybox:1"

    def __init__(self, sb, images):
        self.sb = sb
        d = daemons.start_dockerd(sb, runtimes={"pyruntime": engutil.PYRUNTIME},
                                  default="pyruntime")
        super().__init__("docker", d.env)
        self.exec_root = d.exec_root
        self.ok("import", images.rootfs_tar, self.image)
        self.ok("load", "-i", images.archive)

    def argv(self, args):
        if args and args[0] in ("run", "create"):
            args[1:1] = ["--network", "none"] if "--network" not in args else []
        return args

    def pyrt_state(self, cid):
        # dockerd 20.10 gives the runc shim (any BinaryName) <exec-root>/runtime-runc/<namespace>.
        r = engutil.run([engutil.PYRUNTIME, "--root",
                         os.path.join(self.exec_root, "runtime-runc", "moby"), "state", cid])
        return json.loads(r.stdout) if r.returncode == 0 else None


@pytest.fixture(scope="module")
def docker(sandbox, images):
    d = Docker(sandbox, images)
    yield d
    ids = d("ps", "-a", "-q").stdout.split()
    if ids:
        d("rm", "-f", *ids)


def test_run_exit_code_and_output(docker):
    r = docker("run", "--rm", docker.image, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert r.returncode == 3, r.stderr
    assert (r.stdout, r.stderr) == ("out\n", "err\n")


def test_default_runtime_is_pyruntime(docker):
    cid = docker.ok("run", "-d", docker.image, "sleep", "1000").stdout.strip()
    try:
        info = docker.inspect(cid)
        assert info["HostConfig"]["Runtime"] == "pyruntime"
        st = docker.pyrt_state(cid)
        assert st and st["status"] == "running" and st["pid"] == info["State"]["Pid"]
        # Docker's libnetwork prestart hook was in the config and ran (create would fail).
        with open(os.path.join(st["bundle"], "config.json")) as f:
            hooks = json.load(f).get("hooks", {})
        assert any("libnetwork-setkey" in h.get("args", []) for h in
                   hooks.get("prestart", []) + hooks.get("createRuntime", [])), hooks
        # Docker's default seccomp profile is in force.
        r = docker.ok("exec", cid, "grep", "Seccomp:", "/proc/1/status")
        assert r.stdout.split() == ["Seccomp:", "2"]
    finally:
        docker.ok("rm", "-f", cid)
    assert docker.pyrt_state(cid) is None


def test_explicit_runtime_flag(docker):
    r = docker("run", "--rm", "--runtime", "pyruntime", docker.image, "true")
    assert r.returncode == 0, r.stderr


def test_layered_image(docker):
    r = docker("run", "--rm", docker.layered, "sh", "-c", "cat /etc/layer2; grep ' / ' "
               "/proc/mounts")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "two" and lines[1].startswith("overlay / overlay"), r.stdout


def test_interactive(docker):
    r = docker("run", "--rm", "-i", docker.image, "tr", "a-z", "A-Z", input="abc\n")
    assert (r.returncode, r.stdout) == (0, "ABC\n"), r.stderr


def test_tty(docker):
    rc, out = engutil.run_pty(["docker", "run", "--rm", "-t", "--network", "none",
                               docker.image, "sh", "-c", "tty; test -t 0 && echo stdin-is-tty"],
                              env=docker.env)
    assert rc == 0, out
    assert "/dev/pts/0" in out and "stdin-is-tty" in out, out


def test_init(docker):
    r = docker("run", "--rm", "--init", docker.image, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("/sbin/docker-init -- sh"), r.stdout


def test_host_network(docker):
    r = docker("run", "--rm", "--network", "host", docker.image, "readlink", "/proc/1/ns/net")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == os.readlink("/proc/self/ns/net")


def test_detached_exec_pause_stop_kill(docker):
    cid = docker.ok("run", "-d", "--name", "det", docker.image, "sh", "-c",
                    'trap "exit 0" TERM; while :; do sleep 0.1; done').stdout.strip()
    try:
        r = docker("exec", "det", "sh", "-c", "echo in-exec; exit 4")
        assert (r.returncode, r.stdout) == (4, "in-exec\n"), r.stderr
        r = docker("exec", "-i", "det", "cat", input="piped\n")
        assert (r.returncode, r.stdout) == (0, "piped\n"), r.stderr
        rc, out = engutil.run_pty(["docker", "exec", "-t", "det", "tty"], env=docker.env)
        assert rc == 0 and out.strip().startswith("/dev/pts/"), out
        docker.ok("pause", "det")
        assert docker.inspect("det")["State"]["Status"] == "paused"
        docker.ok("unpause", "det")
        assert docker.inspect("det")["State"]["Status"] == "running"
        docker.ok("update", "--memory", "64m", "--memory-swap", "64m", "det")
        r = docker.ok("exec", "det", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert r.stdout.strip() == str(64 << 20)
        stats = json.loads(docker.ok("stats", "--no-stream", "--format", "{{json .}}",
                                     "det").stdout)
        assert stats["Name"] == "det" and stats["PIDs"] != "0"
        docker.ok("stop", "-t", "10", "det")
        st = docker.inspect("det")["State"]
        assert (st["Status"], st["ExitCode"]) == ("exited", 0)
        docker.ok("start", "det")
        docker.ok("kill", "-s", "KILL", "det")
        assert docker.ok("wait", "det").stdout.strip() == "137"
    finally:
        docker.ok("rm", "-f", "det")
    assert docker.pyrt_state(cid) is None


@pytest.mark.parametrize("cmd,code", [("/no/such/binary", 127), ("no-such-command", 127),
                                      ("/etc/passwd", 126)])
def test_exec_errors_map_to_exit_codes(docker, cmd, code):
    r = docker("run", "--rm", docker.image, cmd)
    assert r.returncode == code, r.stderr


def test_stop_in_shared_new_cgroup_parent_spares_neighbour(docker):
    """Issue 18: two containers under a --cgroup-parent the first one's create made. Stopping
    the first must not wait for the parent to empty (dockerd's delete timed out after 30 s
    with `cannot delete running task`): the stop returns within its 1 s grace, the second
    keeps running in its cgroups. The short command timeout turns a wait into a failure."""
    parent = "/%s-i18" % docker.sb.tag
    loop = 'trap "exit 0" TERM; sleep 1000 & wait'
    first = docker.ok("run", "-d", "--cgroup-parent", parent, docker.image,
                      "sleep", "1000").stdout.strip()
    second = docker.ok("run", "-d", "--cgroup-parent", parent, docker.image,
                       "sh", "-c", loop).stdout.strip()
    try:
        pid = docker.inspect(second)["State"]["Pid"]
        dirs = engutil.proc_cgroup_dirs(pid, parent)
        assert dirs and all(engutil.in_cgroup(pid, d) for d in dirs), dirs
        log_from = len(docker.sb.log("dockerd"))
        # sleep ignores TERM: dockerd kills it after 1 s, then deletes it.
        r = docker("stop", "-t", "1", first, timeout=15)
        assert r.returncode == 0, r.stderr
        assert docker.inspect(first)["State"]["Status"] == "exited"
        st = docker.inspect(second)["State"]
        assert (st["Status"], st["Pid"]) == ("running", pid)
        assert all(engutil.in_cgroup(pid, d) for d in dirs), dirs
        log = docker.sb.log("dockerd")[log_from:]
        assert "context deadline exceeded" not in log and "cannot delete" not in log, log
        # The first one's leaves are gone; the parent stays while the second is in it.
        assert not [d for d in engutil.cgroup_dirs([first[:12]])]
    finally:
        docker("rm", "-f", first, second)
        engutil.rmdir_cgroup(parent)
