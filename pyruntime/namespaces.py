"""Linux namespaces: their names, clone flags and /proc names (the one table), and
discovery of a running process's namespaces (exec and createContainer hooks join them)."""
from . import oslite as os

from .errors import RuntimeErr, strerror

# <sched.h>
NS_FLAGS = {
    "mount": 0x00020000, "uts": 0x04000000, "ipc": 0x08000000, "user": 0x10000000,
    "pid": 0x20000000, "network": 0x40000000, "cgroup": 0x02000000, "time": 0x00000080,
}
NS_PROC_NAMES = {"mount": "mnt", "uts": "uts", "ipc": "ipc", "user": "user", "pid": "pid",
                 "network": "net", "cgroup": "cgroup", "time": "time"}
# Join order: the user namespace first so the others are entered with its privileges;
# mount last so the /proc paths above still resolve.
JOIN_ORDER = ["user", "cgroup", "ipc", "uts", "network", "pid", "time", "mount"]


def present():
    """The namespace types this kernel has (features)."""
    return [t for t in sorted(NS_PROC_NAMES) if os.path.exists("/proc/self/ns/" + NS_PROC_NAMES[t])]


def flags(names):
    f = 0
    for n in names:
        f |= NS_FLAGS[n]
    return f


def namespaces_to_join(pid, for_children=False):
    """Every namespace of `pid` that differs from ours, in join order (user first).
    for_children: the pid namespace its children get (an init's builder is outside it)."""
    out = []
    for t in JOIN_ORDER:
        name = NS_PROC_NAMES[t]
        if for_children and t == "pid":
            name = "pid_for_children"
        path = "/proc/%d/ns/%s" % (pid, name)
        try:
            theirs = os.stat(path)
        except FileNotFoundError:
            continue  # the kernel has no such namespace type
        except OSError as e:
            raise RuntimeErr("cannot inspect %s: %s" % (path, strerror(e.errno)))
        try:
            ours = os.stat("/proc/self/ns/" + name)
            if (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino):
                continue  # joining our own namespace is a no-op (and EPERM for user)
        except OSError:
            pass
        out.append({"type": t, "path": path})
    return out
