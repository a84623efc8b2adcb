"""Plan steps for a config mount of type "cgroup", the way runc mounts it.

v1 without cgroupns: tmpfs at the destination, the container's own cgroup dir of
each hierarchy bind-mounted at <dest>/<basename of the host mountpoint>,
symlinks for co-mounted controllers (cpu -> cpu,cpuacct), ro remount last.
v1 with cgroupns: a cgroup fs mount per hierarchy instead of the binds.
v2: a cgroup2 mount; the step carries a "fallback" (bind of the host's cgroup2
mount, or of the container's cgroup with cgroupns) for when the kernel refuses
the mount with EPERM/EBUSY (user namespace without cgroupns)."""

from .. import oslite as os

from pyruntime.cgroups.common import (DEFAULT_MOUNT_FLAGS, MS_BIND, MS_RDONLY, MS_REC)

def parse_options(options):
    """-> (flags, [propagation flags], data string), by the one table of mount options
    (plan.MOUNT_FLAGS / PROPAGATION)."""
    from pyruntime.plan import parse_mount_options
    flags, _clear, prop, _rset, _rclr, data, _extras = parse_mount_options(options)
    return flags, prop, data


def _mount(source, target, fstype, flags, data, host_source, desc):
    return {"op": "mount", "desc": desc, "source": source, "target": target, "fstype": fstype,
            "flags": flags, "data": data, "mkdir": "dir", "host_source": host_source}


def _props(target, prop):
    return [{"op": "propagation", "desc": f"set propagation of {target}", "target": target,
             "flags": p} for p in prop]


def _bind(source, target, flags, prop, desc):
    steps = [_mount(source, target, "bind", MS_BIND | MS_REC | flags, "", True, desc)]
    if flags & ~(MS_BIND | MS_REC | 0x20):
        steps.append({"op": "remount", "desc": f"remount {target}", "target": target,
                      "flags": (flags | MS_REC) & ~(MS_BIND | 0x20)})
    steps += _props(target, prop)
    return steps


def v1_steps(mgr, mount, cgroupns):
    dest = os.path.normpath(mount["destination"])
    flags, prop, _data = parse_options(mount.get("options"))
    steps = [_mount("tmpfs", dest, "tmpfs", DEFAULT_MOUNT_FLAGS, "mode=755", False,
                    f"mount tmpfs for cgroups to {dest}")]
    steps += _props(dest, prop)
    merged = []
    for key, leaf in mgr.paths.items():
        if key == "":
            continue  # hybrid's unified hierarchy: not shown in the container (as runc)
        sub = os.path.basename(mgr.mounts[key])
        target = os.path.join(dest, sub)
        if "," in sub:
            merged.append(sub)
        if cgroupns:
            f = DEFAULT_MOUNT_FLAGS | (flags & MS_RDONLY)
            steps.append(_mount("cgroup", target, "cgroup", f, key, False,
                                f"mount cgroup {key} to {target}"))
            steps += _props(target, prop)
        else:
            steps += _bind(leaf, target, flags & ~(MS_BIND | MS_REC), prop,
                           f"bind cgroup {leaf} to {target}")
    for sub in merged:
        for ss in sub.split(","):
            if ss != sub:
                steps.append({"op": "symlink", "desc": f"symlink {dest}/{ss} -> {sub}",
                              "linkname": os.path.join(dest, ss), "target": sub})
    if flags & MS_RDONLY:
        steps.append({"op": "remount", "desc": f"remount {dest} read-only", "target": dest,
                      "flags": DEFAULT_MOUNT_FLAGS | MS_RDONLY})
    return steps


def v2_steps(mgr, mount, cgroupns):
    dest = os.path.normpath(mount["destination"])
    flags, prop, data = parse_options(mount.get("options"))
    src = mgr.leaf if cgroupns else mgr.mountpoint
    step = _mount(mount.get("source") or "cgroup", dest, "cgroup2", flags & ~(MS_BIND | MS_REC), data,
                  False, f"mount cgroup2 to {dest}")
    step["fallback_errnos"] = ["EPERM", "EBUSY"]
    step["fallback"] = _bind(src, dest, flags & ~(MS_BIND | MS_REC), prop, f"bind cgroup2 {src} to {dest}")
    return [step] + _props(dest, prop)
