"""File descriptors: the container process sees 0-2, --preserve-fds and LISTEN_FDS, nothing
the runtime (or its caller) had open."""
import os
import subprocess

import pytest

LS = "ls /proc/self/fd"  # ls's own directory fd shows up as the next free number


def fds(out):
    return sorted(int(x) for x in out.split())


def with_fds(rt, pyrt_tmp, shell_redirs, args, env=None):
    """Run the runtime from a shell that opened extra fds first (exact fd numbers)."""
    f = os.path.join(pyrt_tmp, "somefile")
    with open(f, "w") as fh:
        fh.write("preserved\n")
    argv = ["sh", "-c", shell_redirs + '; exec "$@"', "sh"] + rt.cmd + ["--root", rt.root] + list(args)
    e = dict(os.environ, F=f, **(env or {}))
    return subprocess.run(argv, cwd=pyrt_tmp, env=e, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def test_run_sees_only_stdio(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sh", "-c", LS])
    r = with_fds(rt, pyrt_tmp, 'exec 5<"$F" 9<"$F"', ["run", "--bundle", b.path, cid])
    assert r.returncode == 0, r.stderr
    assert fds(r.stdout) == [0, 1, 2, 3]


def test_run_preserve_fds(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sh", "-c", LS + "; cat <&3; cat <&4"])
    r = with_fds(rt, pyrt_tmp, 'exec 3<"$F" 4<"$F" 7<"$F"',
                 ["run", "--preserve-fds", "2", "--bundle", b.path, cid])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert fds(" ".join(lines[:-3])) == [0, 1, 2, 3, 4, 5]  # not 7
    assert r.stdout.endswith("preserved\npreserved\n")


def test_listen_fds_passthrough(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sh", "-c", LS + '; echo "fds=$LISTEN_FDS pid=$LISTEN_PID"; cat <&3'])
    # LISTEN_PID names the runtime itself (the shell execs it, keeping its pid)
    r = with_fds(rt, pyrt_tmp, 'exec 3<"$F" 6<"$F"; export LISTEN_FDS=1 LISTEN_PID=$$',
                 ["run", "--bundle", b.path, cid])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert fds(" ".join(lines[:-2])) == [0, 1, 2, 3, 4]
    assert lines[-2:] == ["fds=1 pid=1", "preserved"]


def test_listen_fds_for_another_pid_ignored(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sh", "-c", LS + '; echo "fds=$LISTEN_FDS"'])
    r = with_fds(rt, pyrt_tmp, 'exec 3<"$F"; export LISTEN_FDS=1 LISTEN_PID=1',
                 ["run", "--bundle", b.path, cid])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert fds(" ".join(lines[:-1])) == [0, 1, 2, 3]
    assert lines[-1] == "fds="


def test_created_container_then_started_sees_only_stdio(rt, make_bundle, cid, pyrt_tmp):
    out = os.path.join(pyrt_tmp, "out")
    b = make_bundle(["sh", "-c", LS])
    # the container inherits the runtime's stdio: files, so that create returns
    r = with_fds(rt, pyrt_tmp, 'exec 5<"$F" >"%s" 2>"%s.err"' % (out, out),
                 ["create", "--bundle", b.path, cid])
    assert r.returncode == 0, r.stderr
    rt.ok("start", cid)
    import util
    assert util.wait_for(lambda: rt.state(cid)["status"] == "stopped")
    with open(out) as f:
        assert fds(f.read()) == [0, 1, 2, 3]


def test_exec_sees_only_stdio_and_preserved(rt, make_bundle, cid, pyrt_tmp):
    b = make_bundle(["sleep", "1000"])
    rt.ok("run", "-d", "--bundle", b.path, cid)
    r = with_fds(rt, pyrt_tmp, 'exec 5<"$F" 8<"$F"', ["exec", cid, "sh", "-c", LS])
    assert r.returncode == 0, r.stderr
    assert fds(r.stdout) == [0, 1, 2, 3]
    r = with_fds(rt, pyrt_tmp, 'exec 3<"$F" 8<"$F"',
                 ["exec", "--preserve-fds", "1", cid, "sh", "-c", LS + "; cat <&3"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert fds(" ".join(lines[:-1])) == [0, 1, 2, 3, 4]
    assert lines[-1] == "preserved"


def test_runtime_opens_fds_close_on_exec():
    """Audit: every os.open in the runtime's Python passes O_CLOEXEC explicitly (Python
    makes fds non-inheritable anyway; the explicit flag documents it and survives a port
    to os.open(..., flags) wrappers that strip it)."""
    import re
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pyruntime")
    bad = []
    for top, _dirs, files in os.walk(root):
        for n in files:
            if not n.endswith(".py"):
                continue
            p = os.path.join(top, n)
            with open(p) as f:
                src = f.read()
            for m in re.finditer(r"os\.open\(([^()]|\([^()]*\))*\)", src):
                if "O_CLOEXEC" not in m.group(0):
                    bad.append("%s: %s" % (os.path.relpath(p, root), m.group(0)[:80]))
    assert not bad, "os.open without O_CLOEXEC:\n" + "\n".join(bad)
