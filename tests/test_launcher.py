"""The compiled `pyruntime` launcher (csrc/launcher.c): argv reaches the interpreter
unchanged, and only create/run/exec set off the cgroup-migration warm-up child, which
holds none of the caller's files."""
import json
import os
import subprocess

import pytest

import util

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stands in for the interpreter: reports its argv and the children it has (the
# warm-up child, forked before the exec, is one; a shell `read` forks nothing).
FAKE_PYTHON = r"""#!/bin/sh
echo "ARGS:$*"
echo "LC_ALL:${LC_ALL-unset}"
echo "PYRT_LC_ALL:${PYRT_LC_ALL-unset}"
read -r kids < /proc/$$/task/$$/children
echo "KIDS:$kids"
for k in $kids; do
    # the child names itself once it has let the caller's files go: wait for that
    i=0
    while [ "$(cat /proc/$k/comm)" != pyrt-cg-warmup ] && [ $i -lt 500 ]; do
        sleep 0.01; i=$((i + 1))
    done
    echo "COMM:$(cat /proc/$k/comm)"
    echo "CWD:$(readlink /proc/$k/cwd)"
    for f in /proc/$k/fd/*; do [ -e "$f" ] && echo "FD:$(readlink $f)"; done
done
exit 0
"""


def _build(d):
    exe = d / "pyruntime"
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-o", str(exe),
                    os.path.join(REPO, "csrc", "launcher.c")], check=True, capture_output=True)
    return exe


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    d = tmp_path_factory.mktemp("launcher")
    fake = d / "fakepy"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    exe = _build(d)
    # the interpreter is the one the entry's #! line names (an argument after it ignored)
    (d / "pyruntime-entry").write_text("#!%s -IS\nraise SystemExit(3)\n" % fake)
    return str(exe)


def _entry(launcher):
    return os.path.realpath(launcher) + "-entry"


def _launch(launcher, *args, env=None):
    # the fast path off: what is checked here is what reaches the interpreter, and
    # `delete --force` of an id not there would not reach it at all
    e = {k: v for k, v in os.environ.items() if not k.startswith("PYRT_")}
    e["PYRT_FASTPATH"] = "0"
    p = subprocess.run([launcher] + list(args), capture_output=True, text=True, timeout=30,
                       cwd="/tmp", env=dict(e, **(env or {})))
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines():
        k, _, v = line.partition(":")
        out.setdefault(k, []).append(v)
    return out


# The init is born in its cgroups (clone3 on v2, its builder's own `tasks` writes on v1):
# create/run of the cgroupfs driver move nothing, on any host, and so take no warm-up.


@pytest.mark.parametrize("args,warms", [
    (["create", "--bundle", "b", "c1"], False),
    (["--root", "/r", "--log", "/l", "--log-format", "json", "run", "c1"], False),
    (["--root=/r", "exec", "c1", "true"], False),
    (["exec", "--cgroup", "sub", "c1", "true"], True),     # moved into a sub-cgroup
    (["exec", "--cgroup=pids:sub", "c1", "true"], True),
    (["exec", "-ignore-paused", "c1", "true"], True),      # joins the frozen cgroup late
    (["--systemd-cgroup", "exec", "c1", "true"], True),    # systemd's unit: moved
    (["-root", "/r", "--debug", "create", "c1"], False),
    (["--", "run", "c1"], False),
    (["--systemd-cgroup", "create", "c1"], True),     # systemd moves the init
    (["--root", "/r", "--systemd-cgroup=true", "run", "c1"], True),
    (["create", "--systemd-cgroup", "c1"], False),  # not a global flag there
    (["state", "exec"], False),
    (["--log", "exec", "state", "c1"], False),     # "exec" is --log's value
    (["--rootless", "run", "list"], False),
    (["start", "c1"], False),
    (["delete", "--force", "create"], False),
    ([], False),
])
def test_warm_up_only_for_commands_that_place_a_process(launcher, args, warms):
    out = _launch(launcher, *args)
    assert out["ARGS"] == [" ".join(["-IS", "-Xutf8", _entry(launcher)] + args)]
    kids = out["KIDS"][0].split()
    assert len(kids) == (1 if warms else 0), out


