"""Load and validate a bundle's config.json.

``load(bundle)`` returns the parsed config as a plain dict, plus private keys:

* ``_bundle``   absolute path of the bundle directory,
* ``_rootfs``   absolute, symlink-free path of the root filesystem,
* ``_warnings`` list of one-line warnings (deprecated but accepted settings).

Validation has two parts:

1. The project's JSON schema (``pyruntime/schema/config-schema.json``): unknown
   properties are ignored, unknown values of known enumerated fields are rejected.
   jsonschema costs ~100 ms to import, which every ``create`` would pay, so a
   successful schema check is remembered in ``cache_dir`` (a file holding the
   config's exact bytes, named by the schema file's identity and the config's
   length) and the import stays lazy: a cache hit never imports jsonschema. A hit
   is a byte-for-byte match, so no digest is needed: hashing touched interpreter
   code nothing else on the create path uses (~60 KiB of peak RSS per create).
2. Semantic checks modelled on runc's spec conversion and
   libcontainer/configs/validate, with runc's messages where runc has one.
   They depend on the host (rootfs, namespace paths), so they always run; they
   are plain Python and cost well under a millisecond.

Every failure raises :class:`pyruntime.errors.ConfigError` with a one-line message.
"""

from . import oslite as os

from . import fastjson

from .errors import ConfigError

CONFIG_NAME = "config.json"
SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema",
                           "config-schema.json")

HOOK_KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop")

# Bound on cached validations: engines give every container a distinct config
# (cgroupsPath, annotations), so without pruning the cache would only grow.
CACHE_MAX_ENTRIES = 256

_validator = None
_schema_stamp = None


# ---------------------------------------------------------------- loading

def load(bundle_dir, *, cache_dir=None, require_process=True):
    """Read, validate and normalise ``<bundle_dir>/config.json``."""
    bundle = os.path.abspath(bundle_dir)
    raw = _read(os.path.join(bundle, CONFIG_NAME))
    spec = parse(raw)
    check_schema(spec, raw=raw, cache_dir=cache_dir)
    warnings = check_semantics(spec, bundle, require_process=require_process)
    spec["_bundle"] = bundle
    spec["_rootfs"] = _rootfs_path(spec, bundle)
    spec["_warnings"] = warnings
    return spec


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        bundle = os.path.dirname(path)
        if not os.path.isdir(bundle):
            # runc changes into the bundle first and says so
            raise ConfigError("chdir %s: no such file or directory" % bundle) from None
        # runc's wording, so engines that match on it keep working.
        raise ConfigError("JSON specification file config.json not found") from None
    except NotADirectoryError:
        raise ConfigError("chdir %s: not a directory" % os.path.dirname(path)) from None
    except IsADirectoryError:
        raise ConfigError("read config.json: is a directory") from None
    except OSError as e:
        raise ConfigError(f"open config.json: {_errstr(e)}") from None


def parse(raw):
    """bytes -> object, with a positioned one-line error for bad JSON."""
    try:
        return fastjson.loads(raw)
    except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        if hasattr(e, "lineno"):
            raise ConfigError(f"config.json: invalid JSON at line {e.lineno}, column {e.colno}: "
                              f"{e.msg}") from None
        raise ConfigError(f"config.json: invalid JSON: {e}") from None
    except RecursionError:
        raise ConfigError("config.json: invalid JSON: nested too deeply") from None


def _errstr(e):
    from .errors import strerror
    return strerror(e)


# ---------------------------------------------------------------- schema

def schema_stamp():
    """The schema file's identity (size, mtime): a cached success is for this schema only."""
    global _schema_stamp
    if _schema_stamp is None:
        st = os.stat(SCHEMA_PATH)
        _schema_stamp = "%x.%x" % (st.st_size, st.st_mtime_ns)
    return _schema_stamp


def _get_validator():
    global _validator
    if _validator is None:
        import jsonschema  # lazy: the expensive import, skipped on cache hits

        with open(SCHEMA_PATH, "rb") as f:
            schema = fastjson.loads(f.read())
        cls = jsonschema.validators.validator_for(schema)
        _validator = cls(schema)
    return _validator


_checker = None


def _fast_valid(spec):
    """The common case without importing jsonschema (see pyruntime.schemacheck); a
    config it rejects goes to jsonschema, whose message names the JSON path."""
    global _checker
    from . import schemacheck
    if _checker is None:
        with open(SCHEMA_PATH, "rb") as f:
            schema = fastjson.loads(f.read())
        try:
            _checker = schemacheck.Checker(schema)
        except schemacheck._Unsupported:
            _checker = False
    if _checker is False:
        return False
    try:
        return _checker.valid(spec)
    except RecursionError:
        return False


