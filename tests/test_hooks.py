"""OCI hooks: each kind at its point, in its namespace, with the state on stdin; timeouts,
failures, and a CNI-style createRuntime hook wiring two containers together."""
import json
import os
import subprocess
import sys

import pytest

import util

# tests marked guest and guest_systemd also run in the cgroup v2 guest, with the cgroupfs
# driver (stage suite-v2) and under --systemd-cgroup (stage suite-v2-systemd): the ones that
# create, join, freeze or remove the container's cgroup (the guest is ~30-45x slower)

RECORDER = """#!/bin/sh
# $1 = kind; records the order, stdin (the state), argv0, env and namespaces
d=$(dirname "$0")
kind=$1
echo "$kind" >> "$d/order"
cat > "$d/$kind.state"
echo "$0" > "$d/$kind.argv0"
echo "$HOOKVAR" > "$d/$kind.env"
readlink /proc/self/ns/mnt > "$d/$kind.mnt"
readlink /proc/self/ns/net > "$d/$kind.net"
exit ${2:-0}
"""


@pytest.fixture
def hookdir(pyrt_tmp):
    d = os.path.join(pyrt_tmp, "hk")
    os.mkdir(d)
    os.chmod(d, 0o777)
    path = os.path.join(d, "rec.sh")
    with open(path, "w") as f:
        f.write(RECORDER)
    os.chmod(path, 0o755)
    return d


def read(d, name):
    with open(os.path.join(d, name)) as f:
        return f.read()


def hook(path, kind, code=0, **kw):
    h = {"path": path, "args": [path, kind, str(code)], "env": ["HOOKVAR=" + kind]}
    h.update(kw)
    return h


def with_hooks(make_bundle, hookdir, args=("sh", "-c", "echo process >> /out/order"), **hooks):
    b = make_bundle(list(args))
    # the hook dir is /out in the container: startContainer hooks run in there
    b.config["mounts"].append({"destination": "/out", "type": "bind", "source": hookdir,
                               "options": ["rbind", "rw"]})
    b.config["hooks"] = hooks
    b.save()
    return b


ALL = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


def all_hooks(hookdir):
    host = os.path.join(hookdir, "rec.sh")
    return {k: [hook("/out/rec.sh" if k == "startContainer" else host, k)] for k in ALL}


@pytest.mark.guest
@pytest.mark.guest_systemd
def test_every_hook_kind_order_and_state(rt, make_bundle, cid, hookdir):
    b = with_hooks(make_bundle, hookdir, **all_hooks(hookdir))
    rt.ok("create", "--bundle", b.path, cid)
    init = rt.state(cid)["pid"]
    order = read(hookdir, "order").split()
    assert order[:3] == ["prestart", "createRuntime", "createContainer"]
    if rt.is_pyruntime:
        # the spec: poststart after start (runc 1.1.5 runs it at create)
        assert len(order) == 3
    for k in ("prestart", "createRuntime", "createContainer"):
        s = json.loads(read(hookdir, k + ".state"))
        assert (s["id"], s["status"], s["bundle"]) == (cid, "creating", b.path)
        assert read(hookdir, k + ".env") == k + "\n"
        if k != "createContainer" or rt.is_pyruntime:  # runc: the pid as the init sees it (1)
            assert s["pid"] == init
    rt.ok("start", cid)
    assert util.wait_for(lambda: rt.state(cid)["status"] == "stopped")
    order = read(hookdir, "order").split()
    # startContainer before the process; poststart after start (it may race the process)
    assert order.index("startContainer") < order.index("process")
    if rt.is_pyruntime:
        assert [o for o in order if o != "process"] == list(ALL[:5])
    s = json.loads(read(hookdir, "startContainer.state"))
    assert (s["id"], s["status"]) == (cid, "created")
    s = json.loads(read(hookdir, "poststart.state"))
    assert s["id"] == cid and s["pid"] == init
    if rt.is_pyruntime:
        assert s["status"] == "running"  # runc 1.1.5 says "created"
    rt.ok("delete", cid)
    assert read(hookdir, "order").split()[-1] == "poststop"
    s = json.loads(read(hookdir, "poststop.state"))
    assert (s["id"], s["status"]) == (cid, "stopped")


