"""Write a fast `pyruntime` launcher: `python -m pyruntime.install_launcher DEST`.

pip's console-script wrapper starts Python with `site` (and, for an editable install, its
import hooks): about 15 ms of every container start. This launcher starts the same
interpreter isolated and without `site` (-IS) and puts exactly the two directories it
needs on sys.path, so environment variables (PYTHONPATH, PYTHONDONTWRITEBYTECODE, ...)
cannot change what runs or slow it down.

DEST becomes csrc/launcher.c compiled (it also starts the cgroup-migration warm-up for
create/run/exec before the interpreter does; see there) running DEST-entry, the Python
part, with the interpreter on its `#!` line. Without a C compiler DEST is that Python part
itself, a `#!` script.

This is for a development tree (setup.sh; an editable install's package is not in
site-packages, so the entry names the directories). `pip install` of the wheel or sdist
gets the same launcher from setup.py, with csrc/pyruntime-entry as its Python part.
"""
import os
import sys


def _paths():
    import _cffi_backend
    import pyruntime
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(pyruntime.__file__)))
    deps = os.path.dirname(os.path.abspath(_cffi_backend.__file__))
    return [pkg_parent] + ([deps] if deps != pkg_parent else [])


def launcher_text(python, paths):
    return ("#!%s -IS\n"
            "import sys\n"
            "sys.path[:0] = %r\n"
            "from pyruntime.cli import entry\n"
            "entry()\n" % (python, paths))


def _compile_launcher(out):
    """csrc/launcher.c; False without a compiler."""
    import subprocess
    import pyruntime
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(pyruntime.__file__))),
                       "csrc", "launcher.c")
    if not os.path.exists(src):
        return False
    import tempfile
    sys.path.insert(0, os.path.dirname(src))
    try:
        import muslcc   # a static musl launcher where musl-gcc is installed (csrc/muslcc.py)
    finally:
        sys.path.remove(os.path.dirname(src))
    with tempfile.TemporaryDirectory() as tmp:
        musl = muslcc.musl_gcc()
        tries = ([[musl] + muslcc.flags(tmp)] if musl else []) + [[os.environ.get("CC", "cc")]]
        for cc in tries:
            argv = cc[:1] + ["-O2", "-Wall", "-Werror"] + cc[1:] + ["-o", out, src]
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            except (OSError, subprocess.SubprocessError):
                continue
            if r.returncode == 0:
                return True
            sys.stderr.write("launcher: %s failed:\n%s" % (cc[0], r.stderr))
    sys.stderr.write("launcher: using a script launcher\n")
    return False


def _interpreter(paths):
    """The distribution's own python of the same version, when it can run us: Debian's is
    built without a shared libpython and starts ~1.5 ms sooner than a pyenv build, on
    every command. Otherwise the interpreter running this installer."""
    import subprocess
    cand = "/usr/bin/python%d.%d" % sys.version_info[:2]
    if os.path.realpath(cand) == os.path.realpath(sys.executable) or not os.access(cand, os.X_OK):
        return sys.executable
    probe = ("import sys; sys.path[:0] = %r; import pyruntime._executor, pyruntime.cli, jsonschema"
             % (paths,))
    try:
        ok = subprocess.run([cand, "-IS", "-c", probe], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    return cand if ok else sys.executable


def _record_commit(pkg_dir):
    import subprocess
    try:
        commit = subprocess.run(["git", "-C", pkg_dir, "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if commit:
        with open(os.path.join(pkg_dir, "_version_info.py"), "w") as f:
            f.write("COMMIT = %r\n" % commit)


def install(dest):
    import compileall
    import pyruntime
    _record_commit(os.path.dirname(os.path.abspath(pyruntime.__file__)))
    # bytecode once, here: the launcher never has to compile (or fail to write) it
    compileall.compile_dir(os.path.dirname(os.path.abspath(pyruntime.__file__)), quiet=1)
    paths = _paths()
    python = _interpreter(paths)
    # the launcher looks for its entry next to its own file, symlinks resolved
    dest = os.path.realpath(dest)
    entry = dest + "-entry"
    _write(entry, launcher_text(python, paths))
    tmp = dest + ".tmp"
    if _compile_launcher(tmp):
        os.replace(tmp, dest)
    else:
        _write(dest, launcher_text(python, paths))


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m pyruntime.install_launcher DEST")
    install(sys.argv[1])
