"""Container lifecycle through the CLI: create/start/kill/delete, state, run, exit codes."""
import json
import os
import re
import subprocess
import time

import pytest
import util
from util import call, call_ok

# tests marked guest and guest_systemd also run in the cgroup v2 guest, with the cgroupfs
# driver (stage suite-v2) and under --systemd-cgroup (stage suite-v2-systemd): the ones that
# create, join, freeze or remove the container's cgroup (the guest is ~30-45x slower)


RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
SLEEPER = ["sleep", "1000"]


def wait_status(rt, cid, want, limit=10.0):
    """Poll `state` until the status is `want` (bounded wait, not a timing assertion)."""
    deadline = time.monotonic() + limit
    st = None
    while time.monotonic() < deadline:
        st = rt.state(cid)
        if st["status"] == want:
            return st
        time.sleep(0.02)
    raise AssertionError("status of %s stayed %r, wanted %r" % (cid, st and st["status"], want))


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def created(rt, make_bundle, cid, args=SLEEPER, **kw):
    b = make_bundle(args)
    call_ok(rt, "create", "--bundle", b.path, cid, **kw)
    return b


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_full_lifecycle(rt, make_bundle, cid, tmp_path):
    b = make_bundle(SLEEPER)
    pidfile = tmp_path / "ctr.pid"
    call_ok(rt, "create", "--bundle", b.path, "--pid-file", str(pidfile), cid)

    st = rt.state(cid)
    assert st["status"] == "created"
    assert st["id"] == cid
    pid = st["pid"]
    assert pid > 0 and pid_alive(pid)
    # engines parse the pid file strictly: digits only, no newline
    assert pidfile.read_text() == str(pid)
    assert os.path.realpath(st["bundle"]) == os.path.realpath(b.path)
    assert os.path.realpath(st["rootfs"]) == os.path.realpath(b.rootfs)

    rt.ok("start", cid)
    st = rt.state(cid)
    assert st["status"] == "running"
    assert st["pid"] == pid

    rt.ok("kill", cid, "KILL")
    wait_status(rt, cid, "stopped")
    rt.ok("delete", cid)
    assert not pid_alive(pid)
    assert rt.ok("list", "-q").stdout.split() == []
    p = rt.run("state", cid)
    assert p.returncode == 1
    assert "does not exist" in p.stderr