def test_poststart_after_the_process_is_executed(rt, make_bundle, cid, hookdir):
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 runs poststart hooks at create")
    # the spec: poststart "after the user-specified process is executed"; a slow
    # startContainer hook makes any early poststart visible every time
    slow = os.path.join(hookdir, "slow.sh")
    with open(slow, "w") as f:
        f.write("#!/bin/sh\nsleep 1\necho done > /out/started\n")
    os.chmod(slow, 0o755)
    post = os.path.join(hookdir, "post.sh")
    with open(post, "w") as f:
        f.write("#!/bin/sh\nd=$(dirname \"$0\")\n"
                "pid=$(sed 's/.*\"pid\": *\\([0-9]*\\).*/\\1/')\n"
                "cat \"$d/started\" > \"$d/seen\" 2>&1\n"
                "tr '\\0' ' ' < /proc/$pid/cmdline >> \"$d/seen\"\n")
    os.chmod(post, 0o755)
    b = with_hooks(make_bundle, hookdir, args=["sleep", "1000"],
                   startContainer=[{"path": "/out/slow.sh"}], poststart=[{"path": post}])
    rt.ok("create", "--bundle", b.path, cid)
    rt.ok("start", cid)
    # start returns once poststart has run: no waiting here
    assert read(hookdir, "seen") == "done\nsleep 1000 "
    rt.ok("delete", "--force", cid)


def test_poststart_when_a_start_container_hook_fails(rt, make_bundle, cid, hookdir):
    # the init dies before any exec: start must not wait for one
    post = os.path.join(hookdir, "post.sh")
    with open(post, "w") as f:
        f.write("#!/bin/sh\necho ran > \"$(dirname \"$0\")/post\"\n")
    os.chmod(post, 0o755)
    b = with_hooks(make_bundle, hookdir, args=["sleep", "1000"],
                   startContainer=[{"path": "/bin/false"}], poststart=[{"path": post}])
    rt.ok("create", "--bundle", b.path, cid)
    rt.run("start", cid, timeout=30)
    assert util.wait_for(lambda: rt.state(cid)["status"] == "stopped")
    rt.ok("delete", cid)


def test_hook_namespaces(rt, make_bundle, cid, hookdir):
    b = with_hooks(make_bundle, hookdir, args=["sleep", "1000"], **all_hooks(hookdir))
    rt.ok("create", "--bundle", b.path, cid)
    init = rt.state(cid)["pid"]
    ns = lambda pid, n: os.readlink("/proc/%s/ns/%s" % (pid, n)) + "\n"
    # createRuntime/prestart: the runtime's namespaces
    for k in ("prestart", "createRuntime"):
        assert read(hookdir, k + ".mnt") == ns("self", "mnt")
        assert read(hookdir, k + ".net") == ns("self", "net")
    # createContainer: the container's mount (and network) namespace
    assert read(hookdir, "createContainer.mnt") == ns(init, "mnt")
    assert read(hookdir, "createContainer.net") == ns(init, "net")
    rt.ok("start", cid)
    # the hook's shell creates the file before readlink's line is in it: wait for the line
    assert util.wait_for(lambda: os.path.exists(os.path.join(hookdir, "startContainer.mnt"))
                         and read(hookdir, "startContainer.mnt").endswith("\n"))
    # startContainer: in the container
    assert read(hookdir, "startContainer.mnt") == ns(init, "mnt")


