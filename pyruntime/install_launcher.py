"""Write a fast `pyruntime` launcher: `python -m pyruntime.install_launcher DEST`.

pip's console-script wrapper starts Python with `site` (and, for an editable install, its
import hooks): about 15 ms of every container start. This launcher starts the same
interpreter isolated and without `site` (-IS) and puts exactly the two directories it
needs on sys.path, so environment variables (PYTHONPATH, PYTHONDONTWRITEBYTECODE, ...)
cannot change what runs or slow it down.
"""
import os
import sys


def launcher_text():
    import _cffi_backend
    import pyruntime
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(pyruntime.__file__)))
    deps = os.path.dirname(os.path.abspath(_cffi_backend.__file__))
    paths = [pkg_parent] + ([deps] if deps != pkg_parent else [])
    return ("#!%s -IS\n"
            "import sys\n"
            "sys.path[:0] = %r\n"
            "from pyruntime.cli import entry\n"
            "entry()\n" % (_interpreter(paths), paths))


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
    tmp = dest + ".tmp"
    with open(tmp, "w") as f:
        f.write(launcher_text())
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m pyruntime.install_launcher DEST")
    install(sys.argv[1])