def _rfc3339_epoch(text):
    import datetime
    m = re.match(r"^(.{19})(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    t = datetime.datetime.fromisoformat(m.group(1) + tz).timestamp()
    return t + (int(m.group(2)) / 10 ** len(m.group(2)) if m.group(2) else 0)


def test_state_json_keys(rt, make_bundle, cid):
    b = make_bundle(SLEEPER)
    before = time.time()
    call_ok(rt, "create", "--bundle", b.path, cid)
    after = time.time()
    st = rt.state(cid)
    for key in ("ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"):
        assert key in st, key
    assert isinstance(st["ociVersion"], str) and st["ociVersion"]
    assert RFC3339.match(st["created"]), st["created"]
    # the wall clock at create (pyruntime computes the UTC date itself, not with strftime)
    assert before - 1 <= _rfc3339_epoch(st["created"]) <= after + 1, (before, st["created"])
    assert isinstance(st["owner"], str)
    assert "annotations" not in st or not st["annotations"]
    assert os.path.isabs(st["bundle"])


def test_state_annotations(rt, make_bundle, cid):
    b = make_bundle(SLEEPER)
    b.config["annotations"] = {"org.example.key": "value", "second": "2"}
    b.save()
    call_ok(rt, "create", "--bundle", b.path, cid)
    assert rt.state(cid)["annotations"] == {"org.example.key": "value", "second": "2"}


def test_state_of_stopped_container(rt, make_bundle, cid):
    b = make_bundle(["true"])
    rt.ok("run", "--keep", "--bundle", b.path, cid)
    st = rt.state(cid)
    assert st["status"] == "stopped"
    assert st["pid"] == 0
    rt.ok("delete", cid)


def test_kill_stopped_container_fails(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("kill", cid, "KILL")
    wait_status(rt, cid, "stopped")
    p = rt.run("kill", cid, "KILL")
    assert p.returncode == 1
    assert "container not running" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_kill_all_stopped_container_succeeds(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("kill", cid, "KILL")
    wait_status(rt, cid, "stopped")
    rt.ok("kill", "--all", cid, "KILL")


@pytest.mark.parametrize("sig", ["KILL", "SIGKILL", "9"])
def test_kill_signal_forms(rt, make_bundle, cid, sig):
    created(rt, make_bundle, cid)
    pid = rt.state(cid)["pid"]
    rt.ok("start", cid)
    rt.ok("kill", cid, sig)
    wait_status(rt, cid, "stopped")
    assert not pid_alive(pid)


def test_kill_default_signal_is_term(rt, make_bundle, cid):
    # pid 1 of a pid namespace ignores signals it has no handler for, so trap TERM
    b = make_bundle(["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"])
    call_ok(rt, "create", "--bundle", b.path, cid)
    rt.ok("start", cid)
    # start returns at the init's go, before its exec (as runc's): kill once the trap is
    # set, or the TERM may reach pid 1 while it still has no handler
    pid = rt.state(cid)["pid"]

    def trapped():
        with open("/proc/%d/status" % pid) as f:
            cgt = [l for l in f if l.startswith("SigCgt:")][0].split()[1]
        return int(cgt, 16) & (1 << (15 - 1))
    assert util.wait_for(trapped, 10)
    rt.ok("kill", cid)
    wait_status(rt, cid, "stopped")


def test_kill_bad_signal(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    p = rt.run("kill", cid, "NOSUCHSIG")
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    assert rt.state(cid)["status"] == "created"


def test_kill_created_container(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    pid = rt.state(cid)["pid"]
    rt.ok("kill", cid, "KILL")
    wait_status(rt, cid, "stopped")
    assert not pid_alive(pid)


def test_delete_missing_container(rt, cid):
    p = rt.run("delete", cid)
    assert p.returncode == 1
    assert "container does not exist" in p.stderr


def test_delete_force_missing_container(rt, cid):
    rt.ok("delete", "--force", cid)


def test_delete_running_needs_force(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    pid = rt.state(cid)["pid"]
    rt.ok("start", cid)
    p = rt.run("delete", cid)
    assert p.returncode == 1
    assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "--force", cid)
    assert not pid_alive(pid)
    assert rt.ok("list", "-q").stdout.split() == []


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_delete_force_created(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    pid = rt.state(cid)["pid"]
    rt.ok("delete", "--force", cid)
    assert not pid_alive(pid)
    assert rt.ok("list", "-q").stdout.split() == []


def test_start_running_container_fails(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    rt.ok("start", cid)
    before = rt.state(cid)
    p = rt.run("start", cid)
    assert p.returncode == 1
    assert "running" in p.stderr
    assert rt.state(cid) == before


def test_start_stopped_container_fails(rt, make_bundle, cid):
    b = make_bundle(["true"])
    rt.ok("run", "--keep", "--bundle", b.path, cid)
    before = rt.state(cid)
    p = rt.run("start", cid)
    assert p.returncode == 1
    assert "stopped" in p.stderr
    assert rt.state(cid) == before


def test_start_missing_container(rt, cid):
    p = rt.run("start", cid)
    assert p.returncode == 1
    assert "does not exist" in p.stderr


def test_create_existing_id_fails(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    before = rt.state(cid)
    b2 = make_bundle(SLEEPER)
    p = call(rt, "create", "--bundle", b2.path, cid)
    assert p.returncode == 1
    assert "already exists" in p.stderr
    assert rt.state(cid) == before
    assert rt.ok("list", "-q").stdout.split() == [cid]


def test_start_runs_process_once(rt, make_bundle, cid):
    # the process runs only after start: its side effect appears then, not at create
    b = make_bundle(["sh", "-c", "echo started > /tmp/marker; sleep 1000"])
    b.config["root"]["readonly"] = False
    b.save()
    marker = os.path.join(b.rootfs, "tmp", "marker")
    call_ok(rt, "create", "--bundle", b.path, cid)
    assert not os.path.exists(marker)
    rt.ok("start", cid)

    def text():
        try:
            with open(marker) as f:
                return f.read()
        except FileNotFoundError:
            return None
    # the shell creates the file before echo writes to it: wait for the line itself
    deadline = time.monotonic() + 10
    while text() != "started\n" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert text() == "started\n"


def test_run_exit_status(rt, make_bundle, cid):
    b = make_bundle(["sh", "-c", "echo out; echo err >&2; exit 3"])
    p = rt.run("run", "--bundle", b.path, cid)
    assert p.returncode == 3
    assert p.stdout == "out\n"
    assert "err\n" in p.stderr
    # without --keep the container is gone after it exits
    assert rt.ok("list", "-q").stdout.split() == []


def test_run_success(rt, make_bundle, cid):
    b = make_bundle(["echo", "hello"])
    p = rt.ok("run", "--bundle", b.path, cid)
    assert p.stdout == "hello\n"


@pytest.mark.guest
@pytest.mark.guest_systemd
@pytest.mark.parametrize("sig,num", [("KILL", 9), ("USR1", 10)])
def test_run_killed_by_signal(rt, make_bundle, cid, sig, num):
    # outside a pid namespace the shell is not pid 1, so it can die of its own signal
    b = make_bundle(["sh", "-c", "kill -%s $$; sleep 5" % sig])
    b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                       if n["type"] != "pid"]
    b.save()
    p = rt.run("run", "--bundle", b.path, cid)
    assert p.returncode == 128 + num


def test_run_detached(rt, make_bundle, cid):
    b = make_bundle(SLEEPER)
    call_ok(rt, "run", "-d", "--bundle", b.path, cid)
    st = rt.state(cid)
    assert st["status"] == "running"
    assert pid_alive(st["pid"])
    rt.ok("kill", cid, "KILL")
    wait_status(rt, cid, "stopped")
    rt.ok("delete", cid)


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_run_keep(rt, make_bundle, cid):
    b = make_bundle(["sh", "-c", "exit 5"])
    p = rt.run("run", "--keep", "--bundle", b.path, cid)
    assert p.returncode == 5
    assert rt.state(cid)["status"] == "stopped"
    assert rt.ok("list", "-q").stdout.split() == [cid]
    rt.ok("delete", cid)
    assert rt.ok("list", "-q").stdout.split() == []


def test_run_pid_file(rt, make_bundle, cid, tmp_path):
    b = make_bundle(SLEEPER)
    pidfile = tmp_path / "run.pid"
    call_ok(rt, "run", "-d", "--pid-file", str(pidfile), "--bundle", b.path, cid)
    assert pidfile.read_text() == str(rt.state(cid)["pid"])


def test_bundle_defaults_to_cwd(rt, make_bundle, cid):
    b = make_bundle(SLEEPER)
    p = subprocess.run(rt.cmd + ["--root", rt.root, "create", cid], cwd=b.path,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
    assert p.returncode == 0
    assert os.path.realpath(rt.state(cid)["bundle"]) == os.path.realpath(b.path)


def test_relative_bundle_path_is_stored_absolute(rt, make_bundle, cid):
    b = make_bundle(SLEEPER)
    rel = os.path.relpath(b.path)
    call_ok(rt, "create", "--bundle", rel, cid)
    st = rt.state(cid)
    assert os.path.isabs(st["bundle"])
    assert os.path.realpath(st["bundle"]) == os.path.realpath(b.path)


def test_many_containers_listed(rt, make_bundle, cid):
    ids = [cid + "-a", cid + "-b"]
    for i in ids:
        created(rt, make_bundle, i)
    assert sorted(rt.ok("list", "-q").stdout.split()) == sorted(ids)
    rt.ok("delete", "--force", ids[0])
    assert rt.ok("list", "-q").stdout.split() == [ids[1]]


def test_state_json_is_one_document(rt, make_bundle, cid):
    created(rt, make_bundle, cid)
    out = rt.ok("state", cid).stdout
    assert json.loads(out)["id"] == cid
