"""cgroup drivers: v1 (legacy and hybrid hosts) and v2 (unified).

    mgr = cgroups.new(container_id, cgroups_path, resources)
    mgr.create(); mgr.add_pid(pid); mgr.apply()
    state["cgroup"] = mgr.to_state()  ...  mgr = cgroups.from_state(state["cgroup"])

The mode is detected at run time from /proc/self/mountinfo. Only the fs
("cgroupfs") driver is implemented; systemd=True is refused.
"""

from pyruntime.errors import CgroupError

__all__ = ["new", "from_state", "mode", "CgroupError"]


def mode():
    """'unified', 'hybrid' or 'legacy'."""
    from pyruntime.cgroups.common import detect_mode
    return detect_mode()


def new(container_id, cgroups_path, resources, systemd=False, rootless=False, linux_devices=None):
    """A manager for the container's cgroup; computes paths only, creates nothing.

    cgroups_path: config linux.cgroupsPath; None/"" means runc's default, the
    container id relative to the caller's own cgroup. linux_devices: config
    linux.devices (only their paths matter: a listed path replaces runc's
    default allow rule for it)."""
    if systemd:
        raise CgroupError("systemd cgroup driver is not supported")
    from pyruntime.cgroups.common import detect_mode, read_mountinfo
    mi = read_mountinfo()
    m = detect_mode(mi)
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
    else:
        from pyruntime.cgroups.v1 import V1Manager as cls
    return cls.from_state(d)
