"""The cgroup record a container's state files keep (state.json, owned.json), and the one
check it passes before anything acts on it: the state loader (every `state`, `list`,
`start`) and the managers rebuilt from it (delete, kill, pause, exec...) both use
`problem`. Kept apart from common.py so that loading a state file imports only this."""

from .. import oslite as os

# where every hierarchy the runtime uses is mounted (common.py re-exports it)
CGROUP_ROOT = "/sys/fs/cgroup"


def problem(cg, host=False):
    """None when the record may be used, else why not (a phrase for an error line).

    A record names the dirs delete signals and removes, so each must be a normalised
    path strictly below a cgroup mount under /sys/fs/cgroup (never a hierarchy root nor
    the runtime's own cgroup), every leaf must end with the container's own cgroup path
    (its cgroupsPath, or its id), and every dir create made must be a leaf or one of the
    dirs of that path above a leaf. Pure string checks: every `state` and `list` runs
    this, and os.path.ismount() (a realpath per call) made `list` of 500 containers
    several times slower. That the file is ours is the loader's to check.

    host=True (the managers, before they act on a record) also asks the host that no dir
    is the root of a file system: a record may claim a mount that is not one (on a v1
    host /sys/fs/cgroup is the tmpfs the hierarchies are mounted on), and its leaf
    /sys/fs/cgroup/pids then passes every string rule while being a hierarchy's root,
    with every process of the host in it. Two stat() calls a dir."""
    if not isinstance(cg, dict):
        return "not an object"
    mounts, paths, created = cg.get("mounts") or {}, cg.get("paths") or {}, cg.get("created") or []
    if not (isinstance(mounts, dict) and isinstance(paths, dict) and isinstance(created, list)):
        return "mounts, paths or created of the wrong type"
    tail = cg.get("cgroups_path") or cg.get("id") or ""
    parts = [x for x in tail.split("/") if x] if isinstance(tail, str) else None
    if not parts or any(x in (".", "..") for x in parts):
        return "invalid cgroup path %r" % (tail,)
    for mp in mounts.values():
        if not (isinstance(mp, str) and os.path.normpath(mp) == mp
                and (mp == CGROUP_ROOT or mp.startswith(CGROUP_ROOT + "/"))):
            return "invalid mount point %r" % (mp,)
    roots = set(mounts.values())
    below = tuple(r + "/" for r in roots)
    tail = "/" + "/".join(parts)
    for p in paths.values():
        if not (_strictly_below(p, roots, below) and p.endswith(tail)):
            return "refusing cgroup path %r (not the container's cgroup, strictly below a cgroup mount)" % (p,)
    made = {p[:len(p) - len(tail)] + "/" + "/".join(parts[:k])
            for p in paths.values() for k in range(1, len(parts) + 1)}
    for p in created:
        if not (_strictly_below(p, roots, below) and p in made):
            return "refusing cgroup path %r (not a dir of the container's path, strictly below a cgroup mount)" % (p,)
    if host:
        devs = {}
        # each dir once: the leaves are usually the dirs create made
        for p in dict.fromkeys(list(paths.values()) + created):
            if _fs_root(p, devs):
                return "refusing cgroup path %r (the root of a cgroup hierarchy)" % (p,)
    return None


def _fs_root(d, devs):
    # stat, not lstat: a symlink (/sys/fs/cgroup/cpu -> cpu,cpuacct on some v1 hosts) is
    # followed by whatever opens a file below it. A dir that is not there is not touched.
    try:
        return _dev(d, devs) != _dev(os.path.dirname(d), devs)
    except OSError:
        return False


def _dev(d, devs):
    if d not in devs:
        devs[d] = os.stat(d).st_dev
    return devs[d]


def _strictly_below(d, roots, below):
    # below: each root with a "/" after it; a path below one root may be another root.
    # A normalised absolute path has no "..".
    return (isinstance(d, str) and d.startswith(below) and d not in roots
            and os.path.normpath(d) == d)
