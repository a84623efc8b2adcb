"""The systemd cgroup driver (--systemd-cgroup) on cgroup v2 hosts, as runc 1.1's.

linux.cgroupsPath is "slice:prefix:name" (empty: ":runc:<id>"); the container is placed
in the transient unit `prefix-name.scope` (a name ending in .slice is that slice) that
systemd starts over D-Bus with the init's pid, Slice=, Delegate=yes and the resources
systemd has properties for; the rest is written to the unit's cgroup files exactly as
the fs driver (V2Manager) does. Freeze, stats and kill are the fs driver's. `delete`
stops the unit and removes what is left.

The D-Bus side (pyruntime.sdbus, jeepney) is imported only when a unit is started,
changed or stopped, never by state/kill/pause/ps.
"""

import errno
from .. import oslite as os
import time

from pyruntime.errors import CgroupError
from pyruntime.cgroups import common
from pyruntime.cgroups.base import need, num
from pyruntime.cgroups.v2 import V2Manager, KEY

U64_MAX = 2 ** 64 - 1          # systemd's "infinity" (USEC_INFINITY, CGROUP_LIMIT_MAX)
DEF_CPU_PERIOD = 100000
PROP_PREFIX = "org.systemd.property."
NOT_RUNNING = "systemd not running on this host, cannot use systemd cgroups manager"


def running():
    """sd_booted(3): systemd is PID 1 when /run/systemd/system is a directory."""
    return os.path.isdir("/run/systemd/system") and not os.path.islink("/run/systemd/system")


def parse_path(cgroups_path, container_id):
    """cgroupsPath -> (slice, unit name, name) as runc's specconv + getUnitName."""
    if not cgroups_path:
        parent, prefix, name = "", "runc", container_id
    else:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise CgroupError('expected cgroupsPath to be of format "slice:prefix:name" for '
                              'systemd cgroups, got "%s" instead' % cgroups_path)
        parent, prefix, name = parts
    unit = name if name.endswith(".slice") else "%s-%s.scope" % (prefix, name)
    _check_unit_name(unit)
    return parent or "system.slice", unit, name


def _check_unit_name(unit):
    # systemd refuses these too, but the name is also a path component: check it first
    ok = (len(unit) <= 255 and not unit.startswith(".")
          and all(c.isascii() and (c.isalnum() or c in ":-_.\\@") for c in unit))
    if not ok:
        raise CgroupError('unable to start unit "%s": Unit name %s is not valid.' % (unit, unit))


def expand_slice(s):
    """"a-b.slice" -> "/a.slice/a-b.slice", "-.slice" -> "/" (runc's ExpandSlice)."""
    if len(s) < len(".slice") or not s.endswith(".slice") or "/" in s:
        raise CgroupError("invalid slice name: %s" % s)
    stem = s[:-len(".slice")]
    if stem == "-":
        return "/"
    path, prefix = "", ""
    for comp in stem.split("-"):
        if not comp:
            raise CgroupError("invalid slice name: %s" % s)
        path += "/" + prefix + comp + ".slice"
        prefix += comp + "-"
    return path


# ------------------------------------------------------------------ properties

def _prop(name, sig, value):
    return (name, (sig, value))


