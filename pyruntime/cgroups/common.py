"""Shared pieces of the cgroup drivers: host layout discovery, path resolution,
file I/O that turns OSError into CgroupError, and runc's v1 -> v2 conversions."""

import errno
from .. import oslite as os

from pyruntime.errors import CgroupError, strerror
from pyruntime.cgroups.record import CGROUP_ROOT  # noqa: F401 (its home: record.py)

# Flags used when building mount steps (values from <sys/mount.h>).
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
DEFAULT_MOUNT_FLAGS = MS_NOEXEC | MS_NOSUID | MS_NODEV


def _unescape(s):
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in s:
        return s
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and len(s[i + 1:i + 4]) == 3 and s[i + 1:i + 4].isdigit():
            out.append(chr(int(s[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def read_mountinfo(path="/proc/self/mountinfo"):
    """-> list of (mountpoint, root, fstype, super_options)."""
    res = []
    with open(path) as f:
        for line in f:
            left, _, right = line.rstrip("\n").partition(" - ")
            a = left.split()
            b = right.split()
            if len(a) < 5 or len(b) < 3:
                continue
            res.append((_unescape(a[4]), _unescape(a[3]), b[0], b[2]))
    return res


def read_proc_cgroup(path="/proc/self/cgroup"):
    """-> {controller-or-name: path}; the v2 entry has key ""."""
    res = {}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) != 3:
                continue
            if parts[1] == "":
                res[""] = parts[2]
            else:
                for c in parts[1].split(","):
                    res[c] = parts[2]
    return res


def detect_mode(mountinfo=None):
    """'unified' (cgroup2 at /sys/fs/cgroup), 'hybrid' (v1 + a cgroup2 mount) or 'legacy'."""
    mi = read_mountinfo() if mountinfo is None else mountinfo
    has_v1 = has_v2 = False
    for mnt, _root, fstype, _opts in mi:
        if mnt == CGROUP_ROOT and fstype == "cgroup2":
            return "unified"
        if fstype == "cgroup":
            has_v1 = True
        elif fstype == "cgroup2":
            has_v2 = True
    if has_v1:
        return "hybrid" if has_v2 else "legacy"
    if has_v2:
        return "unified"
    raise CgroupError("cgroup: no cgroup filesystem is mounted")


def v1_hierarchies(mountinfo=None):
    """v1 hierarchies as a list of dicts {key, controllers, mountpoint, root}.
    key is the comma-joined controller list as mounted (e.g. "cpu,cpuacct",
    "name=systemd"); a hierarchy mounted more than once is listed once."""
    mi = read_mountinfo() if mountinfo is None else mountinfo
    try:
        with open("/proc/cgroups") as f:
            known = {l.split()[0] for l in f if l[:1] != "#" and l.strip()}
    except OSError:
        known = set()
    seen, res = set(), []
    for mnt, root, fstype, opts in mi:
        if fstype != "cgroup":
            continue
        ctrls = [o for o in opts.split(",") if o in known or o.startswith("name=")]
        if not ctrls:
            continue
        key = ",".join(ctrls)
        if key in seen:
            continue
        seen.add(key)
        res.append({"key": key, "controllers": ctrls, "mountpoint": mnt, "root": root})
    return res


def v2_mountpoint(mountinfo=None):
    mi = read_mountinfo() if mountinfo is None else mountinfo
    for mnt, root, fstype, _opts in mi:
        if fstype == "cgroup2":
            return mnt, root
    raise CgroupError("cgroup: no cgroup2 filesystem is mounted")


def check_inner(cgroups_path):
    """Validate linux.cgroupsPath: no "." / ".." components, not a root."""
    parts = [p for p in cgroups_path.split("/") if p]
    for p in parts:
        if p in (".", ".."):
            raise CgroupError(f"cgroup: invalid cgroupsPath {cgroups_path!r}: "
                              "'.' and '..' components are not allowed")
    if not parts:
        raise CgroupError(f"cgroup: invalid cgroupsPath {cgroups_path!r}: "
                          "resolves to a hierarchy root")
    return parts


def host_dir(mountpoint, mount_root, cg_path):
    """Host directory of cgroup path cg_path (as in /proc/PID/cgroup) in a
    hierarchy mounted at mountpoint whose mount root is mount_root."""
    # ("/" + "/x" would keep a leading "//" through normpath)
    cg_path = os.path.normpath("/" + cg_path.lstrip("/"))
    mount_root = os.path.normpath("/" + mount_root.lstrip("/"))
    if mount_root != "/":
        if cg_path != mount_root and not cg_path.startswith(mount_root + "/"):
            raise CgroupError(f"cgroup: own cgroup {cg_path} is not visible under {mountpoint}")
        cg_path = cg_path[len(mount_root):] or "/"
    return os.path.normpath(mountpoint + cg_path)


def leaf_dir(mountpoint, base, parts):
    """Join parts below base and check the result stays strictly below mountpoint."""
    d = os.path.normpath(os.path.join(base, *parts))
    mp = os.path.normpath(mountpoint)
    if not d.startswith(mp + "/"):
        raise CgroupError(f"cgroup: path {d} is not below the hierarchy root {mp}")
    return d


# ---------------------------------------------------------------- file I/O

def write_file(d, name, value, key):
    """Write one cgroup file; failures name the file and the config key."""
    data = str(value)
    try:
        fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CgroupError(f"cgroup: {name}: open: {_strerr(e)} ({key})") from None
    try:
        os.write(fd, data.encode())
    except OSError as e:
        raise CgroupError(f"cgroup: {name}: write {data.strip()}: {_strerr(e)} ({key})") from None
    finally:
        os.close(fd)


def _strerr(e):
    return strerror(e.errno) if e.errno else str(e)


def read_file(d, name, default=None):
    try:
        with open(os.path.join(d, name)) as f:
            return f.read()
    except OSError:
        if default is not None:
            return default
        raise


def read_int(d, name, default=0):
    try:
        v = read_file(d, name).strip()
    except OSError:
        return default
    if v == "max":
        return 2 ** 64 - 1
    try:
        return int(v)
    except ValueError:
        return default


def read_kv(d, name):
    res = {}
    try:
        text = read_file(d, name)
    except OSError:
        return res
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        try:
            res[k] = int(v)
        except ValueError:
            pass
    return res


def exists(d, name):
    return os.path.exists(os.path.join(d, name))


def read_procs(d):
    try:
        text = read_file(d, "cgroup.procs")
    except OSError as e:
        if e.errno == errno.ENOENT:
            return []
        raise
    return [int(x) for x in text.split()]


def read_procs_quiet(d):
    """read_procs(d), [] when it cannot be read."""
    try:
        return read_procs(d)
    except (OSError, ValueError):
        return []


def all_pids(d):
    """pids of d and every descendant cgroup."""
    res = []
    for cur, dirs, _files in os.walk(d):
        res.extend(read_procs(cur))
    return sorted(set(res))


def missing_dirs(mountpoint, d):
    """The dirs mkdirs(mountpoint, d) would make now, top-down (nothing is created)."""
    out = []
    cur = d
    while cur != mountpoint and cur.startswith(mountpoint + "/"):
        if os.path.isdir(cur):
            break
        out.append(cur)
        cur = os.path.dirname(cur)
    return out[::-1]


def mkdirs(mountpoint, d):
    """mkdir -p d below mountpoint; -> the dirs created, top-down."""
    created = []
    rel = os.path.relpath(d, mountpoint)
    for _attempt in range(5):
        cur = mountpoint
        try:
            for p in rel.split("/"):
                cur = os.path.join(cur, p)
                try:
                    os.mkdir(cur, 0o755)
                    created.append(cur)
                except FileExistsError:
                    pass
            return created
        except FileNotFoundError:
            # a parent another container made was removed as we went down (its delete
            # takes an empty parent away): make it again
            continue
        except OSError as e:
            raise CgroupError(f"cgroup: mkdir {cur}: {_strerr(e)}") from None
    raise CgroupError(f"cgroup: mkdir {cur}: {_strerr(FileNotFoundError(errno.ENOENT, ''))}")


def rmdir_bounded(d, wait=2.0):
    """rmdir a cgroup dir of the container; EBUSY is retried briefly, but only while no
    process is listed in it (tasks still exiting): a cgroup that holds live processes
    is someone else's to empty, never waited on."""
    import time
    deadline = time.monotonic() + wait
    delay = 0.005
    while True:
        try:
            os.rmdir(d)
            return True
        except FileNotFoundError:
            return True
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                return False
            try:
                if read_procs(d) or any(e.is_dir() for e in os.scandir(d)):
                    return False   # live processes or cgroups below: not transient
            except (OSError, ValueError):
                return False
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


# ---------------------------------------------------------------- conversions (runc's)

def shares_to_weight(shares):
    """cpu.shares [2, 262144] -> cpu.weight [1, 10000] (runc 1.1 linear mapping)."""
    if not shares:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(w):
    """blkio.weight [10, 1000] -> io.weight [1, 10000]."""
    if not w:
        return 0
    return 1 + (w - 10) * 9999 // 990


def swap_v1_to_v2(swap, memory, key):
    """v1 memory.memsw (memory+swap) -> v2 memory.swap.max (swap only)."""
    if memory == -1 and swap == 0:
        return -1
    if swap in (-1, 0):
        return swap
    if memory in (0, -1):
        raise CgroupError(f"cgroup: memory.swap.max: unable to set swap limit without memory limit ({key})")
    if memory < 0:
        raise CgroupError(f"cgroup: memory.max: invalid memory value {memory} ({key})")
    if swap < memory:
        raise CgroupError(f"cgroup: memory.swap.max: memory+swap limit should be >= memory limit ({key})")
    return swap - memory


def pagesize_to_suffix(ps, key):
    """'2MB' -> '2MB' validated; cgroup files use <n>KB/MB/GB."""
    s = ps if isinstance(ps, str) else ""
    n = s[:-2]
    if not (s.endswith("B") and s[-2:-1] in ("K", "M", "G") and n.isascii() and n.isdigit()
            and n[0] != "0"):
        raise CgroupError(f"cgroup: hugetlb: invalid pageSize {ps!r} ({key})")
    return ps


def as_int(v, key, lo=None, hi=None):
    if isinstance(v, bool) or not isinstance(v, int):
        raise CgroupError(f"cgroup: invalid value {v!r}: not an integer ({key})")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise CgroupError(f"cgroup: invalid value {v}: out of range ({key})")
    return v
