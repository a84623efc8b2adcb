"""Compile an OCI `linux.seccomp` object into a classic-BPF seccomp program.

libseccomp (through the cffi module ``pyruntime._seccomp``) builds the filter;
the program is exported as raw ``struct sock_filter`` bytes and handed to the C
executor, which loads it with seccomp(2) and the flags computed here. Nothing
is loaded into the calling process (except by :func:`load_for_test`).

Semantics follow runc's libcontainer/seccomp (1.1/1.2):

* actions: SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD; SCMP_ACT_ERRNO and
  SCMP_ACT_TRACE take ``errnoRet`` (default EPERM); ``defaultErrnoRet``
  applies to the default action. The spec forbids errnoRet on other actions.
* a rule whose action equals the default action is skipped;
* a syscall name libseccomp does not know is skipped (newer profile, older
  library); a name known only on other architectures is added for those;
* args: conditions on distinct argument indexes are ANDed in one rule; if any
  index repeats, every condition becomes a rule of its own (so they are ORed);
* the native architecture is always in the filter, ``architectures`` add to it;
* SCMP_ACT_NOTIFY is refused as default action and on write(2) (the init must
  still write to hand the listener over), and requires ``listenerPath``.
* flags: absent ``flags`` means SECCOMP_FILTER_FLAG_SPEC_ALLOW when the kernel
  has it (runc >= 1.1.x); listed flags must be supported by the kernel, else
  the error names the flag. WAIT_KILLABLE_RECV only means something with a
  listener and is dropped without one (the kernel would refuse the load).
  NEW_LISTENER is added when a rule notifies; TSYNC then needs TSYNC_ESRCH.
* no_new_privs: SCMP_FLTATR_CTL_NNP is off, the executor sets it itself.

-ENOSYS: libseccomp can only give syscalls missing from the profile the default
action, so a syscall newer than the profile would fail with EPERM and callers
(glibc's clone3 -> clone fallback, statx, ...) would not fall back. Like runc,
unless the default action is permissive (ALLOW/LOG/TRACE) or already
ERRNO(ENOSYS), a stub is prepended: per architecture in the filter, a syscall
number above the largest one named anywhere in the profile returns ENOSYS
(x86_64 and x32 are told apart by bit 30). Unlike runc, the native
architecture gets the stub even when ``architectures`` is empty.
SCMP_FLTATR_API_SYSRAWRC is not used: it only changes libseccomp's own load
errors, and this module never calls seccomp_load.
"""
import errno as _errno
from . import oslite as os
import struct

from .errors import SeccompError

# SECCOMP_RET_* action bases (uapi linux/seccomp.h).
_ACTIONS = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
_DATA_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_PERMISSIVE = ("SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")

# enum scmp_compare
_OPS = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}

FLAG_TSYNC = 1 << 0
FLAG_LOG = 1 << 1
FLAG_SPEC_ALLOW = 1 << 2
FLAG_NEW_LISTENER = 1 << 3
FLAG_TSYNC_ESRCH = 1 << 4
FLAG_WAIT_KILLABLE_RECV = 1 << 5

_FLAGS = {
    "SECCOMP_FILTER_FLAG_TSYNC": FLAG_TSYNC,
    "SECCOMP_FILTER_FLAG_LOG": FLAG_LOG,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": FLAG_SPEC_ALLOW,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": FLAG_WAIT_KILLABLE_RECV,
}

# Spec architecture names; the libseccomp name is the suffix in lower case.
_ARCHES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
    "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
)

_AUDIT_ARCH_X86_64 = 0xC000003E
_SCMP_ARCH_X32 = 0x4000003E  # libseccomp's pseudo token; the kernel reports x86_64
_AUDIT_ARCH_S390 = 0x16
_AUDIT_ARCH_S390X = 0x80000016
_X32_SYSCALL_BIT = 0x40000000
_RET_ENOSYS = 0x00050000 | _errno.ENOSYS

_MAX_INSNS = 4096  # BPF_MAXINSNS
_CACHE_FORMAT = b"pyrt-seccomp-cache-1\n"

_lib = None
_ffi = None


def _load():
    global _lib, _ffi
    if _lib is None:
        try:
            from ._seccomp import ffi, lib
        except ImportError as e:
            raise SeccompError("seccomp: libseccomp binding is not built (%s)" % e) from None
        _ffi, _lib = ffi, lib
    return _ffi, _lib


