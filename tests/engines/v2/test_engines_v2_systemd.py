"""containerd, Docker and podman on cgroup v2 with the systemd cgroup driver, running their
containers on pyruntime: the configuration most hosts run (Debian 12, Ubuntu 22.04+,
Fedora). Runs in the qemu guest booted with systemd as PID 1 (the host's packages are
there: the guest shares the host's root read-only); run-tests.sh stage `engines-v2-systemd`
(tools/engines/v2-systemd.sh). One container per engine through its whole life: run, exec,
pause/resume, update (where the engine's CLI has it), stop, removal; each step checked
against pyruntime's own state and the container's transient unit and cgroup files.

- containerd 1.6 (ctr, runc shim v2): `--runc-binary` (the shim's BinaryName) pyruntime,
  `--runc-systemd-cgroup` (SystemdCgroup = true) and a "slice:prefix:name" cgroup. ctr 1.6
  has no `task update`; the shim's update path is Docker's below (dockerd 20.10 runs its
  containers through the same io.containerd.runc.v2 shim).
- Docker 20.10: `--exec-opt native.cgroupdriver=systemd`, `--add-runtime` pyruntime.
- podman 4.3: `cgroup_manager = "systemd"`, the runtime pyruntime.
The guest is emulated (~30-45x slower): each engine command takes seconds, so one
container per engine.
"""
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import daemons  # noqa: E402  (tests/engines/daemons.py)
import engutil  # noqa: E402  (tests/engines/engutil.py)

CG = "/sys/fs/cgroup"
T = 300  # per engine command in the emulated guest

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.isdir("/run/systemd/system")
    or not engutil.util.cgroup2_unified(CG),
    reason="needs root, systemd as PID 1 and cgroup v2 (the qemu guest's systemd mode)")


def rd(path):
    with open(path) as f:
        return f.read().strip()


def cg_of(pid):
    with open("/proc/%d/cgroup" % pid) as f:
        return CG + f.read().strip().split("::", 1)[1]


def unit_state(unit):
    r = engutil.run(["systemctl", "show", "-p", "ActiveState,LoadState", unit], timeout=T)
    return dict(l.split("=", 1) for l in r.stdout.splitlines() if "=" in l)


def unit_gone(unit):
    return unit_state(unit).get("LoadState") == "not-found" or \
        unit_state(unit).get("ActiveState") == "inactive"


def scratch(sb, name):
    """<sandbox>/name for an engine's image store: a tmpfs where the sandbox is on overlayfs
    (the guest's root), which overlay snapshotters cannot stack on; cleanup unmounts it."""
    p = sb.mkdir(name)
    if engutil.run(["stat", "-f", "-c", "%T", p]).stdout.strip() == "overlayfs":
        ok(engutil.run(["mount", "-t", "tmpfs", "-o", "mode=0711", "tmpfs", p]))
    return p


def pyrt_state(root, cid):
    r = engutil.run([engutil.PYRUNTIME, "--root", root, "state", cid], timeout=T)
    return json.loads(r.stdout) if r.returncode == 0 else None


def ok(r):
    assert r.returncode == 0, "%s -> %d\n%s%s" % (" ".join(r.args), r.returncode, r.stdout,
                                                  r.stderr)
    return r


def check_running(root, cid, unit, slice_dir):
    """pyruntime's state says running; the init is in <slice_dir>/<unit>, an active unit
    made for the container (Delegate=yes: the runtime owns the files below)."""
    st = pyrt_state(root, cid)
    assert st and st["status"] == "running", st
    d = cg_of(st["pid"])
    assert d == os.path.join(CG, slice_dir, unit), (d, unit)
    assert unit_state(unit).get("ActiveState") == "active"
    return st, d


def check_paused(root, cid, d):
    assert pyrt_state(root, cid)["status"] == "paused"
    assert rd(os.path.join(d, "cgroup.freeze")) == "1"


def check_gone(root, cid, unit, d):
    """pyruntime's state is gone, then the unit and its cgroup."""
    assert pyrt_state(root, cid) is None
    engutil.wait_for(lambda: unit_gone(unit) and not os.path.exists(d), 60, 0.5,
                     what="the unit gone")


def run_pause_resume(cli, root, scope, image, *flags):
    """What Docker and podman share: `run -d` a sleeping container with 128m of memory,
    running in its unit <scope>-<id>.scope under pyrt_engines.slice, `exec`'d, paused and
    resumed; -> (its id, its unit, its cgroup dir)."""
    cid = ok(cli("run", "-d", "--memory", "128m", *flags, image, "sleep", "1000")).stdout.strip()
    unit = "%s-%s.scope" % (scope, cid)
    _st, d = check_running(root, cid, unit, "pyrt_engines.slice")
    assert rd(os.path.join(d, "memory.max")) == str(128 << 20)
    r = ok(cli("exec", cid, "cat", "/proc/self/cgroup"))
    assert r.stdout.strip() == "0::/"  # both engines' v2 default: a private cgroup namespace
    ok(cli("pause", cid))
    check_paused(root, cid, d)
    ok(cli("unpause", cid))
    assert pyrt_state(root, cid)["status"] == "running"
    return cid, unit, d


# --- containerd ---------------------------------------------------------------------------

CTD_CONFIG = daemons.containerd_config(
    extra='[plugins."io.containerd.runtime.v1.linux"]\n  shim_debug = false\n')


@pytest.mark.skipif(engutil.have("containerd", "ctr", "containerd-shim-runc-v2") is not None,
                    reason="containerd is not installed")