def check_schema(spec, *, raw=None, cache_dir=None):
    """Validate ``spec`` against our schema; raise ConfigError naming the JSON path.

    With ``cache_dir`` and ``raw`` (the exact bytes ``spec`` was parsed from) a
    previous success for the same bytes and schema is reused.
    """
    key = None
    if cache_dir is not None and raw is not None:
        # configs of one length share an entry; only the same bytes are a hit
        key = "%s-%d" % (schema_stamp(), len(raw))
        if _cached(os.path.join(cache_dir, key), raw):
            return
    if _fast_valid(spec):
        if key is not None:
            _remember(cache_dir, key, raw)
        return
    v = _get_validator()
    err = _first_error(v, spec)
    if err is not None:
        raise ConfigError(f"config.json: {err}")
    if key is not None:
        _remember(cache_dir, key, raw)


def _cached(path, raw):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        return os.read(fd, len(raw) + 1) == raw
    except OSError:
        return False
    finally:
        os.close(fd)


def _first_error(v, spec):
    from jsonschema.exceptions import best_match

    e = best_match(v.iter_errors(spec))
    if e is None:
        return None
    msg = e.message
    path = list(e.absolute_path)
    if path == ["ociVersion"] and e.validator == "pattern":
        msg = f"{e.instance!r} is not a 1.x SemVer version"
    elif e.validator == "enum" and len(e.validator_value) > 12:
        vals = e.validator_value
        msg = (f"{e.instance!r} is not one of [{', '.join(map(repr, vals[:4]))}, ..., "
               f"{vals[-1]!r}] ({len(vals)} allowed values)")
    if len(msg) > 300:
        msg = msg[:297] + "..."
    path = json_path(path)
    return f"{path}: {msg}" if path else msg


