"""The compiled `pyruntime` launcher (csrc/launcher.c): argv reaches the interpreter
unchanged, and only create/run/exec set off the cgroup-migration warm-up child, which
holds none of the caller's files."""
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stands in for the interpreter: reports its argv and the children it has (the
# warm-up child, forked before the exec, is one; a shell `read` forks nothing).
FAKE_PYTHON = r"""#!/bin/sh
echo "ARGS:$*"
read -r kids < /proc/$$/task/$$/children
echo "KIDS:$kids"
for k in $kids; do
    echo "CWD:$(readlink /proc/$k/cwd)"
    for f in /proc/$k/fd/*; do [ -e "$f" ] && echo "FD:$(readlink $f)"; done
done
exit 0
"""


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    d = tmp_path_factory.mktemp("launcher")
    fake = d / "fakepy"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    exe = d / "pyruntime"
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-o", str(exe),
                    os.path.join(REPO, "csrc", "launcher.c"),
                    '-DPYRT_PYTHON="%s"' % fake, '-DPYRT_ENTRY="/entry/script"'],
                   check=True, capture_output=True)
    return str(exe)


def _launch(launcher, *args):
    p = subprocess.run([launcher] + list(args), capture_output=True, text=True, timeout=30,
                       cwd="/tmp")
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines():
        k, _, v = line.partition(":")
        out.setdefault(k, []).append(v)
    return out


@pytest.mark.parametrize("args,warms", [
    (["create", "--bundle", "b", "c1"], True),
    (["--root", "/r", "--log", "/l", "--log-format", "json", "run", "c1"], True),
    (["--root=/r", "exec", "c1", "true"], True),
    (["-root", "/r", "--debug", "create", "c1"], True),
    (["--", "run", "c1"], True),
    (["state", "exec"], False),
    (["--log", "exec", "state", "c1"], False),     # "exec" is --log's value
    (["--rootless", "run", "list"], False),
    (["start", "c1"], False),
    (["delete", "--force", "create"], False),
    ([], False),
])
def test_warm_up_only_for_commands_that_place_a_process(launcher, args, warms):
    out = _launch(launcher, *args)
    assert out["ARGS"] == [" ".join(["-IS", "/entry/script"] + args)]
    kids = out["KIDS"][0].split()
    assert len(kids) == (1 if warms else 0), out


def test_warm_up_child_holds_nothing_of_the_caller(launcher):
    out = _launch(launcher, "create", "c1")
    # It may have finished already (a zombie has neither); while alive: cwd /, and at
    # most the cgroup.procs file it writes, never the caller's stdio pipes.
    for cwd in out.get("CWD", []):
        assert cwd in ("", "/"), out
    for fd in out.get("FD", []):
        assert fd.endswith("/cgroup.procs"), out


def test_installed_launcher_runs_the_cli(rt):
    p = rt.ok("--version")
    assert "spec: " in p.stdout