@pytest.mark.parametrize("env,warms", [
    ({"PYRT_WARMUP": "0"}, False),
    ({"PYRT_WARMUP": "1"}, True),
    ({"PYRT_CLONE_INTO_CGROUP": "0"}, True),   # the init is moved: worth warming
    ({}, False),
])
def test_warm_up_switches(launcher, env, warms):
    out = _launch(launcher, "create", "c1", env=env)
    assert len(out["KIDS"][0].split()) == (1 if warms else 0), out
    # exec's process is born in its cgroups as the init is: the same switches
    out = _launch(launcher, "exec", "c1", "true", env=env)
    assert len(out["KIDS"][0].split()) == (1 if warms else 0), out


@pytest.mark.parametrize("lc_all,mark", [(None, "u"), ("", "s"), ("de_DE.UTF-8", "sde_DE.UTF-8"),
                                         ("C", None)])
def test_interpreter_starts_in_the_c_locale(launcher, lc_all, mark):
    # the caller's LC_ALL rides along in PYRT_LC_ALL for entry() to put back
    # (test_hooks.py::test_hook_without_env_gets_the_callers_locale: it is)
    env = {k: v for k, v in os.environ.items() if k != "LC_ALL"}
    if lc_all is not None:
        env["LC_ALL"] = lc_all
    p = subprocess.run([launcher, "state", "c1"], capture_output=True, text=True, timeout=30,
                       cwd="/tmp", env=dict(env, PYRT_FASTPATH="0", PYRT_LC_ALL="sxx"))
    assert p.returncode == 0, p.stderr
    assert "LC_ALL:C\n" in p.stdout
    assert "PYRT_LC_ALL:%s\n" % ("unset" if mark is None else mark) in p.stdout


def test_warm_up_child_holds_nothing_of_the_caller(launcher):
    out = _launch(launcher, "exec", "--cgroup", "sub", "c1", "true")
    assert out["COMM"] == ["pyrt-cg-warmup"], out  # not a second `pyruntime create` in ps
    # It may have finished already (a zombie has neither); while alive: cwd /, and at
    # most the cgroup.procs file it writes, never the caller's stdio pipes.
    for cwd in out.get("CWD", []):
        assert cwd in ("", "/"), out
    for fd in out.get("FD", []):
        # "" when the fd closed between listing and readlink: it reopens every 5 ms
        assert fd == "" or fd.endswith("/cgroup.procs"), out


ECHO_PYTHON = "#!/bin/sh\necho \"$0|$*\"\n"


@pytest.mark.parametrize("first_lines,dirname", [
    ("#!{py}\n", "in stall"),                    # what pip writes, spaces and all
    ("#! {py} -E\r\n", "install"),               # kernel-style: one argument after the path
    ("#!/bin/sh\n'''exec' \"{py}\" \"$0\" \"$@\"\n' '''\n", "in stall"),  # trampolines
    ("#!/bin/sh\n'''exec' {py} \"$0\" \"$@\"\n' '''\n", "install"),
])
def test_interpreter_is_the_one_on_the_entry_scripts_first_line(tmp_path, first_lines,
                                                                 dirname):
    d = tmp_path / dirname
    d.mkdir()
    py = d / "python"
    py.write_text(ECHO_PYTHON)
    py.chmod(0o755)
    exe = _build(d)
    entry = str(exe) + "-entry"
    with open(entry, "w") as f:
        f.write(first_lines.format(py=py) + "raise SystemExit(3)\n")
    # reached through a symlink elsewhere, as /usr/local/bin/pyruntime: the entry is the
    # one next to the real file
    link = tmp_path / "pyruntime"
    link.symlink_to(exe)
    p = subprocess.run([str(link), "state", "a b"], capture_output=True, text=True,
                       timeout=30, cwd="/")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "%s|-IS -Xutf8 %s state a b\n" % (py, entry)


