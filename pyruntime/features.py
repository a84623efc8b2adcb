"""The OCI features document (runtime-spec features.md): what this build really does."""
from . import oslite as os

from . import OCI_VERSION
from .config import HOOK_KINDS
from .plan import CAPS, MOUNT_FLAGS, PROPAGATION, RECURSIVE_ATTRS


def _kernel_namespaces():
    from .namespaces import present
    return present()


def selinux_enabled():
    """selinuxfs mounted (go-selinux GetEnabled's test)."""
    return os.path.exists("/sys/fs/selinux/enforce")


def resctrl_mounted():
    """Intel RDT / AMD QoS is reached through the resctrl filesystem."""
    try:
        with open("/proc/self/mountinfo") as f:
            return any(line.split(" - ", 1)[-1].startswith("resctrl ") for line in f)
    except OSError:
        return False


def _idmap_supported():
    """mount_setattr(2) (Linux 5.12) is what idmapped mounts need."""
    import ctypes
    import errno
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if libc.syscall(442, -1, None, 0, None, 0) == 0:  # SYS_mount_setattr on a bad fd
        return True
    return ctypes.get_errno() != errno.ENOSYS


# Where checkpoint/restore works is the kernel's and criu's say, not this build's: asking
# criu (`criu check`, ~0.5 s) is left to the two commands, which refuse with its reason.
CHECKPOINT_NOTE = ("checkpoint/restore through criu swrk (criu's RPC); needs criu installed and a "
                   "kernel where 'criu check' passes")


def _criu_installed():
    """As runc's annotation says the build can checkpoint: here, whether a criu binary is
    on PATH (a PATH walk, no process)."""
    for d in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        if d and os.access(os.path.join(d, "criu"), os.X_OK):
            return True
    return False


def document():
    doc = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted(set(MOUNT_FLAGS) | set(PROPAGATION) | set(RECURSIVE_ATTRS)
                               | ({"idmap", "ridmap"} if _idmap_supported() else set())),
        "linux": {
            "namespaces": _kernel_namespaces(),
            "capabilities": CAPS,
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": True},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            # applied only where the host has resctrl; this build has no RDT support
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": _idmap_supported()}},
            "netDevices": {"enabled": True},
        },
        "annotations": {"org.opencontainers.runc.checkpoint.enabled":
                        "true" if _criu_installed() else "false",
                        "io.github.pyruntime.checkpoint": CHECKPOINT_NOTE,
                        "io.github.pyruntime.version": __import__("pyruntime").__version__},
        "potentiallyUnsafeConfigAnnotations": [],
    }
    try:
        from . import seccomp
        doc["linux"]["seccomp"] = seccomp.features()
    except Exception:
        doc["linux"]["seccomp"] = {"enabled": False}
    return doc
