"""Hostile and broken input: fuzzed config.json documents, garbage state files, malformed
exec process files, huge values, NUL bytes, deep nesting.

The rule for all of them: exit 0 (valid input; the container is then deleted) or exit 1
with one line on stderr, never a Python traceback or an "internal error", never a hang,
and nothing left behind (state dir, cgroup, process).

PYRT_FUZZ_N sets the number of fuzzed configs (default 150, about 40 s).
"""
import copy
import json
import os
import subprocess
import tempfile

import pytest

import util
from conftest import default_config

try:
    from hypothesis import HealthCheck, given, settings, strategies as st
except ImportError:  # pragma: no cover
    pytest.skip("hypothesis is not installed", allow_module_level=True)

FUZZ_N = int(os.environ.get("PYRT_FUZZ_N", "150"))
TIMEOUT = 30  # a create that takes this long is a hang

# Strings that break naive code. None names a host file that exists or could be
# harmful if a bug used it as a host path; random text never holds "/" (an absolute
# cgroupsPath could name a host cgroup).
HOSTILE_STRINGS = ["", "\x00", "a\x00b", "../../../../etc", "relative/path", "/" * 4097,
                   "x" * 5000, "/%s" % ("d/" * 2100), "bogus", "\udcff".encode(
                       "utf-8", "surrogatepass").decode("utf-8", "replace"), "💥", "-1",
                   "\n", "${HOME}", "%s%n"]
HOSTILE_INTS = [-1, 0, 1, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64, -2**63 - 1,
                10**30, -10**30]


def _deep(n):
    v = []
    for _ in range(n):
        v = [v]
    return v


def hostile_values():
    scalars = st.one_of(
        st.sampled_from(HOSTILE_STRINGS),
        st.text(alphabet=st.characters(blacklist_characters="/", blacklist_categories=("Cs",)),
                max_size=12),
        st.sampled_from(HOSTILE_INTS),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        st.booleans(),
        st.none(),
    )
    return st.one_of(
        scalars,
        st.lists(scalars, max_size=4),
        st.dictionaries(st.sampled_from(["a", "type", "path", "", "\x00"]), scalars, max_size=3),
        st.sampled_from([_deep(50), {"a": _deep(50)}]),
    )


# Keys worth adding (typed wrongly or hostile): they exist in the spec, the default lacks them.
EXTRA_KEYS = ["hooks", "annotations", "domainname", "uidMappings", "gidMappings",
              "devices", "sysctl", "cgroupsPath", "seccomp", "rlimits", "oomScoreAdj",
              "additionalGids", "umask", "consoleSize", "rootfsPropagation", "timeOffsets",
              "mountLabel", "resources", "memory", "pids", "cpu", "limit", "shares", "x-unknown"]

# Where a hostile *string* must not go: a rootfs path of "/" or one outside the bundle
# would make the test's own input point the runtime at host files (tested on purpose,
# with canaries, in test_hostile_rootfs.py).
NO_STRINGS = {("root", "path")}


def _walk(doc, data):
    """Draw a path into doc: a list of keys/indexes ending at any node."""
    path = []
    node = doc
    while isinstance(node, (dict, list)) and node and data.draw(st.integers(0, 3)) > 0:
        keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        k = data.draw(st.sampled_from(keys))
        path.append(k)
        node = node[k]
    return path


PLAUSIBLE_STRINGS = ["/tmp", "/x/y", "tmpfs", "bind", "rw", "ro", "nosuid", "rbind", "private",
                     "CAP_KILL", "CAP_SYS_ADMIN", "RLIMIT_NPROC", "user", "cgroup", "time",
                     "network", "uts", "/proc/self/ns/net", "a=b", "PATH=/bin", "/dev/null",
                     "size=1k", "mode=0700", "c", "b", "u", "rwm", "SCMP_ACT_ALLOW"]


def plausible_like(v):
    """A value of the same type as v: configs that are valid-ish, not just garbage."""
    if isinstance(v, bool):
        return st.booleans()
    if isinstance(v, int):
        return st.integers(0, 70000)
    if isinstance(v, str):
        return st.sampled_from(PLAUSIBLE_STRINGS)
    if isinstance(v, list):
        return st.just(v[1:] + v[:1] * 2) if v else st.just([])
    if isinstance(v, dict):
        return st.just({k: x for i, (k, x) in enumerate(v.items()) if i % 2 == 0})
    return st.none()


