"""The default config of ``pyruntime spec``: the same content as ``runc spec``
(and ``runc spec --rootless``), declaring OCI runtime spec 1.3.0."""

import json
from . import oslite as os

from .errors import ConfigError

from . import OCI_VERSION

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

_MASKED = ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
           "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
           "/proc/scsi"]

_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_spec(rootless=False):
    """A fresh dict (callers may mutate it). Key order follows runc's output."""
    spec = {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(_CAPS) for k in ("bounding", "effective", "permitted",
                                                     "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": list(_MASKED),
            "readonlyPaths": list(_READONLY),
        },
    }
    if rootless:
        _to_rootless(spec)
    return spec


def _to_rootless(spec):
    # Same transformation as runc's specconv.ToRootless.
    linux = spec["linux"]
    namespaces = [ns for ns in linux["namespaces"] if ns["type"] not in ("network", "user")]
    namespaces.append({"type": "user"})
    # Rebuild so the mappings come first, as in runc's (struct-ordered) output.
    new_linux = {
        "uidMappings": [{"containerID": 0, "hostID": os.geteuid(), "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": os.getegid(), "size": 1}],
    }
    for k, v in linux.items():
        if k == "resources":
            continue  # cgroup limits need privileges a rootless caller lacks
        new_linux[k] = namespaces if k == "namespaces" else v
    spec["linux"] = new_linux
    mounts = []
    for m in spec["mounts"]:
        if m["destination"] == "/sys":
            # sysfs cannot be mounted without owning the network namespace.
            m = {"destination": "/sys", "type": "none", "source": "/sys",
                 "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
        elif "options" in m:
            # gid=N may not be mapped inside the user namespace.
            m = dict(m, options=[o for o in m["options"] if not o.startswith("gid=")])
        mounts.append(m)
    spec["mounts"] = mounts


def dumps(spec):
    """Serialise like runc: tab indentation, no trailing newline."""
    return json.dumps(spec, indent="\t", ensure_ascii=False)


def write_spec(bundle_dir=".", rootless=False):
    """Write ``<bundle_dir>/config.json``; never overwrite an existing one."""
    path = os.path.join(bundle_dir, "config.json")
    data = dumps(default_spec(rootless)).encode()
    try:
        # O_EXCL: refuse atomically, even a dangling symlink, like runc's stat check.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise ConfigError("File config.json exists. Remove it first") from None
    except OSError as e:
        from .errors import strerror
        if not os.path.isdir(bundle_dir):
            # runc changes into --bundle first: a missing bundle is named as such
            try:
                os.stat(bundle_dir)
                e = OSError(20, "not a directory")
            except OSError as e2:
                e = e2
            raise ConfigError(f"chdir {bundle_dir}: {strerror(e)}") from None
        raise ConfigError(f"open {path}: {strerror(e)}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path