@pytest.mark.parametrize("content", [None, "", "import sys\n", "#!\n", "#!python\n"])
def test_no_usable_entry_is_one_clear_error(tmp_path, content):
    exe = _build(tmp_path)
    if content is not None:
        (tmp_path / "pyruntime-entry").write_text(content)
    p = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 127
    assert p.stdout == ""
    assert p.stderr.startswith("pyruntime: no interpreter in %s-entry: " % exe), p.stderr
    assert p.stderr.count("\n") == 1


def test_installed_launcher_runs_the_cli(rt):
    p = rt.ok("--version")
    assert "spec: " in p.stdout


# Modules that cost milliseconds to import (re+enum ~4 ms, json ~6, subprocess ~9,
# jsonschema ~50): the commands engines run on every container must not load them.
HEAVY = ("re", "enum", "json", "subprocess", "signal", "jsonschema", "pyruntime._seccomp",
         "threading", "typing")
# `os` itself is ~1 ms of CPU (its _collections_abc and posixpath): pyruntime.oslite
# stands in for it on the engines' commands
OS = ("os", "posixpath", "_collections_abc")


def _imports_of(rt, args, tmp, cwd=None, input=None):
    """Run a CLI command through the installed entry script with -X importtime; the set
    of modules it imported, and its exit status."""
    entry = rt.cmd[0] + "-entry"
    with open(entry) as f:
        python = f.readline()[2:].split()[0]
    err = os.path.join(tmp, "importtime")
    src = os.path.join(tmp, "stdin")
    with open(src, "w") as f:
        f.write(input or "")
    with open(err, "w") as ef, open(src) as inp:
        p = subprocess.run([python, "-IS", "-X", "importtime", entry, "--root", rt.root,
                            "--log", os.path.join(tmp, "log.json"), "--log-format", "json"]
                           + list(args), stdin=inp, stdout=subprocess.DEVNULL,
                           stderr=ef, cwd=cwd, timeout=60)
    mods = set()
    with open(err) as f:
        for line in f:
            if line.startswith("import time:") and line.count("|") == 2:
                mods.add(line.rsplit("|", 1)[1].strip())
    return mods, p.returncode


def test_engine_commands_import_nothing_heavy(rt, make_bundle, cid, pyrt_tmp):
    if not rt.is_pyruntime or not os.path.exists(rt.cmd[0] + "-entry"):
        pytest.skip("checks pyruntime's own launcher")
    b = make_bundle(["sleep", "1000"])
    # as Docker and containerd send it: a config never seen before, with a runtime hook
    b.config.setdefault("annotations", {})["org.pyruntime.test"] = cid + str(os.getpid())
    b.config["hooks"] = {"prestart": [{"path": "/bin/true"}],
                         "poststop": [{"path": "/bin/true"}]}
    b.save()
    proc = os.path.join(pyrt_tmp, "process.json")
    with open(proc, "w") as f:
        json.dump(dict(b.config["process"], args=["/bin/true"], terminal=False), f)
    steps = [
        (["features"], 0),
        (["create", "--bundle", b.path, cid], 0),
        (["start", cid], 0),
        (["state", cid], 0),
        (["update", "--resources", "-", cid], 0),
        (["ps", "--format", "json", cid], 0),
        (["exec", "--process", proc, cid], 0),
        (["kill", cid, "KILL"], 0),
        (["delete", cid], 0),
        (["delete", cid], 1),          # an error, logged as JSON
        (["kill", cid, "TERM"], 1),
    ]
    for args, want in steps:
        if args[0] == "delete" and want == 0:
            util.wait_for(lambda: rt.state(cid)["status"] == "stopped", 10)
        mods, rc = _imports_of(rt, args, pyrt_tmp,
                               input='{"pids": {"limit": 100}}' if args[0] == "update" else None)
        assert rc == want, args
        assert "pyruntime.cli" in mods, (args, sorted(mods))  # the probe itself works
        # features reports libseccomp's version and actions: the one that needs it
        allowed = {"pyruntime._seccomp"} | set(OS) if args[0] == "features" else set()
        heavy = sorted(m for m in mods if m in HEAVY + OS and m not in allowed)
        assert not heavy, (args, heavy)