def json_path(parts):
    """('linux', 'namespaces', 0, 'type') -> 'linux.namespaces[0].type'."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif p.isidentifier():
            out += f".{p}" if out else p
        else:
            out += f"[{fastjson.dumps(p)}]"
    return out


def _remember(cache_dir, key, raw):
    # Best effort: a cache that cannot be written only costs speed. Written whole under
    # a temporary name and renamed: a reader never sees a torn entry.
    from .state import replace_file
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        replace_file(os.path.join(cache_dir, key), raw,
                     tmp=os.path.join(cache_dir, ".%s.%d" % (key, os.getpid())))
        names = os.listdir(cache_dir)
        if len(names) > CACHE_MAX_ENTRIES:
            _prune(cache_dir, names)
    except OSError:
        pass


def _prune(cache_dir, names):
    aged = []
    for n in names:
        try:
            aged.append((os.stat(os.path.join(cache_dir, n)).st_mtime, n))
        except OSError:
            pass
    aged.sort()
    for _, n in aged[: len(aged) - CACHE_MAX_ENTRIES // 2]:
        try:
            os.unlink(os.path.join(cache_dir, n))
        except OSError:
            pass


# ---------------------------------------------------------------- semantics

# sysctls that live in the IPC namespace (runc's list), plus fs.mqueue.*.
_IPC_SYSCTLS = frozenset({
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
    "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
})


def _rootfs_path(spec, bundle):
    # Relative to the bundle's physical path (runc chdirs into the bundle and
    # uses getcwd), so a bundle reached through a symlink is fine.
    p = spec["root"]["path"]
    return os.path.normpath(os.path.join(os.path.realpath(bundle), p))


def check_semantics(spec, bundle, *, require_process=True):
    """Checks the schema cannot express; ``spec`` must already be schema-valid.

    Returns a list of warnings (accepted but deprecated settings)."""
    warnings = []
    _check_process(spec, require_process)
    _check_root(spec, bundle)
    linux = spec.get("linux") or {}
    ns = _check_namespaces(linux)
    _check_ids(linux, ns)
    _check_uts(spec, ns)
    if (linux.get("maskedPaths") or linux.get("readonlyPaths")) and "mount" not in ns:
        raise ConfigError("unable to restrict sys entries without a private MNT namespace")
    if "\0" in (linux.get("cgroupsPath") or ""):
        # the kernel's path calls cannot take it; say which field, not which syscall
        raise ConfigError("linux.cgroupsPath: invalid path: contains a NUL byte")
    _check_kernel_ns(linux, ns)
    _check_sysctl(linux, ns)
    _check_intelrdt(linux)
    _check_oci13(spec, linux, ns)
    _check_mounts(spec, linux, ns, warnings)
    _check_seccomp(linux)
    _check_hooks(spec)
    return warnings


def _check_process(spec, require_process):
    proc = spec.get("process")
    if proc is None:
        if require_process:
            raise ConfigError("process property must not be empty")
        return
    cwd = proc.get("cwd", "")
    if cwd == "":
        raise ConfigError("Cwd property must not be empty")
    if not cwd.startswith("/"):
        raise ConfigError("Cwd must be an absolute path")
    if not proc.get("args"):
        raise ConfigError("args must not be empty")
    label = proc.get("selinuxLabel")
    if label and not os.path.exists("/sys/fs/selinux/enforce"):
        raise ConfigError("selinux label is specified in config, but selinux is disabled "
                          "or not supported")
    from .procspec import env_error
    bad = env_error(proc.get("env"))
    if bad is not None:
        raise ConfigError("unable to start container process: error during container init: "
                          + bad)
    seen = set()
    for rl in proc.get("rlimits", []):
        if rl["type"] in seen:
            raise ConfigError(f"rlimit {rl['type']} is specified more than once")
        seen.add(rl["type"])
        if rl["soft"] > rl["hard"]:
            raise ConfigError(f"rlimit {rl['type']}: soft limit {rl['soft']} is greater than "
                              f"hard limit {rl['hard']}")
    _check_scheduler(proc.get("scheduler"))


def _check_scheduler(s):
    if not s:
        return
    nice = s.get("nice", 0)
    if nice < -20 or nice > 19:
        raise ConfigError(f"invalid scheduler.nice: {nice}")
    policy = s["policy"]
    if s.get("priority", 0) != 0 and policy not in ("SCHED_FIFO", "SCHED_RR"):
        raise ConfigError("scheduler.priority can only be specified for SchedFIFO or "
                          "SchedRR policy")
    if policy != "SCHED_DEADLINE" and any(s.get(k, 0) for k in ("runtime", "deadline", "period")):
        raise ConfigError("scheduler runtime/deadline/period can only be specified for "
                          "SchedDeadline policy")


def _check_root(spec, bundle):
    root = spec.get("root")
    if root is None:
        raise ConfigError("root must be specified")
    rootfs = _rootfs_path(spec, bundle)
    try:
        st = os.stat(rootfs)
    except OSError as e:
        raise ConfigError(f"invalid rootfs: stat {rootfs}: {_errstr(e)}") from None
    # Like runc: the configured path must already be the canonical one, so the
    # rootfs cannot be redirected by a symlink swapped in later.
    if os.path.realpath(rootfs) != rootfs:
        raise ConfigError("invalid rootfs: not an absolute path, or a symlink")
    import stat as _stat

    if not _stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"invalid rootfs: {rootfs}: not a directory")


def _check_namespaces(linux):
    ns = {}
    for entry in linux.get("namespaces", []):
        t, p = entry["type"], entry.get("path", "")
        if t in ns:
            raise ConfigError(f"malformed spec file: duplicated ns {{{fastjson.dumps(t)} "
                              f"{fastjson.dumps(p)}}}")
        if p and not p.startswith("/"):
            raise ConfigError(f"namespace {t}: path {p!r} is not an absolute path")
        ns[t] = p
    return ns


def _check_ids(linux, ns):
    uids, gids = linux.get("uidMappings"), linux.get("gidMappings")
    if "user" not in ns:
        if uids is not None or gids is not None:
            raise ConfigError("User namespace mappings specified, but USER namespace isn't "
                              "enabled in the config")
        return
    if not os.path.exists("/proc/self/ns/user"):
        raise ConfigError("USER namespaces aren't enabled in the kernel")
    # A joined user namespace already has its mappings; a new one needs them.
    if ns["user"] == "":
        if not uids:
            raise ConfigError("User namespaces enabled, but no uid mappings found.")
        if not gids:
            raise ConfigError("User namespaces enabled, but no gid mappings found.")


def _check_uts(spec, ns):
    if spec.get("hostname") and "uts" not in ns:
        raise ConfigError("unable to set hostname without a private UTS namespace")
    if spec.get("domainname") and "uts" not in ns:
        raise ConfigError("unable to set domainname without a private UTS namespace")


def _check_kernel_ns(linux, ns):
    if "cgroup" in ns and not os.path.exists("/proc/self/ns/cgroup"):
        raise ConfigError("cgroup namespaces aren't enabled in the kernel")
    if "time" in ns:
        if not os.path.exists("/proc/self/timens_offsets"):
            raise ConfigError("time namespaces aren't enabled in the kernel")
    elif linux.get("timeOffsets") is not None:
        raise ConfigError("time namespace offsets specified, but time namespace isn't "
                          "enabled in the config")


def _sysctl_dots(key):
    # sysctl(8) also accepts '/' as the separator ("net/ipv4/conf/eth0.100/rp_filter");
    # swap the two when the first separator is a '/'.
    for ch in key:
        if ch == ".":
            return key
        if ch == "/":
            return key.translate(str.maketrans("./", "/."))
    return key


def _check_sysctl(linux, ns):
    hostnet = None
    for raw_key in linux.get("sysctl", {}):
        s = _sysctl_dots(raw_key)
        if s in _IPC_SYSCTLS or s.startswith("fs.mqueue."):
            if "ipc" not in ns:
                raise ConfigError(f'sysctl "{s}" is not allowed in the hosts ipc namespace')
            continue
        if s.startswith("net."):
            if hostnet is None:
                hostnet = _is_host_netns(ns)
            if hostnet:
                raise ConfigError(f'sysctl "{s}" not allowed in host network namespace')
            continue
        if "uts" in ns:
            if s == "kernel.domainname":
                continue
            if s == "kernel.hostname":
                raise ConfigError(f'sysctl "{s}" is not allowed as it conflicts with the OCI '
                                  f'"hostname" field')
        raise ConfigError(f'sysctl "{s}" is not in a separate kernel namespace')


def _is_host_netns(ns):
    if "network" not in ns:
        return True
    path = ns["network"]
    if not path:
        return False
    try:
        a = os.stat("/proc/self/ns/net")
        b = os.stat(path)
    except OSError as e:
        raise ConfigError(f"invalid netns path: stat {e.filename}: {_errstr(e)}") from None
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _check_oci13(spec, linux, ns):
    """netDevices, memoryPolicy, personality, scheduler/ioPriority/execCPUAffinity values
    the schema lets through but the kernel would refuse (plan.py encodes them)."""
    if linux.get("netDevices"):
        from . import netdev
        netdev.validate(linux, ns)
        if _is_host_netns(ns):
            raise ConfigError("linux.netDevices: needs a network namespace other than the host's")
    proc = spec.get("process") or {}
    if any(linux.get(k) for k in ("memoryPolicy", "personality")) or any(
            proc.get(k) for k in ("scheduler", "ioPriority", "execCPUAffinity")):
        from . import plan
        plan.attribute_steps(proc, linux)
        for k in ("initial", "final"):
            v = (proc.get("execCPUAffinity") or {}).get(k)
            if v:
                plan.cpu_mask(v, "process.execCPUAffinity." + k)


def _check_intelrdt(linux):
    rdt = linux.get("intelRdt")
    if rdt is None:
        return
    clos = rdt.get("closID", "")
    if clos in (".", "..") or "/" in clos:
        raise ConfigError(f"invalid intelRdt.ClosID {fastjson.dumps(clos)}")


def _check_mounts(spec, linux, ns, warnings):
    for i, m in enumerate(spec.get("mounts", [])):
        dest = m["destination"]
        if not dest.startswith("/"):
            # Allowed by the spec (deprecated, relative to "/"); runc warns too.
            warnings.append(f"mount destination {dest} is not absolute. Support for "
                            f"non-absolute mount destinations will be removed in a future "
                            f"release.")
        opts = m.get("options", [])
        has_u, has_g = "uidMappings" in m, "gidMappings" in m
        idmap_opt = "idmap" in opts or "ridmap" in opts
        if not (has_u or has_g or idmap_opt):
            continue
        where = f"invalid mount mounts[{i}] ({dest})"
        if has_u != has_g:
            raise ConfigError(f"{where}: uidMappings and gidMappings must be specified together")
        if "bind" not in opts and "rbind" not in opts:
            raise ConfigError(f"{where}: gidMappings/uidMappings is supported only for mounts "
                              f"with the option 'bind'")
        if not has_u and "user" not in ns:
            raise ConfigError(f"{where}: idmap without uidMappings/gidMappings needs a user "
                              f"namespace")
        if has_u and not m.get("source", "").startswith("/"):
            raise ConfigError(f"{where}: mount source not absolute")


def _check_seccomp(linux):
    sc = linux.get("seccomp")
    if not sc:
        return
    # The init reports the listener fd with write(2): a filter that parks write
    # (or everything) on the notifier would deadlock set-up.
    if sc["defaultAction"] == "SCMP_ACT_NOTIFY":
        raise ConfigError("SCMP_ACT_NOTIFY cannot be used as default action")
    for call in sc.get("syscalls", []):
        if call["action"] == "SCMP_ACT_NOTIFY" and "write" in call["names"]:
            raise ConfigError("SCMP_ACT_NOTIFY cannot be used for the write syscall")


def _check_hooks(spec):
    hooks = spec.get("hooks") or {}
    for kind in HOOK_KINDS:
        for i, h in enumerate(hooks.get(kind, ())):
            if not h["path"].startswith("/"):
                raise ConfigError(f"hooks.{kind}[{i}].path: {h.get('path')!r} is not an "
                                  f"absolute path")