def test_args_and_env_exact(rt, make_bundle, cid, pyrt_tmp):
    out = os.path.join(pyrt_tmp, "out")
    b = make_bundle(["true"])
    script = 'tr "\\0" " " < /proc/$$/cmdline > %s; echo "|$FOO|$LEAK|" >> %s' % (out, out)
    b.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "args": ["my-argv0", "-c", script, "zero"], "env": ["FOO=bar baz"]}]}
    b.save()
    rt.ok("create", "--bundle", b.path, cid, env={"LEAK": "from-runtime"})
    with open(out) as f:
        assert f.read() == "my-argv0 -c %s zero |bar baz||\n" % script


@pytest.mark.parametrize("lc_all", [None, "", "de_DE.UTF-8"])
def test_hook_without_env_gets_the_callers_locale(rt, make_bundle, cid, pyrt_tmp, lc_all):
    # The launcher starts the interpreter in the C locale (launcher.c); a hook without
    # env gets the runtime's environment, which must be the caller's, in C as in Python.
    outs = {k: os.path.join(pyrt_tmp, k) for k in ("createRuntime", "startContainer")}
    b = make_bundle(["true"])
    b.config["mounts"].append({"destination": "/out", "type": "bind", "source": pyrt_tmp,
                               "options": ["rbind", "rw"]})
    b.config["hooks"] = {
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "env > " + outs["createRuntime"]]}],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "env > /out/startContainer"]}]}
    b.save()
    env = dict(os.environ, LANG="C.UTF-8", LC_CTYPE="C.UTF-8")
    env.pop("LC_ALL", None)
    if lc_all is not None:
        env["LC_ALL"] = lc_all
    p = subprocess.run(rt.cmd + ["--root", rt.root, "run", "--bundle", b.path, cid], env=env,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    for kind, path in outs.items():
        with open(path) as f:
            seen = dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)
        assert "PYRT_LC_ALL" not in seen, kind
        if kind == "startContainer":
            # runc runs it from its init, whose environment it has emptied
            assert seen.get("LC_ALL") in (lc_all, None), kind
            continue
        assert seen.get("LC_ALL") == lc_all, kind
        assert seen.get("LANG") == "C.UTF-8" and seen.get("LC_CTYPE") == "C.UTF-8", kind


@pytest.mark.guest
@pytest.mark.guest_systemd
@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create(rt, make_bundle, cid, hookdir, kind):
    b = with_hooks(make_bundle, hookdir, **{kind: [{"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"]}]})
    r = rt.run("create", "--bundle", b.path, cid)
    assert r.returncode == 1
    assert "error running hook #0" in r.stderr and "boom" in r.stderr
    assert "exit status 3" in r.stderr
    assert cid not in rt.container_ids()


def test_missing_hook_binary(rt, make_bundle, cid, hookdir):
    b = with_hooks(make_bundle, hookdir, createRuntime=[{"path": "/nonexistent-hook"}])
    r = rt.run("create", "--bundle", b.path, cid)
    assert r.returncode == 1
    assert "error running hook #0" in r.stderr and "no such file or directory" in r.stderr


def test_timeout_kills_hook(rt, make_bundle, cid, pyrt_tmp):
    marker = os.path.join(pyrt_tmp, "survived")
    b = make_bundle(["true"])
    b.config["hooks"] = {"createRuntime": [{
        "path": "/bin/sh", "args": ["sh", "-c", "sleep 5; touch %s" % marker], "timeout": 1}]}
    b.save()
    r = rt.run("create", "--bundle", b.path, cid)
    assert r.returncode == 1
    assert "timeout" in r.stderr
    assert cid not in rt.container_ids()
    # the hook is gone (killed), not merely abandoned
    assert not util.wait_for(lambda: os.path.exists(marker), timeout=6)


def test_failing_hook_stops_before_later_hooks(rt, make_bundle, cid, hookdir):
    host = os.path.join(hookdir, "rec.sh")
    b = with_hooks(make_bundle, hookdir, createRuntime=[hook(host, "first", 4), hook(host, "second")],
                   createContainer=[hook(host, "createContainer")])
    assert rt.run("create", "--bundle", b.path, cid).returncode == 1
    assert read(hookdir, "order").split() == ["first"]


