"""pyruntime as a user installs it: the sdist and the wheel built from it hold the whole
package (tools/check_wheel.py), and the wheel installed into a fresh venv outside the
checkout gives a `pyruntime` command that is the C launcher running that venv's
interpreter isolated, importing only from the venv. run-tests.sh's `wheel` stage then
runs the whole suite against such an install; this test keeps the check in every run.
"""
import os
import subprocess
import sys

import pytest

import util

def _run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=600, **kw)
    assert p.returncode == 0, "%s:\n%s%s" % (" ".join(argv), p.stdout[-3000:], p.stderr[-3000:])
    return p


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(sdist, wheel): the sdist from the checkout, then the wheel built by pip from that
    sdist, so a file missing from the sdist breaks the wheel's build."""
    out = tmp_path_factory.mktemp("dist")
    # no `build` frontend needed (helpers' venvs may lack it) and, without pip's build
    # isolation, no download: this venv has the build requirements
    _run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(out)], cwd=util.REPO)
    sdist = [str(p) for p in out.glob("pyruntime-*.tar.gz")]
    assert len(sdist) == 1, os.listdir(out)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "--disable-pip-version-check", "--wheel-dir", str(out), sdist[0]], cwd="/")
    wheel = [str(p) for p in out.glob("pyruntime-*.whl")]
    assert len(wheel) == 1, os.listdir(out)
    return sdist[0], wheel[0]


