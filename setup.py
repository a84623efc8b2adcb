"""Build of what pyproject.toml cannot declare: the cffi extension modules, the `pyruntime`
command (the C launcher, csrc/launcher.c) and the commit the build came from."""
import os
import shlex
import sys
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist
# after setuptools: its own copy of distutils, also on Pythons without one
from distutils.command.build_scripts import build_scripts

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "csrc"))   # muslcc

# Executables compiled from csrc/ besides the cffi modules: (where, name, sources, cc flags);
# static musl programs where musl-gcc is installed (csrc/muslcc.py).
#   "scripts": a command in the environment's bin/ (a wheel's .data/scripts/);
#   "package": an executable file inside pyruntime/, next to the modules (built into
#              the source tree too for an editable install).
EXECUTABLES = [
    # runs bin/pyruntime-entry (csrc/pyruntime-entry below) with the interpreter named
    # on its #! line, which the installer writes: nothing install-specific is compiled in
    ("scripts", "pyruntime", ["csrc/launcher.c"], []),
    # the init stub: the executor as a static program, which every spawn execs from a
    # sealed memfd copy before anything enters a container (csrc/executor.c)
    ("package", "_pyrt_init", ["csrc/stub_main.c", "csrc/executor.c"],
     ["-static", "-Os", "-Wno-unused-result", "-ffunction-sections", "-fdata-sections",
      "-Wl,--gc-sections", "-s"]),
]
# Copied to bin/ as they are; the installer points a `#!python` line at its interpreter.
SCRIPTS = ["csrc/pyruntime-entry"]


def compile_executable(sources, out, flags=(), cc=None):
    """cc SOURCES -o OUT, replacing OUT only once the compiler succeeded."""
    cc = cc or shlex.split(os.environ.get("CC", "cc"))
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = out + ".tmp"
    subprocess.check_call(cc + ["-O2", "-Wall", *flags, "-o", tmp]
                          + [os.path.join(HERE, s) for s in sources])
    os.chmod(tmp, 0o755)
    os.replace(tmp, out)


def build_executable(sources, out, flags):
    """A static musl program where musl-gcc is installed, else cc's (csrc/muslcc.py)."""
    import tempfile
    import muslcc
    musl = muslcc.musl_gcc()
    if musl:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                compile_executable(sources, out, [f for f in flags if f != "-static"]
                                   + muslcc.flags(tmp), cc=[musl])
                return
            except subprocess.CalledProcessError:
                print("warning: %s did not build with musl-gcc; building it with cc" % out)
    compile_executable(sources, out, flags)


def git_commit():
    """HEAD of the git checkout this setup.py is the top of, else None (an sdist)."""
    try:
        top, head = subprocess.run(
            ["git", "-C", HERE, "rev-parse", "--show-toplevel", "HEAD"], capture_output=True,
            text=True, timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return head if os.path.realpath(top) == os.path.realpath(HERE) else None


def write_version_info(pkg_dir):
    # `pyruntime --version` reports it; a build from an sdist keeps the sdist's file
    commit = git_commit()
    if commit:
        with open(os.path.join(pkg_dir, "_version_info.py"), "w") as f:
            f.write("COMMIT = %r\n" % commit)


class BuildExt(build_ext):
    def run(self):
        super().run()
        in_tree = self.inplace or getattr(self, "editable_mode", False)
        for where, name, sources, flags in EXECUTABLES:
            if where == "package":
                out = os.path.join(self.build_lib, "pyruntime", name)
                build_executable(sources, out, flags)
                if in_tree:
                    self.copy_file(out, os.path.join(HERE, "pyruntime", name))


class BuildScripts(build_scripts):
    def run(self):
        super().run()
        for where, name, sources, flags in EXECUTABLES:
            if where == "scripts":
                build_executable(sources, os.path.join(self.build_dir, name), flags)


class BuildPy(build_py):
    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            write_version_info(os.path.join(self.build_lib, "pyruntime"))


class Sdist(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        info = os.path.join(base_dir, "pyruntime", "_version_info.py")
        if os.path.lexists(info):
            os.unlink(info)  # a hard link to the tree's file: never write through it
        write_version_info(os.path.dirname(info))


if __name__ == "__main__":
    setup(
        # The C executor and the libseccomp binding are separate extension modules so
        # that commands which never load a filter do not pay for importing it.
        cffi_modules=[
            "csrc/executor_build.py:ffibuilder",
            "csrc/seccomp_build.py:ffibuilder",
        ],
        scripts=SCRIPTS,
        cmdclass={"build_ext": BuildExt, "build_scripts": BuildScripts, "build_py": BuildPy,
                  "sdist": Sdist},
    )