def range_to_bits(s, what):
    """"0-2,5" -> systemd's CPU/NUMA mask bytes (byte 0 = bits 0-7)."""
    bits = 0
    for r in s.split(","):
        r = r.strip()
        if not r:
            continue
        lo, dash, hi = r.partition("-")
        try:
            a = int(lo.strip(), 10)
            b = int(hi.strip(), 10) if dash else a
        except ValueError:
            raise CgroupError("%s=%r conversion error: invalid range %r" % (what, s, r)) from None
        if a < 0 or b < a or b >= 1 << 16:
            raise CgroupError("%s=%r conversion error: invalid range: %s" % (what, s, r))
        for i in range(a, b + 1):
            bits |= 1 << i
    if not bits:
        raise CgroupError("%s=%r conversion error: empty value" % (what, s))
    return bits.to_bytes((bits.bit_length() + 7) // 8, "little")


def _quota_props(props, quota, period, version):
    if period:
        if version >= 242:
            props.append(_prop("CPUQuotaPeriodUSec", "t", period))
    if quota or period:
        per_sec = U64_MAX
        if quota > 0:
            per_sec = quota * 1000000 // (period or DEF_CPU_PERIOD)
            # systemd keeps whole percents: round up so cpu.max gets at least the quota
            if per_sec % 10000:
                per_sec = (per_sec // 10000 + 1) * 10000
        props.append(_prop("CPUQuotaPerSecUSec", "t", per_sec))


def _u64(v):
    return v & U64_MAX   # -1 -> infinity, as Go's uint64(int64)


def device_props(r, linux_devices):
    from pyruntime.cgroups import devices
    emu = devices.Emulator.build(devices.normalize(r.get("devices"), linux_devices))
    if emu.default_allow:
        if not emu.rules:
            return [_prop("DevicePolicy", "s", "auto"), _prop("DeviceAllow", "a(ss)", [])]
        # systemd has no deny-list: a deny-all placeholder until our eBPF program is attached
        return [_prop("DevicePolicy", "s", "strict"), _prop("DeviceAllow", "a(ss)", [])]
    allow = []
    for (t, major, minor), perms in sorted(emu.rules.items(),
                                           key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        if major == devices.WILD:
            if minor != devices.WILD:
                continue   # "*:n" has no systemd form; the eBPF program has it
            path = ("block-" if t == "b" else "char-") + "*"
        elif minor == devices.WILD:
            path = _device_group(t, major)
            if not path:
                continue
        else:
            path = "/dev/%s/%d:%d" % ("block" if t == "b" else "char", major, minor)
            if not os.path.exists(path) and not os.path.exists("/sys" + path):
                continue
        allow.append((path, perms))
    return [_prop("DevicePolicy", "s", "strict"), _prop("DeviceAllow", "a(ss)", []),
            _prop("DeviceAllow", "a(ss)", allow)]


def _device_group(t, major):
    """The /proc/devices group of a major number: "char-pts" for c 136."""
    want = "Block devices:" if t == "b" else "Character devices:"
    cur = None
    try:
        with open("/proc/devices") as f:
            for line in f:
                line = line.strip()
                if line.endswith("devices:"):
                    cur = line
                    continue
                if cur != want or not line:
                    continue
                n, _, name = line.partition(" ")
                if n.isdigit() and int(n) == major:
                    return ("block-" if t == "b" else "char-") + name.strip()
    except OSError:
        pass
    return None


def resource_props(r, linux_devices, version, with_devices=True):
    """runc 1.1's genV2ResourcesProperties: what systemd itself should enforce."""
    props = device_props(r, linux_devices) if with_devices else []
    k = "linux.resources"
    m = need(r, "memory")
    limit = common.as_int(num(m.get("limit")), k + ".memory.limit")
    if limit:
        props.append(_prop("MemoryMax", "t", _u64(limit)))
    res = common.as_int(num(m.get("reservation")), k + ".memory.reservation")
    if res:
        props.append(_prop("MemoryLow", "t", _u64(res)))
    swap = common.swap_v1_to_v2(common.as_int(num(m.get("swap")), k + ".memory.swap"), limit,
                                k + ".memory.swap")
    if swap:
        props.append(_prop("MemorySwapMax", "t", _u64(swap)))
    c = need(r, "cpu")
    shares = num(c.get("shares"))
    if shares:
        props.append(_prop("CPUWeight", "t", common.shares_to_weight(shares)))
    _quota_props(props, num(c.get("quota")), num(c.get("period")), version)
    p = need(r, "pids")
    lim = num(p.get("limit"))
    if lim > 0 or lim == -1:
        props.append(_prop("TasksMax", "t", _u64(lim)))
    if (c.get("cpus") or c.get("mems")) and version >= 244:
        if c.get("cpus"):
            props.append(_prop("AllowedCPUs", "ay", range_to_bits(c["cpus"], "resources.CPU.Cpus")))
        if c.get("mems"):
            props.append(_prop("AllowedMemoryNodes", "ay",
                               range_to_bits(c["mems"], "resources.CPU.Mems")))
    for name, v in (r.get("unified") or {}).items():
        props.extend(_unified_prop(name, v, version))
    return props


_UNIFIED_MEM = {"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.min": "MemoryMin",
                "memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax"}


def _unified_prop(k, v, version):
    if "/" in k:
        raise CgroupError('unified resource "%s" must be a file name (no slashes)' % k)
    if "." not in k:
        raise CgroupError('unified resource "%s" must be in the form CONTROLLER.PARAMETER' % k)
    v = str(v).strip()

    def uint(s):
        if not s.isascii() or not s.isdigit():
            raise CgroupError('unified resource "%s" value conversion error: invalid syntax %r' % (k, s))
        return int(s)

    if k == "cpu.max":
        f = v.split()
        if not 1 <= len(f) <= 2:
            raise CgroupError('unified resource "%s" value invalid: "%s"' % (k, v))
        quota = 0 if f[0] == "max" else (-uint(f[0][1:]) if f[0].startswith("-") else uint(f[0]))
        period = uint(f[1]) if len(f) == 2 else DEF_CPU_PERIOD
        out = []
        _quota_props(out, quota, period, version)
        return out
    if k == "cpu.weight":
        return [_prop("CPUWeight", "t", uint(v))]
    if k in ("cpuset.cpus", "cpuset.mems"):
        if version < 244:
            return []
        return [_prop("AllowedCPUs" if k == "cpuset.cpus" else "AllowedMemoryNodes", "ay",
                      range_to_bits(v, 'unified resource "%s"' % k))]
    if k in _UNIFIED_MEM:
        return [_prop(_UNIFIED_MEM[k], "t", U64_MAX if v == "max" else uint(v))]
    if k == "pids.max":
        return [_prop("TasksMax", "t", U64_MAX if v == "max" else uint(v))]
    return []   # written to the file by the fs part


# ------------------------------------------------------------------ annotations

def annotation_props(annotations):
    """org.systemd.property.NAME = GVariant text -> unit properties (runc's rules:
    NAME of >= 3 ASCII letters; xxxSec with a number becomes xxxUSec in microseconds)."""
    out = []
    for key, text in (annotations or {}).items():
        if not key.startswith(PROP_PREFIX):
            continue
        name = key[len(PROP_PREFIX):]
        if len(name) < 3:
            raise CgroupError("annotation %s name incorrect: too short" % key)
        if not all(c.isascii() and c.isalpha() for c in name):
            raise CgroupError("annotation %s name incorrect: contains non-alphabetic character" % key)
        try:
            sig, value = parse_gvariant(text)
        except ValueError as e:
            raise CgroupError("annotation %s=%s value parse error: %s" % (key, text, e)) from None
        if len(name) > 3 and name.endswith("Sec") and "a" <= name[-4] <= "z":
            name = name[:-3] + "USec"
            if sig not in "ynqiuxtd" or len(sig) != 1:
                raise CgroupError("annotation %s=%s value parse error: not a number" % (key, text))
            value, sig = _u64(int(value * 1000000)), "t"
        out.append(_prop(name, sig, value))
    return out


_TYPE_WORDS = {"boolean": "b", "byte": "y", "int16": "n", "uint16": "q", "int32": "i",
               "uint32": "u", "int64": "x", "uint64": "t", "handle": "h", "double": "d",
               "string": "s", "objectpath": "o", "signature": "g"}
_INT_RANGE = {"y": (0, 255), "n": (-2 ** 15, 2 ** 15 - 1), "q": (0, 2 ** 16 - 1),
              "i": (-2 ** 31, 2 ** 31 - 1), "u": (0, 2 ** 32 - 1), "x": (-2 ** 63, 2 ** 63 - 1),
              "t": (0, U64_MAX), "h": (-2 ** 31, 2 ** 31 - 1)}


def parse_gvariant(text):
    """The GVariant text forms properties take: numbers, booleans, strings, type words
    ("uint64 5"), "@t 5", and arrays of those. Returns (signature, value)."""
    p = _GVParser(text)
    sig, v = p.value(None)
    p.ws()
    if p.i != len(p.s):
        raise ValueError("unexpected %r" % p.s[p.i:])
    return sig, v


class _GVParser:
    def __init__(self, s):
        self.s, self.i = s, 0

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in " \t\n":
            self.i += 1

    def word(self):
        self.ws()
        j = self.i
        while j < len(self.s) and (self.s[j].isalnum() or self.s[j] in "_+-.@"):
            j += 1
        return self.s[self.i:j]

    def value(self, want):
        self.ws()
        if self.i >= len(self.s):
            raise ValueError("unexpected end of input")
        ch = self.s[self.i]
        if ch == "@":
            j = self.i + 1
            while j < len(self.s) and self.s[j] not in " \t[":
                j += 1
            sig = self.s[self.i + 1:j]
            if not sig:
                raise ValueError("missing type after @")
            self.i = j
            return self.value(sig)
        w = self.word()
        if w in _TYPE_WORDS:
            self.i += len(w)
            return self.value(_TYPE_WORDS[w])
        if ch == "[":
            return self.array(want)
        if ch in "'\"":
            if want not in (None, "s", "o", "g"):
                raise ValueError("a string is not of type %s" % want)
            return want or "s", self.string()
        self.i += len(w)
        if w in ("true", "false"):
            if want not in (None, "b"):
                raise ValueError("a boolean is not of type %s" % want)
            return "b", w == "true"
        if not w:
            raise ValueError("unexpected %r" % ch)
        if want == "d" or (want is None and any(c in w for c in ".eE") and not w.startswith("0x")):
            try:
                return "d", float(w)
            except ValueError:
                raise ValueError("invalid number %r" % w) from None
        try:
            n = int(w, 0)
        except ValueError:
            raise ValueError("invalid number %r" % w) from None
        sig = want or "i"
        if sig not in _INT_RANGE:
            raise ValueError("a number is not of type %s" % sig)
        lo, hi = _INT_RANGE[sig]
        if not lo <= n <= hi:
            raise ValueError("%s out of range for type %s" % (w, sig))
        return sig, n

    def array(self, want):
        if want is not None and not want.startswith("a"):
            raise ValueError("an array is not of type %s" % want)
        elem = want[1:] if want else None
        self.i += 1
        items = []
        self.ws()
        if self.i < len(self.s) and self.s[self.i] == "]":
            self.i += 1
            if elem is None:
                raise ValueError("cannot infer the type of an empty array")
            return want, b"" if elem == "y" else []
        while True:
            sig, v = self.value(elem)
            if elem is None:
                elem = sig
            elif sig != elem:
                raise ValueError("array elements of different types")
            items.append(v)
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == ",":
                self.i += 1
                continue
            if self.i < len(self.s) and self.s[self.i] == "]":
                self.i += 1
                break
            raise ValueError("expected ',' or ']'")
        return "a" + elem, bytes(items) if elem == "y" else items

    def string(self):
        q = self.s[self.i]
        self.i += 1
        out = []
        while self.i < len(self.s):
            c = self.s[self.i]
            self.i += 1
            if c == q:
                return "".join(out)
            if c == "\\" and self.i < len(self.s):
                e = self.s[self.i]
                self.i += 1
                out.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(e, e))
                continue
            out.append(c)
        raise ValueError("unterminated string")


class _LazyVersion:
    """systemd's version, asked (one more D-Bus round trip) only when a property needs it."""

    def __init__(self, get):
        self.get, self.v = get, None

    def _val(self):
        if self.v is None:
            self.v = self.get()
        return self.v

    def __ge__(self, other):
        return self._val() >= other

    def __lt__(self, other):
        return self._val() < other


# ------------------------------------------------------------------ the manager

class SystemdManager(V2Manager):
    driver = "systemd"

    def __init__(self, container_id, cgroups_path, resources, rootless=False,
                 linux_devices=None, mountinfo=None, annotations=None):
        if rootless:
            raise CgroupError("systemd cgroup driver: rootless containers are not supported "
                              "(no systemd user manager support)")
        self.slice, self.unit, self.name = parse_path(cgroups_path, container_id)
        sliced = expand_slice(self.slice)
        self.extra_props = annotation_props(annotations)
        mp = common.CGROUP_ROOT
        # the unit's cgroup as an absolute fs path: what V2Manager computes its leaf from
        # and what the state record check (cgroups/record.problem) expects
        super().__init__(container_id, os.path.join(sliced, self.unit), resources,
                         linux_devices=linux_devices, mountinfo=mountinfo)
        self.paths[KEY] = common.leaf_dir(mp, mp, [p for p in sliced.split("/") if p] + [self.unit])
        self.mounts[KEY] = mp
        self._fresh = True       # create(): the unit is started by add_pid
        self._apply_pending = False

    def to_state(self):
        d = super().to_state()
        d["unit"], d["slice"], d["name"] = self.unit, self.slice, self.name
        return d

    def _init_from_state(self, d):
        self._fresh = False
        self._apply_pending = False
        self.extra_props = []
        self.slice, self.unit, self.name = d.get("slice"), d.get("unit"), d.get("name")
        if not isinstance(self.unit, str) or not self.unit.endswith((".scope", ".slice")):
            raise CgroupError("cgroup state: invalid systemd unit %r" % (self.unit,))
        _check_unit_name(self.unit)
        want = os.path.join(common.CGROUP_ROOT, expand_slice(str(self.slice)).lstrip("/"), self.unit)
        if self.paths.get(KEY) != os.path.normpath(want):
            raise CgroupError("cgroup state: unit %s does not match path %r" % (self.unit, self.paths.get(KEY)))

    def birth_dir(self):
        return None   # systemd moves the init into the unit it starts for it

    def create(self):
        # systemd makes the directory when the unit starts (add_pid: the init's pid is
        # needed); on record now so that whatever happens next, destroy() removes it
        if self.leaf not in self.created:
            self.created.append(self.leaf)

    def apply(self):
        if self._fresh:
            self._apply_pending = True
            return
        super().apply()

    def add_pid(self, pid):
        if not self._fresh:
            return super().add_pid(pid)   # exec: join the unit's cgroup
        self._start(pid)
        self._fresh = False
        if self._apply_pending:
            self._apply_pending = False
            super().apply()

    def _start(self, pid):
        from pyruntime import sdbus
        with sdbus.Systemd() as sd:
            version = _LazyVersion(sd.version)
            props = [_prop("Description", "s", "libcontainer container %s" % self.name)]
            if self.unit.endswith(".slice"):
                props.append(_prop("Wants", "as", [self.slice]))
            else:
                props.append(_prop("Slice", "s", self.slice))
                props.append(_prop("Delegate", "b", True))
            props.append(_prop("PIDs", "au", [pid]))
            props += [_prop(n, "b", True) for n in ("MemoryAccounting", "CPUAccounting",
                                                    "IOAccounting", "TasksAccounting")]
            props.append(_prop("DefaultDependencies", "b", False))
            props += resource_props(self.resources, self.linux_devices, version)
            props += self.extra_props
            try:
                started = sd.start_transient_unit(self.unit, props)
            except CgroupError as e:
                raise CgroupError('unable to start unit "%s": %s' % (self.unit, e)) from None
        if not os.path.isdir(self.leaf):
            raise CgroupError("systemd unit %s has no cgroup at %s" % (self.unit, self.leaf))
        if not started:   # a unit of that name was there (a leftover): join its cgroup
            super().add_pid(pid)

    def pids(self):
        # systemd removes the unit's cgroup when it stops: a read can race with that
        try:
            return super().pids()
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return []
            raise

    def update(self, resources):
        merged = self.merged(resources)
        from pyruntime import sdbus
        with sdbus.Systemd() as sd:
            props = resource_props(merged, self.linux_devices, _LazyVersion(sd.version),
                                   with_devices=False)
            try:
                sd.set_unit_properties(self.unit, props)
            except CgroupError as e:
                raise CgroupError("unable to set unit properties: %s" % e) from None
        super().update(resources)

    def destroy(self, kill=None, timeout=5.0):
        # the transient scope is named after the container: what is in it is its own,
        # unless teardown found a pid-namespace init that took its processes along
        if kill is None:
            kill = True
        # kill first: stopping a scope with live processes waits for them (SIGTERM, then
        # TimeoutStopSec, 90 s by default) before SIGKILL
        if kill and os.path.isdir(self.leaf):
            deadline = time.monotonic() + timeout
            delay = 0.005
            while self.pids() and time.monotonic() < deadline:
                try:
                    self.kill_all(9)
                except CgroupError:
                    pass
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
        from pyruntime import sdbus
        err = None
        try:
            with sdbus.Systemd() as sd:
                sd.stop_unit(self.unit)
        except CgroupError as e:
            err = e
        busy = super().destroy(kill=kill, timeout=timeout)
        if err is not None and self.pids():
            raise CgroupError("cgroup: stopping unit %s: %s" % (self.unit, err))
        return busy
