"""Rootless containers: what an unprivileged runtime does differently.

An unprivileged user may map only its own uid/gid into a user namespace, and only after
denying setgroups(2) in it (user_namespaces(7)). Anything more (several ids, other ids)
goes through the setuid helpers newuidmap/newgidmap of the `uidmap` package, which check
/etc/subuid and /etc/subgid.
"""
from . import oslite as os

from .errors import RuntimeErr


def is_own_only(maps, own):
    return len(maps) == 1 and maps[0]["hostID"] == own and maps[0]["size"] == 1


def setgroups_denied(plan):
    """True when the unprivileged runtime will write the gid map itself, which requires
    denying setgroups in the new namespace first."""
    return os.geteuid() != 0 and bool(plan.get("gid_mappings")) and is_own_only(
        plan["gid_mappings"], os.getegid())


def write_id_maps(pid, uid_maps, gid_maps):
    """Write the maps of the user namespace of `pid` as an unprivileged user."""
    for kind, maps, own, helper in (("uid", uid_maps, os.geteuid(), "newuidmap"),
                                    ("gid", gid_maps, os.getegid(), "newgidmap")):
        if not maps:
            continue
        if is_own_only(maps, own):
            try:
                if kind == "gid":
                    with open("/proc/%d/setgroups" % pid, "w") as f:
                        f.write("deny")
                with open("/proc/%d/%s_map" % (pid, kind), "w") as f:
                    f.write("%d %d 1\n" % (maps[0]["containerID"], own))
            except OSError as e:
                from .errors import strerror
                raise RuntimeErr("unable to start container process: write %s_map: %s"
                                 % (kind, strerror(e.errno)))
            continue
        _run_helper(helper, pid, maps, kind)


def _run_helper(helper, pid, maps, kind):
    import shutil
    import subprocess
    path = shutil.which(helper) or shutil.which(helper, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if not path:
        raise RuntimeErr("rootless container: mapping %s ids other than your own needs %s "
                         "(package uidmap) and an entry in /etc/sub%s"
                         % (kind, helper, kind))
    argv = [path, str(pid)]
    for m in maps:
        argv += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise RuntimeErr("unable to start container process: %s: %s (check /etc/sub%s)"
                         % (helper, (p.stderr or p.stdout).strip().splitlines()[-1]
                            if (p.stderr or p.stdout).strip() else "exit %d" % p.returncode,
                            kind))


def settle_cgroups(mgr, c):
    """Rootless with cgroup v1 managers: create the container's cgroups now, so that the
    hierarchies the user may not write (not delegated) are known before the mounts are
    planned. Returns {leaf dir the container would have had: the runtime's own cgroup
    dir} for those, for cgroup_binds()."""
    mgr.create()   # what it made is on record with the manager: create's cleanup destroys it
    return _replacements(mgr, mgr.skipped)


def foresee_cgroups(mgr):
    """settle_cgroups' answer without making anything (`pyruntime plan`): a hierarchy is
    foreseen skipped when the first directory create would make cannot be made by us."""
    from .cgroups import common
    skipped = []
    for key, d in mgr.dirs():
        missing = common.missing_dirs(mgr.mounts[key], d)
        if missing and not os.access(os.path.dirname(missing[0]), os.W_OK | os.X_OK):
            skipped.append(key)
    return _replacements(mgr, skipped)


def _replacements(mgr, skipped):
    if not skipped:
        return {}
    own = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                for ctrl in ctrls.split(","):
                    own[ctrl] = path
    except OSError:
        return {}
    out = {}
    for key in skipped:
        base = mgr.mounts.get(key)
        rel = own.get(key)
        if base and rel is not None and mgr.paths.get(key):
            out[mgr.paths[key]] = os.path.join(base, rel.lstrip("/"))
    return out


def cgroup_binds(plan, replace):
    """In the container, a hierarchy without a cgroup of its own shows the runtime's
    cgroup there (read-only like the rest), as runc does; the manager never acts on it."""
    if not replace:
        return
    for st in plan["steps"]:
        if st.get("op") == "mount" and st.get("source") in replace:
            st["source"] = replace[st["source"]]
            st["desc"] = st["desc"].replace("bind cgroup", "bind the runtime's cgroup", 1)
