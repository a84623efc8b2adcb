"""pyruntime.oslite / oslite_path stand in for `os` and `os.path` on every command: each
helper must give what the real one gives, including where paths are odd or hostile."""
import os
import posixpath
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as hst

from pyruntime import oslite, oslite_path as lp

_PART = hst.sampled_from(["", "/", "//", "///", ".", "..", "a", "b.c", "..a", "a..", " ",
                          "x/", "/y", "é", "\udcff", "a/./b", "../..", "c//d"])
_PATH = hst.lists(_PART, max_size=6).map("".join)


@settings(max_examples=3000, deadline=None)
@given(_PATH, hst.lists(_PATH, max_size=4))
def test_lexical_helpers_match_posixpath(p, more):
    assert lp.join(p, *more) == posixpath.join(p, *more)
    assert lp.split(p) == posixpath.split(p)
    assert lp.dirname(p) == posixpath.dirname(p)
    assert lp.basename(p) == posixpath.basename(p)
    assert lp.isabs(p) == posixpath.isabs(p)
    assert lp.normpath(p) == posixpath.normpath(p)
    assert lp.abspath(p) == posixpath.abspath(p)
    for start in more[:2] + [None]:
        if p:
            assert lp.relpath(p, start) == posixpath.relpath(p, start), (p, start)


def test_other_types_are_posixpaths():
    assert lp.join(b"/a", b"b") == b"/a/b"
    assert lp.normpath(b"/a/../b") == b"/b"
    with pytest.raises(TypeError):
        lp.join("/a", b"b")
    with pytest.raises(ValueError):
        lp.relpath("")
    assert lp.expanduser is posixpath.expanduser   # not reimplemented: posixpath's own


@pytest.fixture
def tree(tmp_path):
    t = tmp_path
    (t / "d" / "e").mkdir(parents=True)
    (t / "d" / "f").write_text("x")
    os.symlink("d", t / "ld")                    # relative link to a dir
    os.symlink(str(t / "d" / "f"), t / "lf")     # absolute link to a file
    os.symlink("nowhere", t / "dangling")
    os.symlink("loop2", t / "loop1")
    os.symlink("loop1", t / "loop2")
    os.symlink("../d/e", t / "d" / "up")         # .. inside a link
    os.symlink("/proc/self/root", t / "magic")
    os.mkfifo(t / "fifo")
    return t


def _cases(t):
    s = str(t)
    return [s, s + "/", s + "/d", s + "/d/", s + "/d/f", s + "/d/f/", s + "/ld", s + "/ld/e",
            s + "/ld/../d", s + "/lf", s + "/dangling", s + "/dangling/x", s + "/loop1",
            s + "/d/up", s + "/d/up/..", s + "/missing", s + "/missing/../d", s + "/fifo",
            s + "/magic", "/", "", ".", "..", "d", "ld/e", "a\0b", "/proc/self",
            "/proc/self/fd/0", s + "/./d//e/."]


def test_file_tests_match_os_path(tree):
    os.chdir(tree)
    for p in _cases(tree):
        for name in ("exists", "isdir", "isfile", "islink", "lexists"):
            assert getattr(lp, name)(p) == getattr(os.path, name)(p), (name, p)


def test_realpath_matches_os_path(tree):
    os.chdir(tree)
    for p in _cases(tree):
        if "\0" in p:
            with pytest.raises(ValueError):
                os.path.realpath(p)
            with pytest.raises(ValueError):
                lp.realpath(p)
            continue
        if p == "/proc/self/fd/0":
            continue   # whatever stdin is: posixpath reads the magic link's text
        assert lp.realpath(p) == os.path.realpath(p), p


def test_realpath_is_the_kernels_resolution(tree):
    # a path reaching a dir by a symlink never compares equal to itself: the check
    # config.py makes of the rootfs
    assert lp.realpath(str(tree / "ld" / "e")) == str(tree / "d" / "e")
    assert lp.realpath(str(tree / "d" / "e")) == str(tree / "d" / "e")