def test_poststart_failure_is_a_warning(rt, make_bundle, cid, hookdir):
    # the spec (and runtime-tools' poststart_fail): warn, run the remaining hooks, and the
    # lifecycle continues; never a half-dead container
    if not rt.is_pyruntime:
        pytest.skip("runc 1.1.5 runs poststart hooks at create")
    host = os.path.join(hookdir, "rec.sh")
    b = with_hooks(make_bundle, hookdir, args=["sleep", "1000"],
                   poststart=[hook(host, "bad", 2), hook(host, "good")])
    rt.ok("create", "--bundle", b.path, cid)
    r = rt.ok("start", cid)
    assert "level=warning" in r.stderr and "error running hook #0" in r.stderr
    assert read(hookdir, "order").split() == ["bad", "good"]
    assert rt.state(cid)["status"] == "running"
    rt.ok("delete", "--force", cid)


def test_start_container_failure(rt, make_bundle, cid, hookdir):
    b = with_hooks(make_bundle, hookdir, startContainer=[
        {"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 5"]}])
    r = rt.run("run", "--bundle", b.path, cid)
    assert r.returncode != 0
    assert "error running hook #0" in r.stderr and "nope" in r.stderr
    assert not os.path.exists(os.path.join(hookdir, "order"))  # the process never ran


def test_poststop_failure_is_a_warning(rt, make_bundle, cid, hookdir):
    host = os.path.join(hookdir, "rec.sh")
    b = with_hooks(make_bundle, hookdir, poststop=[hook(host, "bad", 2), hook(host, "good")])
    rt.ok("create", "--bundle", b.path, cid)
    r = rt.ok("delete", "--force", cid)
    if rt.is_pyruntime:
        # the spec: a warning, and the remaining hooks still run (runc 1.1.5 stops)
        assert read(hookdir, "order").split() == ["bad", "good"]
        assert "level=warning" in r.stderr and "error running hook #0" in r.stderr


NET_HOOK = r"""
import json, subprocess, sys
me = json.load(sys.stdin)["pid"]
peer = sys.argv[1]
def run(*a):
    subprocess.run(a, check=True)
run("ip", "link", "add", "name", "pyrtA", "netns", peer, "type", "veth", "peer", "name", "pyrtB", "netns", str(me))
for pid, dev, addr in ((peer, "pyrtA", "10.231.7.1/24"), (str(me), "pyrtB", "10.231.7.2/24")):
    run("nsenter", "-t", str(pid), "-n", "ip", "addr", "add", addr, "dev", dev)
    run("nsenter", "-t", str(pid), "-n", "ip", "link", "set", dev, "up")
"""


def test_cni_style_create_runtime_hook_wires_two_containers(rt, make_bundle, cid):
    for tool in ("ip", "nsenter"):
        if not any(os.access(os.path.join(p, tool), os.X_OK) for p in os.environ["PATH"].split(":")):
            pytest.skip("%s not installed" % tool)
    a = make_bundle(["sleep", "1000"])
    rt.ok("run", "-d", "--bundle", a.path, cid + "-a")
    peer = rt.state(cid + "-a")["pid"]
    b = make_bundle(["sleep", "1000"])
    b.config["hooks"] = {"createRuntime": [{
        "path": sys.executable, "args": [sys.executable, "-c", NET_HOOK, str(peer)],
        "env": ["PATH=" + os.environ["PATH"]]}]}
    b.save()
    rt.ok("run", "-d", "--bundle", b.path, cid + "-b")
    r = rt.run("exec", "-c", "CAP_NET_RAW", cid + "-b", "ping", "-c", "1", "-W", "5", "10.231.7.1")
    assert r.returncode == 0, r.stdout + r.stderr
    r = rt.run("exec", "-c", "CAP_NET_RAW", cid + "-a", "ping", "-c", "1", "-W", "5", "10.231.7.2")
    assert r.returncode == 0, r.stdout + r.stderr
    host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
    assert "10.231.7." not in host and "pyrtA" not in host and "pyrtB" not in host


