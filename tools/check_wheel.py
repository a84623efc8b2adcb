#!/usr/bin/env python3
"""Check a built wheel (and sdist) of pyruntime against the source tree.

    tools/check_wheel.py WHEEL [SDIST]

The wheel must hold every file of the package tree (modules of every subpackage, data
files), the cffi extension modules, the executables setup.py builds (EXECUTABLES) with
their executable bit, the `pyruntime` command as a compiled launcher and the scripts of
setup.py (SCRIPTS) as `#!python` scripts, and nothing from outside the package. The sdist
must hold everything a wheel is built from. One line per problem; exit status 1 if any.
"""
import glob
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_PRODUCTS = re.compile(r"(^|/)__pycache__/|\.(pyc|so|o|tmp)$|^pyruntime/_\w+\.c$")


def tracked(*dirs):
    """Files of the source tree under DIRS (repo-relative): git's list in a checkout,
    else (an unpacked sdist) what is on disk but build products."""
    try:
        out = subprocess.run(["git", "-C", REPO, "ls-files", "-z", "--"] + list(dirs),
                             capture_output=True, check=True, timeout=60).stdout
        files = [f for f in out.decode().split("\0") if f]
        # deleted in the work tree but not yet in git: not part of what is built
        return {f for f in files if os.path.isfile(os.path.join(REPO, f))}
    except (OSError, subprocess.SubprocessError):
        files = set()
        for d in dirs:
            for root, _dirs, names in os.walk(os.path.join(REPO, d)):
                for n in names:
                    files.add(os.path.relpath(os.path.join(root, n), REPO))
        return {f for f in files if not BUILD_PRODUCTS.search(f)}


def setup_py():
    """setup.py as a module: its EXECUTABLES and SCRIPTS (setup() runs only as __main__)."""
    spec = importlib.util.spec_from_file_location("pyrt_setup", os.path.join(REPO, "setup.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def extension_modules():
    """pyruntime._executor, ... : the set_source names of the cffi build scripts."""
    names = []
    for path in sorted(glob.glob(os.path.join(REPO, "csrc", "*_build.py"))):
        with open(path) as f:
            names += re.findall(r'set_source\(\s*"([\w.]+)"', f.read())
    return names


def check_wheel(path, setup):
    problems = []
    with zipfile.ZipFile(path) as z:
        infos = {i.filename: i for i in z.infolist()}

        def read(name, n=4):
            with z.open(name) as f:
                return f.read(n)

        def executable(name):
            return (infos[name].external_attr >> 16) & 0o111 == 0o111

        names = set(infos)
        data = {n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".data")}
        if len(data) != 1:
            return ["%s: expected one .data directory, found %s" % (path, sorted(data))]
        scripts = data.pop() + "/scripts/"

        for f in sorted(tracked("pyruntime")):
            if f not in names:
                problems.append("missing from the wheel: " + f)
        for mod in extension_modules():
            stem = mod.replace(".", "/")
            if not any(n.startswith(stem + ".") and n.endswith(".so") for n in names):
                problems.append("missing from the wheel: extension module %s (%s.*.so)"
                                % (mod, stem))
        expected_bins = []
        for where, name, _sources, _flags in setup.EXECUTABLES:
            expected_bins.append((scripts if where == "scripts" else "pyruntime/") + name)
        for name in expected_bins:
            if name not in names:
                problems.append("missing from the wheel: executable " + name)
            elif read(name) != b"\x7fELF" or not executable(name):
                problems.append("not an executable ELF file in the wheel: " + name)
        for s in setup.SCRIPTS:
            name = scripts + os.path.basename(s)
            if name not in names:
                problems.append("missing from the wheel: script " + name)
            elif not read(name, 64).startswith(b"#!python"):
                problems.append("no #!python line (for the installer to fix) in " + name)
        if scripts + "pyruntime" not in expected_bins:
            problems.append("the `pyruntime` command is not the compiled launcher")

        for n in sorted(names):
            top = n.split("/", 1)[0]
            if top == "pyruntime":
                if BUILD_PRODUCTS.search(n) and not n.endswith(".so"):
                    problems.append("build product in the wheel: " + n)
            elif not (n.startswith(scripts) or top.endswith(".dist-info")):
                problems.append("not part of the package, in the wheel: " + n)
    return problems


def check_sdist(path):
    with tarfile.open(path) as t:
        members = {m.name.split("/", 1)[1] for m in t.getmembers() if "/" in m.name}
    need = tracked("pyruntime", "csrc") | {"setup.py", "pyproject.toml", "MANIFEST.in",
                                             "README.md"}
    return ["missing from the sdist: " + f for f in sorted(need - members)]


def main(argv):
    if len(argv) not in (2, 3):
        sys.exit("usage: tools/check_wheel.py WHEEL [SDIST]")
    problems = check_wheel(argv[1], setup_py())
    if len(argv) == 3:
        problems += check_sdist(argv[2])
    for p in problems:
        print("check_wheel: " + p)
    if problems:
        return 1
    print("check_wheel: %s%s: complete" % (os.path.basename(argv[1]),
                                          " and " + os.path.basename(argv[2]) if len(argv) == 3 else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