def test_sdist_and_wheel_hold_the_whole_package(dists):
    p = subprocess.run([sys.executable, os.path.join(util.REPO, "tools", "check_wheel.py"),
                        dists[1], dists[0]], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.endswith(": complete\n"), p.stdout


def test_check_wheel_finds_a_missing_module(dists, tmp_path):
    # the checker itself: a wheel without one subpackage module must not pass
    import zipfile
    bad = str(tmp_path / os.path.basename(dists[1]))
    with zipfile.ZipFile(dists[1]) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            if info.filename != "pyruntime/cli/cmd_state.py":
                dst.writestr(info, src.read(info))
    p = subprocess.run([sys.executable, os.path.join(util.REPO, "tools", "check_wheel.py"), bad],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert p.stdout == "check_wheel: missing from the wheel: pyruntime/cli/cmd_state.py\n"


@pytest.fixture(scope="module")
def venv(dists, tmp_path_factory):
    """A fresh venv outside the checkout with the wheel installed."""
    venv = str(tmp_path_factory.mktemp("venv"))
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", venv], cwd="/")
    # its dependencies come from the package index (or pip's cache), as for a user
    _run([venv + "/bin/pip", "install", "-q", "--disable-pip-version-check", dists[1]],
         cwd="/")
    return venv


def test_wheel_in_a_fresh_venv_gives_a_working_fast_command(venv, tmp_path):
    cmd = venv + "/bin/pyruntime"
    with open(cmd, "rb") as f:
        assert f.read(4) == b"\x7fELF"  # the C launcher, not pip's console-script wrapper
    with open(cmd + "-entry") as f:
        first = f.readline()
    # the installer named its interpreter: the venv's
    assert first.startswith("#!%s/bin/python" % venv) and " " not in first, first

    # -IS: nothing of the environment reaches the interpreter; a package shadowing ours on
    # PYTHONPATH (or in the cwd) is not imported
    evil = tmp_path / "evil"
    (evil / "pyruntime").mkdir(parents=True)
    (evil / "pyruntime" / "__init__.py").write_text("raise SystemExit('HIJACKED')\n")
    env = dict(os.environ, PYTHONPATH=str(evil), PYTHONHOME="/nonexistent",
               PYTHONSTARTUP=str(evil / "pyruntime" / "__init__.py"))
    head = _run(["git", "-C", util.REPO, "rev-parse", "HEAD"]).stdout.strip()
    for cwd in ("/", str(evil)):
        p = _run([cmd, "--version"], cwd=cwd, env=env)
        assert p.stdout.startswith("pyruntime version "), p.stdout
        assert "commit: %s\n" % head in p.stdout, p.stdout  # recorded by the sdist's build
        assert p.stderr == ""

    # every module from the venv's site-packages: the checkout is not needed
    p = _run([venv + "/bin/python", "-c", """if 1:
        import pyruntime, pyruntime.cli, pyruntime.cgroups, pyruntime._executor, pyruntime.schemacheck
        for m in (pyruntime, pyruntime.cli, pyruntime.cgroups, pyruntime._executor):
            print(m.__file__)
        """], cwd="/")
    site = venv + "/lib/python%d.%d/site-packages/pyruntime/" % sys.version_info[:2]
    files = p.stdout.split()
    assert len(files) == 4 and all(f.startswith(site) for f in files), p.stdout

    # a command with real work from the installed package: spec writes a config.json
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    _run([cmd, "spec"], cwd=str(spec_dir), env=env)
    assert (spec_dir / "config.json").stat().st_size > 0


def test_prefix_install_finds_its_package_and_the_dependencies_elsewhere(dists, venv, tmp_path):
    # pip install --prefix: the package under PREFIX/lib/pythonX.Y/site-packages, cffi and
    # jsonschema only in the venv whose python the entry names
    prefix = str(tmp_path / "prefix")
    _run([venv + "/bin/pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
          "--ignore-installed", "--prefix", prefix, dists[1]], cwd="/")
    p = _run([prefix + "/bin/pyruntime", "--version"], cwd="/")
    assert p.stdout.startswith("pyruntime version "), p.stdout
    assert "\nlibseccomp: " in p.stdout, p.stdout  # through cffi, from the venv
    p = _run([venv + "/bin/python", "-IS", prefix + "/bin/pyruntime-entry", "spec", "--help"])
    assert "pyruntime spec" in p.stdout


def _program_of(wheel, tmp_path, suffix):
    import zipfile
    with zipfile.ZipFile(wheel) as z:
        name = [n for n in z.namelist() if n.endswith(suffix)]
        assert len(name) == 1, (suffix, z.namelist())
        out = tmp_path / suffix.rsplit("/", 1)[1]
        out.write_bytes(z.read(name[0]))
    out.chmod(0o755)
    return out.read_bytes()


def test_the_wheels_programs_are_built_with_musl_where_it_is_installed(dists, tmp_path):
    # glibc's start-up probes the CPU caches with cpuid, which traps to the hypervisor
    # (~0.45 ms of CPU per process); the launcher runs for every command and the stub
    # once in every container process (csrc/muslcc.py)
    import shutil
    if not shutil.which("musl-gcc"):
        pytest.fail("musl-gcc is not installed: setup.sh installs musl-tools")
    for suffix in ("pyruntime/_pyrt_init", "scripts/pyruntime"):
        prog = _program_of(dists[1], tmp_path, suffix)
        assert prog[:4] == b"\x7fELF"
        assert b"GLIBC" not in prog and b"ld-linux" not in prog, suffix   # static, musl
        # glibc's wording compiled in (musl's own says "Symbolic link loop")
        assert b"Too many levels of symbolic links" in prog, suffix


def test_without_musl_the_programs_are_cc_builds(tmp_path):
    out = tmp_path / "glibc"
    env = dict(os.environ, PYRT_MUSL="0")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "--disable-pip-version-check", "--wheel-dir", str(out), util.REPO], cwd="/", env=env)
    wheel = [str(p) for p in out.glob("pyruntime-*.whl")]
    assert len(wheel) == 1, os.listdir(out)
    assert b"GLIBC" in _program_of(wheel[0], tmp_path, "pyruntime/_pyrt_init")
    assert b"ld-linux" in _program_of(wheel[0], tmp_path, "scripts/pyruntime")
    # run by hand, outside a spawn: the stub refuses (exit 127), it does not crash
    p = subprocess.run([str(tmp_path / "_pyrt_init")], capture_output=True, timeout=30)
    assert p.returncode == 127, p