class Program:
    """A compiled filter: what the executor's `seccomp` step needs."""

    __slots__ = ("bpf", "flags", "notify", "listener_path", "listener_metadata")

    def __init__(self, bpf, flags, notify, listener_path="", listener_metadata=""):
        self.bpf = bpf                  # struct sock_filter[] (8 bytes each, native endian)
        self.flags = flags              # SECCOMP_FILTER_FLAG_* for seccomp(SET_MODE_FILTER)
        self.notify = notify            # flags has NEW_LISTENER: the load returns a listener fd
        self.listener_path = listener_path
        self.listener_metadata = listener_metadata

    @property
    def insns(self):
        return len(self.bpf) // 8

    def __repr__(self):
        return "Program(insns=%d, flags=%#x, notify=%r)" % (self.insns, self.flags, self.notify)


def library_version():
    """libseccomp's version, e.g. "2.5.4"."""
    _, lib = _load()
    v = lib.seccomp_version()
    return "%d.%d.%d" % (v.major, v.minor, v.micro)


def _fail(where, msg):
    raise SeccompError("seccomp: %s%s" % (where + ": " if where else "", msg))


def _uint(value, bits):
    return type(value) is int and 0 <= value < (1 << bits)


def _action(name, ret, where, ret_key):
    """SECCOMP_RET_* value for an action name and its optional errnoRet."""
    if not isinstance(name, str) or name not in _ACTIONS:
        _fail(where, "unknown action %s" % (name if isinstance(name, str) else repr(name)))
    base = _ACTIONS[name]
    if name in _DATA_ACTIONS:
        if ret is None:
            ret = _errno.EPERM
        elif not _uint(ret, 16):
            # SECCOMP_RET_DATA is 16 bits; larger values cannot be expressed.
            _fail(where, "%s %r out of range (0-65535)" % (ret_key, ret))
        return base | ret
    if ret is not None:
        _fail(where, "%s is not allowed with action %s" % (ret_key, name))
    return base


def _kernel_flag_ok(lib, bits, cache):
    if bits not in cache:
        cache[bits] = lib.pyrt_seccomp_flag_probe(bits) == 0
    return cache[bits]


def _flags(cfg, notify, lib):
    probed = {}
    flags = 0
    listed = cfg.get("flags")
    if listed is None:
        if _kernel_flag_ok(lib, FLAG_SPEC_ALLOW, probed):
            flags |= FLAG_SPEC_ALLOW
    elif not isinstance(listed, list):
        _fail("flags", "must be a list")
    else:
        for i, name in enumerate(listed):
            where = "flags[%d]" % i
            if not isinstance(name, str) or name not in _FLAGS:
                _fail(where, "unknown flag %r" % (name,))
            bit = _FLAGS[name]
            probe = bit | (FLAG_NEW_LISTENER if bit == FLAG_WAIT_KILLABLE_RECV else 0)
            if not _kernel_flag_ok(lib, probe, probed):
                _fail(where, "%s is not supported by the running kernel" % name)
            flags |= bit
    if notify:
        flags |= FLAG_NEW_LISTENER
        if flags & FLAG_TSYNC:
            if not _kernel_flag_ok(lib, FLAG_TSYNC | FLAG_TSYNC_ESRCH | FLAG_NEW_LISTENER, probed):
                _fail("flags", "SECCOMP_FILTER_FLAG_TSYNC cannot be combined with "
                      "SCMP_ACT_NOTIFY on the running kernel (no TSYNC_ESRCH)")
            flags |= FLAG_TSYNC_ESRCH
    else:
        flags &= ~FLAG_WAIT_KILLABLE_RECV
    return flags


class _Rule:
    __slots__ = ("where", "names", "action", "args")


