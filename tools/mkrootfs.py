#!/usr/bin/env python3
"""Build a minimal busybox-static rootfs (used by the tests, the benchmark and the demo).

    python tools/mkrootfs.py DIR        # or: from mkrootfs import build; build(DIR)

Layout: /bin/busybox (a copy of the host's static busybox) plus one symlink per applet
in /bin, /etc/{passwd,group,hostname}, and empty proc sys dev tmp (1777) root etc home.
Idempotent: re-running over an existing tree refreshes it.
"""
import os
import shutil
import subprocess
import sys

BUSYBOX = "/bin/busybox"

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
user:x:1000:1000:user:/home/user:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""

# tty (5) is the gid the default spec's devpts mount uses.
GROUP = """\
root:x:0:
tty:x:5:
user:x:1000:
nogroup:x:65534:
"""

DIRS = [("bin", 0o755), ("etc", 0o755), ("proc", 0o555), ("sys", 0o555), ("dev", 0o755),
        ("tmp", 0o1777), ("root", 0o700), ("home", 0o755)]


def applets(busybox=BUSYBOX):
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout
    # Names that would escape /bin or be special path components are skipped.
    return sorted(a for a in out.split()
                  if a and "/" not in a and "\0" not in a and a not in (".", "..", "busybox"))


def _is_static(path):
    # A dynamically linked busybox would need the host's libc inside the rootfs.
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    return b"/lib64/ld-linux" not in head and b"/lib/ld-linux" not in head


def _write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def build(path, busybox=BUSYBOX, hostname="pyrt"):
    """Create (or refresh) a busybox rootfs at `path`; returns `path`."""
    if not os.path.exists(busybox):
        raise FileNotFoundError("%s not found (apt-get install busybox-static)" % busybox)
    if not _is_static(busybox):
        raise RuntimeError("%s is not statically linked (install busybox-static)" % busybox)
    os.makedirs(path, exist_ok=True)
    for d, mode in DIRS:
        p = os.path.join(path, d)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)  # explicit: makedirs' mode is filtered by the umask
    home = os.path.join(path, "home", "user")
    os.makedirs(home, exist_ok=True)
    os.chown(home, 1000, 1000)

    bindir = os.path.join(path, "bin")
    dst = os.path.join(bindir, "busybox")
    if os.path.lexists(dst):
        os.unlink(dst)
    shutil.copy2(busybox, dst)
    os.chmod(dst, 0o755)
    for name in applets(busybox):
        link = os.path.join(bindir, name)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink("busybox", link)

    etc = os.path.join(path, "etc")
    _write(os.path.join(etc, "passwd"), PASSWD)
    _write(os.path.join(etc, "group"), GROUP)
    _write(os.path.join(etc, "hostname"), hostname + "\n")
    return path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: mkrootfs.py DIR\n")
        return 2
    build(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
