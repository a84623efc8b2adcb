"""Device access rules: runc's semantics for linux.resources.devices.

Rules are first replayed through an emulator of the v1 devices controller (the
same model runc uses), which gives v1 and v2 the same behaviour: on v1 the
emulator computes the minimal allow/deny writes from devices.list to the target,
on v2 the emulated final state is compiled into a BPF_PROG_TYPE_CGROUP_DEVICE
program (attached with BPF_F_ALLOW_MULTI; the previous one is detached)."""

from .. import oslite as os

from pyruntime.errors import CgroupError, strerror

KEY = "linux.resources.devices"
WILD = -1

# runc appends these to every container's rules (specconv AllowedDevices);
# entries with a path are dropped when linux.devices lists the same path.
DEFAULT_ALLOWED = [
    (None, "c", WILD, WILD, "m"),
    (None, "b", WILD, WILD, "m"),
    ("/dev/null", "c", 1, 3, "rwm"),
    ("/dev/random", "c", 1, 8, "rwm"),
    ("/dev/full", "c", 1, 7, "rwm"),
    ("/dev/tty", "c", 5, 0, "rwm"),
    ("/dev/zero", "c", 1, 5, "rwm"),
    ("/dev/urandom", "c", 1, 9, "rwm"),
    (None, "c", 136, WILD, "rwm"),
    (None, "c", 5, 2, "rwm"),
    # runc 1.1 still allows tun/tap (dropped in 1.2); kept for 1.1 parity
    (None, "c", 10, 200, "rwm"),
]


def _perms(s):
    return "".join(c for c in "rwm" if c in s)


def normalize(spec_rules, linux_devices=None):
    """spec rules (+ runc's defaults) -> [(allow, type, major, minor, perms)]."""
    out = []
    for i, d in enumerate(spec_rules or []):
        t = d.get("type") or "a"
        if t not in ("a", "b", "c"):
            raise CgroupError(f"cgroup: invalid device type {t!r} ({KEY}[{i}].type)")
        access = d.get("access") or ""
        if not access:
            raise CgroupError(f"cgroup: device access at {i} field cannot be empty ({KEY}[{i}].access)")
        if set(access) - set("rwm"):
            raise CgroupError(f"cgroup: invalid device access {access!r} ({KEY}[{i}].access)")
        major = d.get("major")
        minor = d.get("minor")
        out.append((bool(d.get("allow")), t,
                    WILD if major is None else int(major),
                    WILD if minor is None else int(minor), _perms(access)))
    spec_paths = {d.get("path") for d in (linux_devices or [])}
    for path, t, major, minor, perms in DEFAULT_ALLOWED:
        if path is not None and path in spec_paths:
            continue
        out.append((True, t, major, minor, perms))
    return out


def rule_string(t, major, minor, perms):
    m = "*" if major == WILD else str(major)
    n = "*" if minor == WILD else str(minor)
    return f"{t} {m}:{n} {perms}"