def _parse(cfg):
    """Validate the config; returns (default action value, [arch names], [_Rule], notify)."""
    if not isinstance(cfg, dict):
        _fail("", "linux.seccomp must be an object")
    if cfg.get("defaultAction") == "SCMP_ACT_NOTIFY":
        _fail("defaultAction", "SCMP_ACT_NOTIFY cannot be used as default action")
    default = _action(cfg.get("defaultAction"), cfg.get("defaultErrnoRet"),
                      "defaultAction", "defaultErrnoRet")

    arches = cfg.get("architectures") or []
    if not isinstance(arches, list):
        _fail("architectures", "must be a list")
    for i, a in enumerate(arches):
        if a not in _ARCHES:
            _fail("architectures[%d]" % i, "unknown architecture %r" % (a,))

    syscalls = cfg.get("syscalls") or []
    if not isinstance(syscalls, list):
        _fail("syscalls", "must be a list")
    rules = []
    notify = False
    for i, sc in enumerate(syscalls):
        where = "syscalls[%d]" % i
        if not isinstance(sc, dict):
            _fail(where, "must be an object")
        names = sc.get("names")
        if not isinstance(names, list) or not names:
            _fail(where, "names must be a non-empty list")
        for j, n in enumerate(names):
            if not isinstance(n, str) or not n:
                _fail(where, "names[%d]: %r is not a syscall name" % (j, n))
        r = _Rule()
        r.where = where
        r.names = names
        r.action = _action(sc.get("action"), sc.get("errnoRet"), where, "errnoRet")
        if sc.get("action") == "SCMP_ACT_NOTIFY":
            notify = True
            if "write" in names:
                _fail(where, "SCMP_ACT_NOTIFY cannot be used for the write syscall")
        args = sc.get("args") or []
        if not isinstance(args, list):
            _fail(where, "args must be a list")
        conds = []
        for k, a in enumerate(args):
            aw = "%s.args[%d]" % (where, k)
            if not isinstance(a, dict):
                _fail(aw, "must be an object")
            idx, op = a.get("index"), a.get("op")
            value, value2 = a.get("value", 0), a.get("valueTwo", 0)
            if not (type(idx) is int and 0 <= idx <= 5):
                _fail(aw, "index %r out of range (0-5)" % (idx,))
            if op not in _OPS:
                _fail(aw, "unknown operator %r" % (op,))
            for key, v in (("value", value), ("valueTwo", value2)):
                if not _uint(v, 64):
                    _fail(aw, "%s %r is not a 64-bit unsigned integer" % (key, v))
            conds.append((idx, _OPS[op], value, value2))
        r.args = conds
        rules.append(r)
    if notify and not cfg.get("listenerPath"):
        _fail("listenerPath", "must be set when a rule uses SCMP_ACT_NOTIFY")
    return default, arches, rules, notify


def _arch_token(lib, name):
    return lib.seccomp_arch_resolve_name(name[len("SCMP_ARCH_"):].lower().encode())


def compile(seccomp_cfg, cache_dir=None):  # noqa: A001 - the documented API name
    """Compile `linux.seccomp` (a dict) into a :class:`Program`.

    With `cache_dir`, the result is stored under a hash of the config, the
    libseccomp version and the kernel, and reused by later calls.
    """
    cfg = seccomp_cfg
    if cache_dir is not None:
        key = _cache_key(cfg)
        hit = _cache_read(cache_dir, key)
        if hit is not None:
            bpf, flags = hit
            return Program(bpf, flags, bool(flags & FLAG_NEW_LISTENER),
                           cfg.get("listenerPath", ""), cfg.get("listenerMetadata", ""))
    default, arches, rules, notify = _parse(cfg)
    ffi, lib = _load()
    flags = _flags(cfg, notify, lib)
    bpf = _build(ffi, lib, cfg, default, arches, rules)
    prog = Program(bpf, flags, notify, cfg.get("listenerPath", ""), cfg.get("listenerMetadata", ""))
    if cache_dir is not None:
        _cache_write(cache_dir, key, bpf, flags)
    return prog


def _check(rc, where, what):
    if rc < 0:
        _fail(where, "%s: %s" % (what, os.strerror(-rc)))


