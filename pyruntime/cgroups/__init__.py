"""cgroup drivers: v1 (legacy and hybrid hosts) and v2 (unified).

    mgr = cgroups.new(container_id, cgroups_path, resources)
    mgr.create(); mgr.add_pid(pid); mgr.apply()
    state["cgroup"] = mgr.to_state()  ...  mgr = cgroups.from_state(state["cgroup"])

The mode is detected at run time from /proc/self/mountinfo. systemd=True selects the
systemd driver (cgroups/systemd.py: a transient unit per container, unified hosts only).
"""

from pyruntime.errors import CgroupError

__all__ = ["new", "from_state", "mode", "CgroupError"]


def mode():
    """'unified', 'hybrid' or 'legacy'."""
    from pyruntime.cgroups.common import detect_mode
    return detect_mode()


def new(container_id, cgroups_path, resources, systemd=False, rootless=False, linux_devices=None,
        annotations=None):
    """A manager for the container's cgroup; computes paths only, creates nothing.

    cgroups_path: config linux.cgroupsPath; None/"" means runc's default, the
    container id relative to the caller's own cgroup. linux_devices: config
    linux.devices (only their paths matter: a listed path replaces runc's
    default allow rule for it). annotations: config annotations (the systemd driver
    passes org.systemd.property.* on to the unit)."""
    from pyruntime.cgroups.common import detect_mode, read_mountinfo
    if systemd:
        from pyruntime.cgroups import systemd as sd
        if not sd.running():
            raise CgroupError(sd.NOT_RUNNING)
    mi = read_mountinfo()
    m = detect_mode(mi)
    if systemd:
        if m != "unified":
            raise CgroupError("systemd cgroup driver: only a unified (cgroup v2) hierarchy is "
                              "supported, this host's is %s" % m)
        mgr = sd.SystemdManager(container_id, cgroups_path, resources or {}, rootless=rootless,
                                linux_devices=linux_devices, mountinfo=mi, annotations=annotations)
        mgr.mode = m
        return mgr
    if m == "unified":
        from pyruntime.cgroups.v2 import V2Manager as cls
    else:
        from pyruntime.cgroups.v1 import V1Manager as cls
    mgr = cls(container_id, cgroups_path, resources or {}, rootless=rootless,
              linux_devices=linux_devices, mountinfo=mi)
    mgr.mode = m
    return mgr


def from_state(d):
    """Rebuild a manager from to_state()'s dict (no discovery, no writes)."""
    if d.get("driver") == "v2":
        from pyruntime.cgroups.v2 import V2Manager as cls
    elif d.get("driver") == "systemd":
        from pyruntime.cgroups.systemd import SystemdManager as cls
    else:
        from pyruntime.cgroups.v1 import V1Manager as cls
    return cls.from_state(d)