class Emulator:
    """Model of the v1 devices controller: a default policy plus exceptions."""

    def __init__(self, default_allow=False):
        self.default_allow = default_allow
        self.rules = {}  # (type, major, minor) -> perms

    @classmethod
    def build(cls, rules):
        emu = cls(False)  # a new rule set starts as an allow-list
        for r in rules:
            emu.apply(*r)
        return emu

    @classmethod
    def from_list(cls, text):
        """Parse devices.list. 'a *:* rwm' alone means deny-list (allow all)."""
        lines = [l.split() for l in text.splitlines() if l.strip()]
        if len(lines) == 1 and lines[0] == ["a", "*:*", "rwm"]:
            return cls(True)
        emu = cls(False)
        for t, mm, perms in lines:
            ma, _, mi = mm.partition(":")
            emu._add((t, WILD if ma == "*" else int(ma), WILD if mi == "*" else int(mi)), perms)
        return emu

    def apply(self, allow, t, major, minor, perms):
        if t == "a":
            self.default_allow = allow
            self.rules = {}
            return
        meta = (t, major, minor)
        if allow == self.default_allow:
            self._rm(meta, perms)
        else:
            self._add(meta, perms)

    def _add(self, meta, perms):
        self.rules[meta] = _perms(self.rules.get(meta, "") + perms)

    def _rm(self, meta, perms):
        t, major, minor = meta
        # cgroup v1 silently ignores removing part of a wildcard exception;
        # refuse instead of giving a false sense of security (as runc does).
        for partial in ((t, WILD, minor), (t, major, WILD), (t, WILD, WILD)):
            if partial == meta:
                continue
            if set(self.rules.get(partial, "")) & set(perms):
                raise CgroupError(
                    f"cgroup: devices: rule {rule_string(t, major, minor, perms)} cannot punch a hole "
                    f"in wildcard rule {rule_string(*partial, self.rules[partial])} ({KEY})")
        left = _perms(set(self.rules.get(meta, "")) - set(perms))
        if left:
            self.rules[meta] = left
        else:
            self.rules.pop(meta, None)

    def ordered(self):
        return sorted(self.rules.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2]))

    def transition(self, target):
        """Writes (allow, rule string) that turn self into target."""
        out = []
        old = self.rules
        # devices.list cannot show deny exceptions of an allow-all cgroup, so a
        # deny-list source always needs the disruptive reset too.
        if self.default_allow or self.default_allow != target.default_allow:
            out.append((target.default_allow, "a *:* rwm"))
            old = {}
        for meta, perms in sorted(old.items()):
            dropped = _perms(set(perms) - set(target.rules.get(meta, "")))
            if dropped:
                out.append((target.default_allow, rule_string(*meta, dropped)))
        # in the listed order (the spec: "MUST apply entries in the listed order"; v1's
        # devices.list shows them so)
        for meta, perms in target.rules.items():
            gained = _perms(set(perms) - set(old.get(meta, "")))
            if gained:
                out.append((not target.default_allow, rule_string(*meta, gained)))
        return out

    def __eq__(self, other):
        return self.default_allow == other.default_allow and self.rules == other.rules


def apply_v1(path, rules):
    from pyruntime.cgroups.common import read_file, write_file
    target = Emulator.build(rules)
    current = Emulator.from_list(read_file(path, "devices.list"))
    for allow, s in current.transition(target):
        write_file(path, "devices.allow" if allow else "devices.deny", s, KEY)
    after = Emulator.from_list(read_file(path, "devices.list"))
    if target.default_allow != after.default_allow or (not target.default_allow and after != target):
        raise CgroupError(f"cgroup: devices.list: resulting devices cgroup doesn't match target ({KEY})")


# ---------------------------------------------------------------- cgroup v2: eBPF

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2
BPF_PROG_LOAD, BPF_PROG_ATTACH, BPF_PROG_DETACH = 5, 8, 9
BPF_PROG_GET_FD_BY_ID, BPF_PROG_QUERY = 13, 16
_ACC = {"m": 1, "r": 2, "w": 4}
_DEVTYPE = {"b": 1, "c": 2}


def _insn(code, dst=0, src=0, off=0, imm=0):
    import struct
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def compile_program(rules):
    """Rules -> eBPF bytecode (bytes). The program reads bpf_cgroup_dev_ctx
    {u32 access_type (access << 16 | type); u32 major; u32 minor} and returns
    1 (allow) or 0 (deny)."""
    emu = Emulator.build(rules)
    LDXW, AND32, RSH32, MOV32X, JNEK, JNEX, MOV64K, EXIT = 0x61, 0x54, 0x74, 0xbc, 0x55, 0x5d, 0xb7, 0x95
    prog = [
        _insn(LDXW, 2, 1, 0), _insn(AND32, 2, imm=0xFFFF),   # r2 = type
        _insn(LDXW, 3, 1, 0), _insn(RSH32, 3, imm=16),       # r3 = access
        _insn(LDXW, 4, 1, 4),                                # r4 = major
        _insn(LDXW, 5, 1, 8),                                # r5 = minor
    ]
    action = 0 if emu.default_allow else 1  # exceptions invert the default
    for (t, major, minor), perms in emu.ordered():
        block = []  # (code, dst, src, imm) ; jumps get "next" offsets below
        block.append(("j", JNEK, 2, 0, _DEVTYPE[t]))
        if perms != "rwm":
            acc = sum(_ACC[c] for c in perms)
            block.append(("i", MOV32X, 1, 3, 0))
            block.append(("i", AND32, 1, 0, acc))
            block.append(("j", JNEX, 1, 3, 0))   # requested access not a subset
        if major != WILD:
            block.append(("j", JNEK, 4, 0, major))
        if minor != WILD:
            block.append(("j", JNEK, 5, 0, minor))
        block.append(("i", MOV64K, 0, 0, action))
        block.append(("i", EXIT, 0, 0, 0))
        n = len(block)
        for i, (kind, code, dst, src, imm) in enumerate(block):
            prog.append(_insn(code, dst, src, n - i - 1 if kind == "j" else 0, imm))
    prog.append(_insn(MOV64K, 0, imm=1 if emu.default_allow else 0))
    prog.append(_insn(EXIT))
    return b"".join(prog)