def test_run_and_exec_leave_os_out(rt, make_bundle, cid, pyrt_tmp):
    """run (create, start, the relay, delete in one process) and exec load none of `os`:
    pyruntime.oslite stands in for it (~1 ms of CPU of every command)."""
    if not rt.is_pyruntime or not os.path.exists(rt.cmd[0] + "-entry"):
        pytest.skip("checks pyruntime's own launcher")
    b = make_bundle(["/bin/echo", "hi"])
    mods, rc = _imports_of(rt, ["run", "--bundle", b.path, cid], pyrt_tmp)
    assert rc == 0
    assert "pyruntime.stdio" in mods and "select" in mods, sorted(mods)  # it relayed
    assert not [m for m in OS if m in mods], sorted(mods)
    b2 = make_bundle(["sleep", "1000"])
    rt.ok("run", "-d", "--bundle", b2.path, cid + "x")
    mods, rc = _imports_of(rt, ["exec", cid + "x", "/bin/echo", "hi"], pyrt_tmp)
    assert rc == 0
    assert "pyruntime.execproc" in mods, sorted(mods)
    assert not [m for m in OS if m in mods], sorted(mods)
    rt.ok("delete", "-f", cid + "x")


def test_plain_create_leaves_out_what_only_run_needs(rt, make_bundle, cid, pyrt_tmp):
    """create of a plain detached config (no terminal, no hooks) never relays stdio: the
    relay's `select` stays out (create's peak RSS is compared with runc's: issue 13)."""
    if not rt.is_pyruntime or not os.path.exists(rt.cmd[0] + "-entry"):
        pytest.skip("checks pyruntime's own launcher")
    b = make_bundle(["sleep", "1000"])
    mods, rc = _imports_of(rt, ["create", "--bundle", b.path, cid], pyrt_tmp)
    assert rc == 0
    assert "pyruntime.stdio" in mods, sorted(mods)   # the probe reaches the stdio set-up
    assert "select" not in mods, sorted(mods)


@pytest.mark.parametrize("musl", ["1", "0"])
def test_install_launcher_builds_musl_where_it_can(tmp_path, musl):
    """setup.sh's launcher (pyruntime/install_launcher.py): a static musl program where
    musl-gcc is installed (glibc's start-up was most of a fast-path command's CPU), cc's
    with PYRT_MUSL=0; either runs the CLI."""
    import shutil
    import sys
    import pyruntime
    if not os.path.exists(os.path.join(os.path.dirname(os.path.dirname(pyruntime.__file__)),
                                       "csrc", "launcher.c")):
        pytest.skip("an installed package has no csrc/: setup.py built its launcher")
    if musl == "1" and not shutil.which("musl-gcc"):
        pytest.fail("musl-gcc is not installed: setup.sh installs musl-tools")
    dest = tmp_path / "pyruntime"
    env = dict(os.environ, PYRT_MUSL=musl)
    subprocess.run([sys.executable, "-m", "pyruntime.install_launcher", str(dest)],
                   check=True, capture_output=True, env=env, timeout=300)
    prog = dest.read_bytes()
    assert prog[:4] == b"\x7fELF"
    assert (b"ld-linux" in prog) == (musl == "0")
    p = subprocess.run([str(dest), "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("pyruntime version "), p