def test_walk_matches_os_walk(tree):
    (tree / "d" / "e" / "g").mkdir()
    (tree / "d" / "e" / "g" / "h").write_text("")
    os.symlink(str(tree / "d"), tree / "d" / "e" / "back")   # a dir link: listed, not entered
    for top in (str(tree), str(tree / "d"), str(tree / "missing"), str(tree / "d" / "f")):
        for topdown in (True, False):
            mine = [(d, sorted(ds), sorted(fs)) for d, ds, fs in oslite.walk(top, topdown=topdown)]
            real = [(d, sorted(ds), sorted(fs)) for d, ds, fs in os.walk(top, topdown=topdown)]
            assert sorted(mine) == sorted(real)
            if not topdown:
                # children before their parent, as os.walk gives them
                seen = [d for d, _ds, _fs in mine]
                for i, d in enumerate(seen):
                    assert not any(x.startswith(d + "/") for x in seen[i + 1:]), seen


def test_walk_topdown_obeys_pruning(tree):
    out = []
    for d, ds, _fs in oslite.walk(str(tree)):
        out.append(d)
        ds[:] = [x for x in ds if x != "d"]
    assert str(tree / "d") not in out and str(tree) in out


def test_fsencode_matches_os():
    for s in ("plain", "é", "\udcff\udc80", b"bytes"):
        assert oslite.fsencode(s) == os.fsencode(s)
        assert oslite.fsdecode(oslite.fsencode(s)) == os.fsdecode(os.fsencode(s))


def test_makedirs_matches_os(tmp_path):
    for lite in (False, True):
        mk = oslite.makedirs if lite else os.makedirs
        base = tmp_path / str(lite)
        mk(str(base / "a" / "b" / "c"), 0o700)
        assert oct((base / "a" / "b" / "c").stat().st_mode & 0o777) == "0o700"
        mk(str(base / "a" / "b" / "c"), exist_ok=True)
        mk(str(base / "x" / "." / "y") + "/", exist_ok=False)
        with pytest.raises(FileExistsError):
            mk(str(base / "a" / "b"))
        (base / "f").write_text("")
        with pytest.raises(FileExistsError):
            mk(str(base / "f"), exist_ok=True)   # a file, not a dir, is in the way
        with pytest.raises(NotADirectoryError):
            mk(str(base / "f" / "g"))
    assert sorted(str(p.relative_to(tmp_path / "True")) for p in (tmp_path / "True").rglob("*")) \
        == sorted(str(p.relative_to(tmp_path / "False")) for p in (tmp_path / "False").rglob("*"))


def test_names_not_here_are_the_real_os():
    assert oslite.get_exec_path is os.get_exec_path
    assert oslite.open is os.open and oslite.WNOHANG == os.WNOHANG
    assert oslite.SEEK_SET == os.SEEK_SET and oslite.SEEK_END == os.SEEK_END


_ENV_PROBE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pyruntime import oslite
import posix
assert "os" not in sys.modules
env = oslite.environ
assert env.get("PROBE_KEEP") == "k\udcff"           # undecodable bytes survive, as in os
env["PROBE_NEW"] = "n"
assert env.pop("PROBE_GONE") == "g"
assert env.pop("PROBE_GONE", None) is None
try:
    env.pop("PROBE_GONE")
    raise SystemExit("pop of a missing key without a default must raise")
except KeyError:
    pass
try:
    env["PROBE_BAD"] = 1
    raise SystemExit("a non-str value must be refused")
except TypeError:
    pass
assert posix.environ[b"PROBE_NEW"] == b"n" and b"PROBE_GONE" not in posix.environ
assert "os" not in sys.modules
import os                                         # a cold path imports the real os now
assert os.environ["PROBE_NEW"] == "n" and "PROBE_GONE" not in os.environ
os.environ["PROBE_LATE"] = "l"                    # one truth from here on
assert env["PROBE_LATE"] == "l" and "PROBE_LATE" in env
env["PROBE_LATER"] = "m"
assert os.environ["PROBE_LATER"] == "m"
del env["PROBE_NEW"]
assert "PROBE_NEW" not in os.environ
assert dict(env.items()) == dict(os.environ)
# what a child is given is what the mapping says
os.execv("/bin/sh", ["sh", "-c", 'echo "$PROBE_LATE$PROBE_LATER${PROBE_GONE-none}"'])
"""


def test_environ_changes_reach_posix_the_real_os_and_children(tmp_path):
    pkg_parent = os.path.dirname(os.path.dirname(oslite.__file__))
    env = {"PROBE_GONE": "g", "PATH": "/usr/bin:/bin"}
    env_b = {k.encode(): v.encode() for k, v in env.items()}
    env_b[b"PROBE_KEEP"] = b"k\xff"
    p = subprocess.run([sys.executable, "-IS", "-c", _ENV_PROBE, pkg_parent], env=env_b,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "lmnone\n"