class _Bpf:
    def __init__(self):
        import ctypes
        self.ct = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        # os.uname(), not platform.machine(): platform imports re, enum and collections
        # (create on cgroup v2 paid them on every container)
        self.nr = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351,
                   "riscv64": 280, "i686": 357}.get(os.uname().machine, 321)

    def call(self, cmd, attr):
        ct = self.ct
        buf = ct.create_string_buffer(bytes(attr), 128)
        rc = self.libc.syscall(self.nr, cmd, buf, 128)
        if rc < 0:
            e = ct.get_errno()
            raise OSError(e, os.strerror(e))
        return rc, buf.raw


def _bpf_err(what, e):
    return CgroupError(f"cgroup: bpf {what}: {strerror(e.errno)} ({KEY})")


def apply_v2(path, rules):
    """Load the device program and attach it to the cgroup dir, replacing ours."""
    import struct
    prog = compile_program(rules)
    b = _Bpf()
    ct = b.ct
    insns = ct.create_string_buffer(prog, len(prog))
    lic = ct.create_string_buffer(b"Apache")
    log = ct.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQ", BPF_PROG_TYPE_CGROUP_DEVICE, len(prog) // 8,
                       ct.addressof(insns), ct.addressof(lic), 1, len(log), ct.addressof(log))
    try:
        pfd, _ = b.call(BPF_PROG_LOAD, attr)
    except OSError as e:
        raise _bpf_err("prog load", e) from None
    try:
        cgfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        os.close(pfd)
        raise CgroupError(f"cgroup: {path}: open: {strerror(e.errno)} ({KEY})") from None
    try:
        old = _attached(b, cgfd)
        try:
            b.call(BPF_PROG_ATTACH, struct.pack("<IIII", cgfd, pfd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI))
        except OSError as e:
            raise _bpf_err("prog attach", e) from None
        # the new program is in force: the old ones only add restrictions now
        for ofd in old:
            try:
                b.call(BPF_PROG_DETACH, struct.pack("<IIII", cgfd, ofd, BPF_CGROUP_DEVICE, 0))
            except OSError as e:
                raise _bpf_err("prog detach", e) from None
            finally:
                os.close(ofd)
    finally:
        os.close(cgfd)
        os.close(pfd)  # the attachment keeps the program alive


def _attached(b, cgfd):
    """fds of the device programs attached directly to the cgroup."""
    import struct
    ct = b.ct
    ids = (ct.c_uint32 * 64)()
    attr = struct.pack("<IIIIQI", cgfd, BPF_CGROUP_DEVICE, 0, 0, ct.addressof(ids), 64)
    try:
        _, raw = b.call(BPF_PROG_QUERY, attr)
    except OSError as e:
        raise _bpf_err("prog query", e) from None
    cnt = struct.unpack_from("<I", raw, 24)[0]
    fds = []
    for pid in list(ids)[:cnt]:
        try:
            fd, _ = b.call(BPF_PROG_GET_FD_BY_ID, struct.pack("<III", pid, 0, 0))
            fds.append(fd)
        except OSError:
            pass  # detached meanwhile
    return fds


def attached_count(path):
    """Number of device programs attached to the cgroup dir (for tests)."""
    b = _Bpf()
    cgfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fds = _attached(b, cgfd)
        for fd in fds:
            os.close(fd)
        return len(fds)
    finally:
        os.close(cgfd)