def _build(ffi, lib, cfg, default, arches, rules):
    ctx = lib.seccomp_init(default)
    if ctx == ffi.NULL:
        _fail("defaultAction", "libseccomp rejected action %s" % cfg.get("defaultAction"))
    try:
        # The executor sets no_new_privs itself, when process.noNewPrivileges asks.
        _check(lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_NNP, 0), "", "SCMP_FLTATR_CTL_NNP")
        tokens = [lib.seccomp_arch_native()]
        for i, name in enumerate(arches):
            tok = _arch_token(lib, name)
            if tok == 0:
                _fail("architectures[%d]" % i, "%s is not known to libseccomp %s"
                      % (name, library_version()))
            rc = lib.seccomp_arch_add(ctx, tok)
            if rc == -_errno.EDOM:
                _fail("architectures[%d]" % i, "%s cannot share a filter with the native "
                      "architecture (different byte order)" % name)
            if rc != -_errno.EEXIST:
                _check(rc, "architectures[%d]" % i, "cannot add %s" % name)
            if tok not in tokens:
                tokens.append(tok)
        if sum(len(r.names) for r in rules) > 32:
            # Binary-tree dispatch keeps long profiles from being a linear scan
            # (runc does the same; 2.5.4 misbehaves with it on empty filters).
            lib.seccomp_attr_set(ctx, lib.SCMP_FLTATR_CTL_OPTIMIZE, 2)

        err_none = lib.__NR_SCMP_ERROR
        for r in rules:
            if r.action == default:
                continue
            split = len({c[0] for c in r.args}) != len(r.args)
            groups = [[c] for c in r.args] if split else [r.args]
            cmps = [ffi.new("struct scmp_arg_cmp[]", len(g)) if g else ffi.NULL for g in groups]
            for arr, g in zip(cmps, groups):
                for n, (idx, op, a, b) in enumerate(g):
                    arr[n].arg, arr[n].op, arr[n].datum_a, arr[n].datum_b = idx, op, a, b
            for name in r.names:
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == err_none:
                    continue  # unknown to libseccomp: skipped, as runc does
                for arr, g in zip(cmps, groups):
                    rc = lib.seccomp_rule_add_array(ctx, r.action, nr, len(g), arr)
                    if rc == -_errno.EEXIST:
                        _fail(r.where, "rule for %s conflicts with an earlier rule with the "
                              "same conditions and another action" % name)
                    _check(rc, r.where, "cannot add rule for %s" % name)

        fd = os.memfd_create("pyrt-seccomp", os.MFD_CLOEXEC)
        try:
            _check(lib.seccomp_export_bpf(ctx, fd), "", "exporting the filter")
            size = os.fstat(fd).st_size
            bpf = os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)

    if len(bpf) % 8 or not bpf:
        _fail("", "libseccomp exported a malformed program (%d bytes)" % len(bpf))
    if cfg.get("defaultAction") not in _PERMISSIVE and not (
            default & 0xFFFF0000 == _ACTIONS["SCMP_ACT_ERRNO"]
            and default & 0xFFFF == _errno.ENOSYS):
        bpf = _enosys_stub(lib, tokens, rules) + bpf
    if len(bpf) // 8 > _MAX_INSNS:
        _fail("", "the filter has %d instructions, more than the kernel's %d"
              % (len(bpf) // 8, _MAX_INSNS))
    return bpf


# --- the -ENOSYS stub --------------------------------------------------------

_LD_ABS = 0x20   # BPF_LD | BPF_W | BPF_ABS
_JA = 0x05       # BPF_JMP | BPF_JA
_JEQ = 0x15      # BPF_JMP | BPF_JEQ | BPF_K
_JGT = 0x25      # BPF_JMP | BPF_JGT | BPF_K
_JSET = 0x45     # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06      # BPF_RET | BPF_K


def _assemble(code):
    """Resolve labels: `code` holds ("label", name) markers and (op, jt, jf, k)
    tuples whose jt/jf (and k for ja) may be label names; None means next."""
    pos, n = {}, 0
    for ins in code:
        if ins[0] == "label":
            pos[ins[1]] = n
        else:
            n += 1
    out, n = [], 0
    for ins in code:
        if ins[0] == "label":
            continue
        op, jt, jf, k = ins

        def rel(target, here=n):
            if target is None:
                return 0
            off = pos[target] - here - 1
            if not 0 <= off <= 255:
                raise AssertionError("stub jump out of range")
            return off

        if op == _JA:
            k = pos[k] - n - 1
        out.append(struct.pack("=HBBI", op, rel(jt), rel(jf), k))
        n += 1
    return b"".join(out)


def _enosys_stub(lib, tokens, rules):
    names = {n for r in rules for n in r.names}
    # audit arch -> {scmp token: largest syscall number named in the profile}
    largest = {}
    for tok in tokens:
        audit = _AUDIT_ARCH_X86_64 if tok == _SCMP_ARCH_X32 else tok
        best = -1
        for n in names:
            nr = lib.seccomp_syscall_resolve_name_arch(tok, n.encode())
            if nr > best:
                best = nr
        if best >= 0:
            largest.setdefault(audit, {})[tok] = best
    if not largest:
        return b""

    code = [(_LD_ABS, None, None, 4)]  # seccomp_data.arch
    for i, (audit, maxes) in enumerate(sorted(largest.items())):
        nxt = "arch%d" % (i + 1)
        code.append((_JEQ, None, nxt, audit))
        code.append((_LD_ABS, None, None, 0))  # seccomp_data.nr
        if audit in (_AUDIT_ARCH_S390, _AUDIT_ARCH_S390X):
            # setup(2) = 0 multiplexes syscall numbers the kernel does not know.
            code.append((_JEQ, "enosys", None, 0))
        if audit == _AUDIT_ARCH_X86_64:
            x64, x32 = maxes.get(_AUDIT_ARCH_X86_64), maxes.get(_SCMP_ARCH_X32)
            lx32 = "x32_%d" % i
            # bit 30 set: an x32 syscall; let the filter's own x32 handling see
            # it unless x32 is in the profile.
            code.append((_JSET, lx32 if x32 is not None else "filter", None, _X32_SYSCALL_BIT))
            if x64 is not None:
                code.append((_JGT, "enosys", "filter", x64))
            else:
                code.append((_JA, None, None, "filter"))
            code.append(("label", lx32))
            if x32 is not None:
                code.append((_JGT, "enosys", "filter", x32))
        else:
            (mx,) = maxes.values()
            code.append((_JGT, "enosys", "filter", mx))
        code.append(("label", nxt))
    code.append((_JA, None, None, "filter"))
    code.append(("label", "enosys"))
    code.append((_RET, None, None, _RET_ENOSYS))
    code.append(("label", "filter"))
    return _assemble(code)


# --- cache -------------------------------------------------------------------

def _sha256(data):
    # The builtin module avoids hashlib's OpenSSL import (~1.5 ms at start-up).
    try:
        from _sha256 import sha256
    except ImportError:
        from hashlib import sha256
    return sha256(data)


def _cache_key(cfg):
    import json

    try:
        canon = json.dumps(cfg, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise SeccompError("seccomp: config is not plain JSON data: %s" % e) from None
    u = os.uname()
    h = _sha256(_CACHE_FORMAT)
    for part in (canon, library_version(), u.machine, u.release):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def _cache_read(cache_dir, key):
    try:
        with open(os.path.join(cache_dir, key + ".bpf"), "rb") as f:
            data = f.read()
    except OSError:
        return None
    head, sep, bpf = data.partition(b"\n\n")
    lines = head.split(b"\n")
    if not sep or len(lines) != 2 or lines[0] + b"\n" != _CACHE_FORMAT:
        return None
    try:
        flags = int(lines[1])
    except ValueError:
        return None
    if not bpf or len(bpf) % 8 or len(bpf) // 8 > _MAX_INSNS:
        # what compile() would never have written: compiled again
        return None
    return bpf, flags


def _cache_write(cache_dir, key, bpf, flags):
    # Best effort: a cache that cannot be written just means compiling again.
    tmp = None
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        path = os.path.join(cache_dir, key + ".bpf")
        tmp = "%s.%d.tmp" % (path, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _CACHE_FORMAT + b"%d\n\n" % flags + bpf)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
    except OSError:
        pass
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


# --- support queries and test loading ---------------------------------------

def features():
    """The `linux.seccomp` part of `features` output (runtime-spec features.md)."""
    _, lib = _load()
    probed = {}
    known = sorted(_FLAGS)
    supported = [n for n in known if _kernel_flag_ok(
        lib, _FLAGS[n] | (FLAG_NEW_LISTENER if _FLAGS[n] == FLAG_WAIT_KILLABLE_RECV else 0), probed)]
    return {
        "enabled": True,
        "actions": sorted(_ACTIONS),
        "operators": sorted(_OPS),
        "archs": [a for a in _ARCHES if _arch_token(lib, a) != 0],
        "knownFlags": known,
        "supportedFlags": supported,
    }


def load_for_test(prog, set_nnp=True):
    """Load `prog` into the calling thread, as the executor would. Tests only:
    call it in a forked child. Returns the listener fd for notify programs."""
    ffi, lib = _load()
    buf = ffi.from_buffer(prog.bpf)
    rc = lib.pyrt_seccomp_load(buf, len(prog.bpf) // 8, prog.flags, 1 if set_nnp else 0)
    if rc < 0:
        raise OSError(-rc, "seccomp(SECCOMP_SET_MODE_FILTER): " + os.strerror(-rc))
    return rc if prog.notify else None


# --- seccomp notify: hand the listener to the agent --------------------------

def send_listener(seccomp_cfg, fd, state_dict):
    """Send the notify fd to ``listenerPath`` (runtime-spec config-linux.md,
    "seccomp" / runtime.md): one message on a unix stream socket whose payload is
    the containerProcessState JSON and whose SCM_RIGHTS carry the fds named in
    its "fds" list (here only the listener, "seccompFd")."""
    import json
    import socket

    from . import OCI_VERSION

    path = seccomp_cfg.get("listenerPath") or ""
    if not path:
        raise SeccompError("seccomp: a notify listener was created but listenerPath is empty")
    msg = json.dumps({
        "ociVersion": OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": state_dict.get("pid", 0),
        "metadata": seccomp_cfg.get("listenerMetadata") or "",
        "state": state_dict,
    }).encode()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        s.connect(path)
        s.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
    except OSError as e:
        from .errors import strerror
        raise SeccompError("seccomp: cannot send the notify fd to %s: %s"
                           % (path, strerror(e.errno) if e.errno else e)) from None
    finally:
        s.close()
