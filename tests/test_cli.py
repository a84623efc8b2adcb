"""CLI surface engines depend on: list formats, logging, --version, flag forms, spec."""
import json
import os
import re
import subprocess
import tempfile

import pytest
from util import call_ok


LIST_KEYS = {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"}
SLEEPER = ["sleep", "1000"]


def create(rt, make_bundle, cid, args=SLEEPER):
    b = make_bundle(args)
    call_ok(rt, "create", "--bundle", b.path, cid)
    return b


def test_list_empty(rt):
    p = rt.ok("list")
    assert p.stdout.split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert rt.ok("list", "-q").stdout == ""
    # runc prints "null" for no containers; an empty array means the same to a JSON reader
    assert json.loads(rt.ok("list", "-f", "json").stdout) in (None, [])


def test_list_table(rt, make_bundle, cid):
    b = create(rt, make_bundle, cid)
    pid = rt.state(cid)["pid"]
    lines = rt.ok("list").stdout.splitlines()
    assert lines[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert len(lines) == 2
    row = lines[1].split()
    assert row[0] == cid
    assert row[1] == str(pid)
    assert row[2] == "created"
    assert os.path.realpath(row[3]) == os.path.realpath(b.path)
    assert re.match(r"^\d{4}-\d\d-\d\dT", row[4])
    assert row[5] == "root"
    # columns are aligned: every field of the row starts where its header starts
    pos = len(cid)
    for name, value in zip(["PID", "STATUS", "BUNDLE", "CREATED", "OWNER"], row[1:]):
        pos = lines[1].index(value, pos)
        assert lines[0].index(name) == pos, name
        pos += len(value)


def test_list_json(rt, make_bundle, cid):
    b = create(rt, make_bundle, cid)
    st = rt.state(cid)
    out = json.loads(rt.ok("list", "-f", "json").stdout)
    assert isinstance(out, list) and len(out) == 1
    ent = out[0]
    assert set(ent) >= LIST_KEYS
    assert ent["id"] == cid
    assert ent["pid"] == st["pid"]
    assert ent["status"] == "created"
    assert os.path.realpath(ent["bundle"]) == os.path.realpath(b.path)
    assert os.path.realpath(ent["rootfs"]) == os.path.realpath(b.rootfs)
    assert ent["created"] == st["created"]
    assert ent["owner"] == "root"


def test_list_json_flag_equals_form(rt, make_bundle, cid):
    create(rt, make_bundle, cid)
    out = json.loads(rt.ok("list", "--format=json").stdout)
    assert [e["id"] for e in out] == [cid]


def test_list_quiet(rt, make_bundle, cid):
    create(rt, make_bundle, cid)
    assert rt.ok("list", "-q").stdout == cid + "\n"
    assert rt.ok("list", "--quiet").stdout == cid + "\n"


def test_list_bad_format(rt):
    p = rt.run("list", "-f", "yaml")
    assert p.returncode == 1
    assert "format" in p.stderr
    assert "Traceback" not in p.stderr


def test_list_running_and_stopped(rt, make_bundle, cid):
    running, stopped = cid + "-r", cid + "-s"
    create(rt, make_bundle, running)
    rt.ok("start", running)
    b = make_bundle(["true"])
    rt.ok("run", "--keep", "--bundle", b.path, stopped)
    out = {e["id"]: e for e in json.loads(rt.ok("list", "-f", "json").stdout)}
    assert out[running]["status"] == "running"
    assert out[stopped]["status"] == "stopped"
    assert out[stopped]["pid"] == 0


def test_log_json_file(rt, cid, tmp_path):
    log = tmp_path / "rt.log"
    p = rt.run("--log", str(log), "--log-format", "json", "delete", cid)
    assert p.returncode == 1
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines, "nothing logged"
    err = [x for x in lines if x["level"] == "error"]
    assert len(err) == 1
    assert set(err[0]) >= {"level", "msg", "time"}
    assert "container does not exist" in err[0]["msg"]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", err[0]["time"])


def test_log_file_error_also_on_stderr(rt, cid, tmp_path):
    # runc writes a fatal error to stderr as well when the log goes to a file: a caller that
    # only reads stderr still learns why the command failed
    log = tmp_path / "rt.log"
    p = rt.run("--log", str(log), "--log-format", "json", "delete", cid)
    assert p.returncode == 1
    assert "container does not exist" in p.stderr


def test_log_format_equals_form_to_stderr(rt, cid):
    p = rt.run("--log-format=json", "delete", cid)
    assert p.returncode == 1
    line = json.loads(p.stderr.strip().splitlines()[-1])
    assert line["level"] == "error"
    assert "container does not exist" in line["msg"]


def test_log_text_format(rt, cid):
    p = rt.run("delete", cid)
    assert p.returncode == 1
    assert re.search(r'level=error msg="container does not exist"', p.stderr)


def test_root_flag_equals_form(rt, make_bundle, cid):
    b = make_bundle(SLEEPER)
    with tempfile.TemporaryFile("w+") as err:
        p = subprocess.run(rt.cmd + ["--root=" + rt.root, "create", "--bundle=" + b.path, cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                           timeout=60)
        err.seek(0)
        assert p.returncode == 0, err.read()
    assert rt.ok("list", "-q").stdout.split() == [cid]


def test_version(rt):
    p = rt.ok("--version")
    first = p.stdout.splitlines()[0]
    assert re.match(r"^(runc|pyruntime) version \S+$", first), first
    assert any(x.startswith("spec: ") for x in p.stdout.splitlines())
    assert rt.ok("-v").stdout == p.stdout


def test_unknown_flag(rt):
    p = rt.run("--no-such-flag", "list")
    assert p.returncode != 0
    assert "flag provided but not defined" in p.stderr
    assert "Traceback" not in p.stderr


def test_unknown_command(rt):
    p = rt.run("no-such-command")
    assert p.returncode != 0
    assert "Traceback" not in p.stderr


def test_wrong_arg_count(rt):
    p = rt.run("state")
    assert p.returncode == 1
    assert "requires exactly 1 argument" in p.stderr
    assert "Traceback" not in p.stderr


def test_help(rt):
    p = rt.ok("--help")
    for cmd in ("create", "start", "run", "kill", "delete", "state", "list", "spec"):
        assert re.search(r"^\s+%s\b" % cmd, p.stdout, re.M), cmd


def test_spec_writes_config(rt, tmp_path):
    d = tmp_path / "specdir"
    d.mkdir()
    rt.ok("spec", "--bundle", str(d))
    cfg = json.loads((d / "config.json").read_text())
    assert cfg["root"]["path"] == "rootfs"
    assert cfg["process"]["args"] == ["sh"]
    assert cfg["process"]["terminal"] is True
    types = {n["type"] for n in cfg["linux"]["namespaces"]}
    assert {"pid", "network", "ipc", "uts", "mount"} <= types
    assert [m["destination"] for m in cfg["mounts"]][:2] == ["/proc", "/dev"]


def test_spec_refuses_to_overwrite(rt, tmp_path):
    d = tmp_path / "specdir"
    d.mkdir()
    (d / "config.json").write_text("keep me")
    p = rt.run("spec", "--bundle=" + str(d))
    assert p.returncode == 1
    assert "config.json exists" in p.stderr
    assert (d / "config.json").read_text() == "keep me"


def test_spec_rootless(rt, tmp_path):
    d = tmp_path / "specdir"
    d.mkdir()
    rt.ok("spec", "--rootless", "-b", str(d))
    cfg = json.loads((d / "config.json").read_text())
    types = {n["type"] for n in cfg["linux"]["namespaces"]}
    assert "user" in types and "network" not in types
    assert cfg["linux"]["uidMappings"][0]["containerID"] == 0
    assert cfg["linux"]["uidMappings"][0]["hostID"] == os.geteuid()


def test_spec_output_is_runnable(rt, make_bundle, cid):
    # the generated config must be accepted by create (terminal off, a real command)
    b = make_bundle(["true"])
    os.unlink(os.path.join(b.path, "config.json"))
    rt.ok("spec", "-b", b.path)
    with open(os.path.join(b.path, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["echo", "spec-ok"]
    b.config = cfg
    b.save()
    assert rt.ok("run", "--bundle", b.path, cid).stdout == "spec-ok\n"


def test_plan_command(rt, make_bundle):
    if not rt.is_pyruntime:
        pytest.skip("pyruntime only: runc has no plan command")
    b = make_bundle(["true"])
    p = rt.ok("plan", "-b", b.path)
    plan = json.loads(p.stdout)
    assert "steps" in plan and plan["steps"]
    assert all("op" in s and "desc" in s for s in plan["steps"])
    assert any(s["op"] == "exec" for s in plan["steps"])
    assert "pid" in plan["namespaces"]["clone"]


def test_output_to_closed_pipe_fails_cleanly(rt, make_bundle, cid):
    # The launcher skips interpreter teardown, so its last flush must still report a
    # reader that went away: non-zero exit, no traceback.
    create(rt, make_bundle, cid)
    for args in (["--version"], ["state", cid], ["list"]):
        r, w = os.pipe()
        os.close(r)
        p = subprocess.run(rt.cmd + ["--root", rt.root] + args, stdout=w,
                           stderr=subprocess.PIPE, text=True, timeout=30)
        os.close(w)
        assert p.returncode != 0, args
        assert "Traceback" not in p.stderr, (args, p.stderr)


def test_output_complete_through_a_pipe(rt, make_bundle, cid):
    # The launcher exits with os._exit: whatever is still in stdout's buffer must be
    # flushed first, or JSON readers get a truncated document.
    create(rt, make_bundle, cid)
    assert json.loads(rt.ok("state", cid).stdout)["id"] == cid
    assert "ociVersionMin" in json.loads(rt.ok("features").stdout)