def test_containerd_systemd_cgroup_lifecycle():
    sb = engutil.Sandbox("ctd2")
    try:
        rroot = sb.mkdir("runc-root")
        scratch(sb, "root")
        sock = daemons.start_containerd(sb, CTD_CONFIG, timeout=T)
        images = engutil.Images(sb)

        def ctr(*a, **kw):
            return daemons.ctr(sock, "pyrt", *a, timeout=T, **kw)

        ok(ctr("images", "import", images.archive))
        cid = "pyrt-ctd2-" + sb.tag[-6:]
        unit = "pyrt-%s.scope" % cid
        ok(ctr("run", "-d", "--runc-binary", engutil.PYRUNTIME, "--runc-root", rroot,
               "--runc-systemd-cgroup", "--cgroup", "pyrt_engines.slice:pyrt:" + cid,
               "--memory-limit", str(96 << 20), images.name, cid, "sleep", "1000"))
        root = os.path.join(rroot, "pyrt")
        st, d = check_running(root, cid, unit, "pyrt_engines.slice")
        assert rd(os.path.join(d, "memory.max")) == str(96 << 20)
        r = ok(ctr("tasks", "exec", "--exec-id", "e1", cid, "cat", "/proc/self/cgroup"))
        assert r.stdout.strip() == "0::/pyrt_engines.slice/" + unit
        ok(ctr("tasks", "pause", cid))
        check_paused(root, cid, d)
        ok(ctr("tasks", "resume", cid))
        assert pyrt_state(root, cid)["status"] == "running"
        # KILL: `sleep` is the pid namespace's init, which SIGTERM's default action spares
        ok(ctr("tasks", "kill", "-s", "KILL", cid))
        engutil.wait_for(lambda: "STOPPED" in ctr("tasks", "ls").stdout, 60, 0.5,
                         what="the task stopped")
        ok(ctr("tasks", "rm", cid))
        ok(ctr("containers", "rm", cid))
        check_gone(root, cid, unit, d)
    finally:
        leaks = sb.cleanup()
    assert not leaks, leaks


# --- Docker ---------------------------------------------------------------------------------

@pytest.mark.skipif(engutil.have("dockerd", "docker", "containerd") is not None,
                    reason="docker.io is not installed")
def test_docker_systemd_driver_lifecycle():
    sb = engutil.Sandbox("dkr2")
    try:
        dkd = daemons.start_dockerd(sb, runtimes={"pyruntime": engutil.PYRUNTIME},
                                    default="pyruntime", driver="systemd",
                                    parent="pyrt_engines.slice", data_root=scratch(sb, "data"),
                                    timeout=T)
        images = engutil.Images(sb)
        docker = daemons.Cli("docker", dkd.env, timeout=T)
        ok(docker("import", images.rootfs_tar, "pyrt-busybox:1"))
        root = os.path.join(dkd.exec_root, "runtime-runc", "moby")
        # the guest's kernel has AppArmor but the host root it shares has no apparmor_parser
        # to load Docker's default profile: run unconfined (no profile in the config)
        cid, unit, d = run_pause_resume(docker, root, "docker", "pyrt-busybox:1", "--network",
                                        "none", "--security-opt", "apparmor=unconfined")
        # through containerd's runc shim v2: the runtime's `update`, on the unit and files
        ok(docker("update", "--memory", "64m", "--pids-limit", "33", cid))
        assert rd(os.path.join(d, "memory.max")) == str(64 << 20)
        assert rd(os.path.join(d, "pids.max")) == "33"
        p = engutil.run(["systemctl", "show", "-p", "MemoryMax,TasksMax", unit], timeout=T)
        assert "MemoryMax=%d" % (64 << 20) in p.stdout and "TasksMax=33" in p.stdout, p.stdout
        ok(docker("stop", "-t", "1", cid))
        assert docker.inspect(cid)["State"]["Status"] == "exited"
        ok(docker("rm", cid))
        check_gone(root, cid, unit, d)
    finally:
        leaks = sb.cleanup()
    assert not leaks, leaks


# --- podman ---------------------------------------------------------------------------------

@pytest.mark.skipif(engutil.have("podman", "conmon") is not None,
                    reason="podman is not installed")
def test_podman_systemd_cgroup_manager_lifecycle():
    sb = engutil.Sandbox("pod2")
    try:
        scratch(sb, "storage")
        rroot = sb.mkdir("pyruntime-root")
        wrapper = daemons.wrapper(sb, "pyruntime", [engutil.PYRUNTIME], root=rroot)
        podman = daemons.Cli("podman", daemons.podman_env(
            sb, {"pyruntime": wrapper}, default="pyruntime", manager="systemd"), timeout=T)
        images = engutil.Images(sb)
        ok(podman("import", images.rootfs_tar, "localhost/pyrt-busybox:1"))
        cid, unit, d = run_pause_resume(podman, rroot, "libpod", "localhost/pyrt-busybox:1",
                                        "--pull", "never", "--cgroup-parent",
                                        "pyrt_engines.slice")
        # podman 4.3's update has no --pids-limit: memory and a CPU quota
        ok(podman("update", "--memory", "64m", "--cpus", "0.5", cid))
        assert rd(os.path.join(d, "memory.max")) == str(64 << 20)
        assert rd(os.path.join(d, "cpu.max")).split() == ["50000", "100000"]
        ok(podman("stop", "-t", "1", cid))
        assert pyrt_state(rroot, cid) is None or pyrt_state(rroot, cid)["status"] == "stopped"
        ok(podman("rm", cid))
        check_gone(rroot, cid, unit, d)
    finally:
        leaks = sb.cleanup()
    assert not leaks, leaks