def mutate(doc, data):
    path = _walk(doc, data)
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    op = data.draw(st.sampled_from(["replace", "delete", "add", "plausible", "plausible"]))
    if op == "plausible" and path and tuple(path) not in NO_STRINGS:
        parent[path[-1]] = data.draw(plausible_like(parent[path[-1]]))
        return
    if op == "plausible":
        op = "replace"
    if not path:
        op = "add"
    if op == "add":
        target = parent[path[-1]] if path else doc
        if isinstance(target, dict):
            target[data.draw(st.sampled_from(EXTRA_KEYS))] = data.draw(hostile_values())
            return
        if isinstance(target, list):
            target.append(data.draw(hostile_values()))
            return
        op = "replace"
    if op == "delete":
        del parent[path[-1]]
        return
    v = data.draw(hostile_values())
    if tuple(path) in NO_STRINGS and isinstance(v, str):
        v = 7
    parent[path[-1]] = v


def call(rt, *args, timeout=TIMEOUT, env=None):
    argv = rt.cmd + ["--root", rt.root] + [str(a) for a in args]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                           timeout=timeout, start_new_session=True,
                           env=dict(os.environ, **(env or {})))
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, p.returncode, out.read().decode(errors="replace"),
                                           err.read().decode(errors="replace"))


def one_line_failure(p, rc=1):
    assert "Traceback" not in p.stderr, p.stderr
    assert "internal error" not in p.stderr, p.stderr
    assert p.returncode == rc, (p.returncode, p.stderr)
    lines = [x for x in p.stderr.splitlines() if x.strip() and "level=warning" not in x]
    assert len(lines) == 1, p.stderr


def live_under(rootfs):
    key = os.stat(rootfs)
    out = []
    for ent in os.listdir("/proc"):
        if ent.isdigit():
            try:
                s = os.stat("/proc/%s/root" % ent)
            except OSError:
                continue
            if (s.st_dev, s.st_ino) == (key.st_dev, key.st_ino) and util.pid_alive(int(ent)):
                out.append(int(ent))
    return out


def cgroup_dirs(cid):
    out = []
    for top in os.listdir("/sys/fs/cgroup"):
        for cur, dirs, _ in os.walk(os.path.join("/sys/fs/cgroup", top)):
            out += [os.path.join(cur, d) for d in dirs if cid in d]
    return out


@pytest.fixture
def fuzz_env(pyrt_tmp):
    # validation cache of this test only: fuzzed configs must not fill the host's
    return {"PYRUNTIME_CACHE_DIR": os.path.join(pyrt_tmp, "cache")}