def test_runtime_hooks_run_from_the_bundle(rt, make_bundle, cid, hookdir):
    # runc chdirs into the bundle, so its hooks start there; ours are exec'd by the C
    # executor with the bundle as cwd. The runtime itself runs from elsewhere here.
    script = os.path.join(hookdir, "pwd.sh")
    with open(script, "w") as f:
        f.write('#!/bin/sh\npwd > "$(dirname "$0")/$1.pwd"\n')
    os.chmod(script, 0o755)
    kinds = ("prestart", "createRuntime", "poststart", "poststop")
    b = with_hooks(make_bundle, hookdir, args=["true"],
                   **{k: [{"path": script, "args": [script, k]}] for k in kinds})
    rt.ok("run", "--bundle", b.path, cid, cwd="/")
    for k in kinds:
        assert read(hookdir, k + ".pwd").strip() == os.path.realpath(b.path), k


# --- one hook runner: the init's (startContainer) and the runtime's give one message ------

# the hook prints, leaves a child behind that would mark its survival, then fails or hangs
SHAPE_HOOK = ("(sleep 3; touch {d}/survived) </dev/null >/dev/null 2>&1 & "
              "echo out; echo err >&2; {tail}")


def _hook_message(rt, stderr):
    """-> (prefix, rest): the hook's message as the runtime reports it, split after
    "error running hook #N: <what>: " (runc 1.1.5's <what>: "error running hook")."""
    at = stderr.find("error running hook #")
    assert at >= 0, stderr
    # the runtime's line is quoted (--log format); the init's own is followed by warnings
    msg = stderr[at:].split('"\n')[0].split("\ntime=")[0].replace("\\n", "\n")
    msg = msg.rstrip('"\n')
    sep = "hook /bin/sh: " if rt.is_pyruntime else "error running hook: "
    if sep in msg:
        cut = msg.index(sep) + len(sep)
    else:  # runc's timeout message has no <what>
        cut = len("error running hook #0: ")
    return msg[:cut], msg[cut:]


@pytest.mark.parametrize("mode", ["fail", "timeout"])
@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer",
                                  "startContainer"])
def test_hook_failure_same_shape_and_children_killed(rt, make_bundle, cid, hookdir, kind, mode):
    # createContainer: run by the runtime in the container's namespaces (the stub's
    # pyrt_setns_run), its timeout and group kill across the join
    inside = kind in ("startContainer", "createContainer")
    tail = "exit 3" if mode == "fail" else "exec sleep 30"
    h = {"path": "/bin/sh", "args": ["sh", "-c", SHAPE_HOOK.format(
        d="/out" if kind == "startContainer" else hookdir, tail=tail)]}
    if mode == "timeout":
        h["timeout"] = 1
    b = with_hooks(make_bundle, hookdir, **{kind: [h]})
    if inside:
        # no pid namespace: the init's end would otherwise take the hook's child along
        b.config["linux"]["namespaces"] = [n for n in b.config["linux"]["namespaces"]
                                           if n["type"] != "pid"]
        b.save()
    r = rt.run("run", "--bundle", b.path, cid, timeout=30)
    assert r.returncode != 0
    assert not os.path.exists(os.path.join(hookdir, "order"))  # the process never ran
    prefix, rest = _hook_message(rt, r.stderr)
    if rt.is_pyruntime:
        assert prefix == "error running hook #0: %s hook /bin/sh: " % kind, r.stderr
    if mode == "fail":
        assert rest == "exit status 3, stdout: out\n, stderr: err", r.stderr
    else:
        assert rest == "hook ran past specified timeout of 1.0s", r.stderr
    survived = lambda: os.path.exists(os.path.join(hookdir, "survived"))
    if rt.is_pyruntime:
        # a failed hook's process group goes with it: nothing it started lives on
        assert not util.wait_for(survived, timeout=4)
    else:
        util.wait_for(survived, timeout=5)  # runc 1.1.5 leaves the child: let it end
