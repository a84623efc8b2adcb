"""The OCI features document (runtime-spec features.md): what this build really does."""
import os

from . import OCI_VERSION
from .plan import CAPS, MOUNT_FLAGS, PROPAGATION, RECURSIVE_ATTRS


def _kernel_namespaces():
    have = []
    for name, proc in (("cgroup", "cgroup"), ("ipc", "ipc"), ("mount", "mnt"), ("network", "net"),
                       ("pid", "pid"), ("time", "time"), ("user", "user"), ("uts", "uts")):
        if os.path.exists("/proc/self/ns/" + proc):
            have.append(name)
    return have


def document():
    doc = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted(set(MOUNT_FLAGS) | set(PROPAGATION) | set(RECURSIVE_ATTRS)),
        "linux": {
            "namespaces": _kernel_namespaces(),
            "capabilities": CAPS,
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": True},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {"org.opencontainers.runc.checkpoint.enabled": "false",
                        "io.github.pyruntime.version": __import__("pyruntime").__version__},
        "potentiallyUnsafeConfigAnnotations": [],
    }
    try:
        from . import seccomp
        doc["linux"]["seccomp"] = seccomp.features()
    except Exception:
        doc["linux"]["seccomp"] = {"enabled": False}
    return doc