def test_fuzz_create(rt, make_bundle, pyrt_ctx, pyrt_counts, fuzz_env):
    if not rt.is_pyruntime:
        pytest.skip("fuzzing holds pyruntime to one-line errors")
    b = make_bundle(["/bin/true"])
    base = default_config(["/bin/true"])
    outcome = {"accepted": 0, "rejected": 0}
    seq = [0]

    @settings(max_examples=FUZZ_N, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def run(data):
        doc = copy.deepcopy(base)
        for _ in range(data.draw(st.integers(1, 4))):
            mutate(doc, data)
        text = json.dumps(doc)
        with open(b.config_path, "w") as f:
            f.write(text)
        seq[0] += 1
        cid = "pyrt-fuzz-%d" % seq[0]
        pyrt_ctx.ids.add(cid)
        p = call(rt, "create", "--bundle", b.path, cid, env=fuzz_env)
        assert "Traceback" not in p.stderr, (text[:2000], p.stderr)
        if p.returncode == 0:
            outcome["accepted"] += 1
            s = call(rt, "state", cid)
            assert s.returncode == 0 and json.loads(s.stdout)["status"] == "created", s.stderr
            d = call(rt, "delete", "--force", cid)
            assert d.returncode == 0, d.stderr
        else:
            outcome["rejected"] += 1
            try:
                one_line_failure(p)
            except AssertionError as e:
                raise AssertionError("config %s\n%s" % (text[:3000], e))
        assert not os.path.exists(os.path.join(rt.root, cid)), text[:2000]
        assert util.wait_for(lambda: not live_under(b.rootfs), 5), text[:2000]
        assert cgroup_dirs(cid) == [], text[:2000]

    run()
    pyrt_counts["configs fuzzed"] = "%d (%d accepted, %d rejected)" % (
        seq[0], outcome["accepted"], outcome["rejected"])


# ---- whole documents that are not configs ------------------------------------------------

DOCS = {
    "deep-list": "[" * 100000 + "]" * 100000,
    "deep-in-config": None,  # built below: deep nesting inside a valid config
    "deep-truncated": "{\"a\":" * 50000,
    "nul": "{\"ociVersion\": \"1.0.2\"\x00}",
    "binary": "\xff\xfe\x00garbage",
    "huge-int": '{"ociVersion": "1.0.2", "process": {"user": {"uid": %s}}}' % ("9" * 5000),
    "huge-float": '{"ociVersion": 1e999}',
    "nan": '{"ociVersion": NaN}',
    "dup-keys": '{"ociVersion": "1.0.2", "ociVersion": 5}',
    "utf16": '\ufeff{"ociVersion": "1.0.2"}',
    "lone-surrogate": '{"ociVersion": "\\udc00"}',
}


@pytest.mark.parametrize("name", sorted(DOCS))
def test_hostile_document(rt, make_bundle, cid, name, pyrt_counts, fuzz_env):
    b = make_bundle(["/bin/true"])
    text = DOCS[name]
    if name == "deep-in-config":
        cfg = default_config(["/bin/true"])
        text = json.dumps(cfg)[:-1] + ', "x-deep": ' + "[" * 100000 + "]" * 100000 + "}"
    with open(b.config_path, "w", encoding="utf-8", errors="surrogatepass") as f:
        f.write(text)
    p = call(rt, "create", "--bundle", b.path, cid, env=fuzz_env)
    if p.returncode == 0:
        # deep nesting under an unknown key is ignorable; the container must then work
        assert name == "deep-in-config", p.stderr
        rt.ok("delete", "--force", cid)
    else:
        if rt.is_pyruntime:
            one_line_failure(p)
        assert "Traceback" not in p.stderr
    assert not os.path.exists(os.path.join(rt.root, cid))
    pyrt_counts["hostile documents"] = pyrt_counts.get("hostile documents", 0) + 1


# ---- state files that are not state ------------------------------------------------------

STATE_GARBAGE = {
    "empty": b"",
    "truncated": None,   # the real file cut in half
    "not-json": b"\x00\xff garbage",
    "list": b"[]",
    "null": b"null",
    "string": b'"created"',
    "wrong-types": json.dumps({"status": 5, "pid": "x", "start_time": [], "cgroup": "zz",
                               "bundle": 7, "created": {}, "annotations": []}).encode(),
    "pid-negative": None,   # pid -1: kill(-1) would signal every process
    "pid-one": None,        # pid 1: the host init
    "pid-huge": None,
    "cgroup-dotdot": None,  # a cgroup record escaping with ".." (into a bait cgroup)
    "cgroup-foreign": None,  # a cgroup record naming another cgroup (the bait)
    "deep": b"[" * 100000 + b"]" * 100000,
    "dir": None,  # state.json is a directory
}

PIDS_ROOT = "/sys/fs/cgroup/pids"


@pytest.fixture
def bait_cgroup():
    """A cgroup of the test's own with a process in it: a damaged cgroup record points
    here, never at a host cgroup, so a runtime that follows it kills only the bait."""
    if not os.path.isdir(PIDS_ROOT):
        pytest.skip("no v1 pids hierarchy")
    path = os.path.join(PIDS_ROOT, "pyrt-bait-" + os.urandom(3).hex())
    with util.cgroup_with_a_process(path) as proc:
        yield path, proc


def _remove_cgroups_of(cid):
    # the damaged record no longer leads to the container's cgroups: the test removes them
    # (empty: the init was killed first)
    for d in sorted(cgroup_dirs(cid), key=lambda p: -p.count("/")):
        util.wait_for(lambda: util.rmdir_gone(d), 5)


@pytest.mark.parametrize("name", sorted(STATE_GARBAGE))
def test_garbage_state_file(rt, make_bundle, cid, name, pyrt_counts, bait_cgroup):
    """state/list/kill/start/delete on a damaged state.json: no traceback, nothing
    dangerous done (no signal to pid 1, -1 or a foreign cgroup), and `delete --force`
    frees the id."""
    bait, bait_proc = bait_cgroup
    b = make_bundle(["/bin/sleep", "1000"])
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    real = rt.state(cid)
    path = os.path.join(rt.root, cid, "state.json")
    with open(path, "rb") as f:
        orig = f.read()
    data = json.loads(orig)
    content = STATE_GARBAGE[name]
    if name == "truncated":
        content = orig[:len(orig) // 2]
    elif name == "pid-negative":
        data["pid"] = -1
    elif name == "pid-one":
        data["pid"] = 1
        data["start_time"] = util.start_time(1)
    elif name == "pid-huge":
        data["pid"] = 2**70
    elif name.startswith("cgroup-"):
        cg = data.get("cgroup")
        if not isinstance(cg, dict):
            pytest.skip("no cgroup record in state.json")
        leaf = (os.path.join(PIDS_ROOT, cid, "..", os.path.basename(bait))
                if name == "cgroup-dotdot" else bait)
        cg.update(paths={"pids": leaf}, mounts={"pids": PIDS_ROOT}, created=[leaf],
                  skipped=[])
    if content is None and name != "dir":
        content = json.dumps(data).encode()
    # kill the real init first: the damaged record may no longer lead to it
    os.kill(real["pid"], 9)
    assert util.wait_for(lambda: not util.pid_alive(real["pid"]), 5)
    if name == "dir":
        os.unlink(path)
        os.mkdir(path)
    else:
        with open(path, "wb") as f:
            f.write(content)
    try:
        for args in (("state", cid), ("list",), ("list", "--format", "json"),
                     ("kill", cid, "0"), ("kill", "--all", cid, "KILL"), ("start", cid),
                     ("ps", cid), ("events", "--stats", cid), ("pause", cid),
                     ("resume", cid), ("delete", cid)):
            p = call(rt, *args)
            assert "Traceback" not in p.stderr, (args, p.stderr)
            assert "internal error" not in p.stderr, (args, p.stderr)
            assert p.returncode in (0, 1, 255), (args, p.returncode, p.stderr)
            if args[0] == "state" and p.returncode == 0:
                s = json.loads(p.stdout)
                assert s["status"] == "stopped" and s["pid"] == 0, s
            assert bait_proc.poll() is None, "%s killed a process of a foreign cgroup" % (args,)
        p = call(rt, "delete", "--force", cid)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        assert bait_proc.poll() is None, "delete --force killed a process of a foreign cgroup"
        assert os.path.isdir(bait)
        assert not os.path.exists(os.path.join(rt.root, cid))
    finally:
        _remove_cgroups_of(cid)
    # the id is usable again
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    rt.ok("delete", "--force", cid)
    pyrt_counts["garbage state files"] = pyrt_counts.get("garbage state files", 0) + 1


# ---- exec process files ----------------------------------------------------------------

PROCESS_GARBAGE = {
    "empty": "",
    "not-json": "{bad",
    "list": "[]",
    "null": "null",
    "no-args": json.dumps({"cwd": "/"}),
    "args-not-list": json.dumps({"args": "/bin/true", "cwd": "/"}),
    "args-ints": json.dumps({"args": [1, 2], "cwd": "/"}),
    "args-nul": json.dumps({"args": ["/bin/true\x00x"], "cwd": "/"}),
    "env-nul": json.dumps({"args": ["/bin/true"], "cwd": "/", "env": ["A=\x00"]}),
    "huge-uid": json.dumps({"args": ["/bin/true"], "cwd": "/", "user": {"uid": 2**64, "gid": 0}}),
    "neg-uid": json.dumps({"args": ["/bin/true"], "cwd": "/", "user": {"uid": -5, "gid": 0}}),
    "relative-cwd": json.dumps({"args": ["/bin/true"], "cwd": "tmp"}),
    "user-string": json.dumps({"args": ["/bin/true"], "cwd": "/", "user": "root"}),
    "caps-bogus": json.dumps({"args": ["/bin/true"], "cwd": "/",
                              "capabilities": {"bounding": ["CAP_BOGUS"]}}),
    "rlimit-huge": json.dumps({"args": ["/bin/true"], "cwd": "/",
                               "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 2**65, "soft": 1}]}),
    "deep": "[" * 100000 + "]" * 100000,
    "console-size-bad": json.dumps({"args": ["/bin/true"], "cwd": "/", "terminal": False,
                                    "consoleSize": {"height": -1, "width": "x"}}),
}


# accepted by runc too: unknown capabilities are a warning
PROCESS_ACCEPTED = {"caps-bogus"}
# pyruntime/execproc.py does not check these yet (runc rejects them when decoding)
@pytest.mark.parametrize("name", sorted(PROCESS_GARBAGE))
def test_malformed_exec_process(rt, make_bundle, cid, pyrt_tmp, name, pyrt_counts, request):
    b = make_bundle(["/bin/sleep", "1000"])
    rt.ok("run", "--detach", "--bundle", b.path, cid)
    pfile = os.path.join(pyrt_tmp, "process.json")
    with open(pfile, "w") as f:
        f.write(PROCESS_GARBAGE[name])
    p = call(rt, "exec", "--process", pfile, cid)
    if name in PROCESS_ACCEPTED:
        assert p.returncode == 0, p.stderr
    elif not rt.is_pyruntime:
        assert p.returncode != 0
    else:
        assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
        assert p.returncode in (1, 255), (p.returncode, p.stderr)
        lines = [x for x in p.stderr.splitlines() if x.strip() and "level=warning" not in x]
        assert len(lines) == 1, p.stderr
    # the container is unharmed and no exec'd process lingers
    s = rt.state(cid)
    assert s["status"] == "running"
    assert util.children(s["pid"]) == []
    rt.ok("delete", "--force", cid)
    pyrt_counts["malformed exec process files"] = pyrt_counts.get(
        "malformed exec process files", 0) + 1
