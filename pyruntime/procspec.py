"""The OCI process object exec runs: read from `exec -p FILE` and validated (runc's checks
and the type checks of Go's JSON decoding, same messages). `exec`'s flags become one in the
CLI (cli/cmd_exec.py)."""
from .errors import RuntimeErr, strerror

_U32, _U64 = (1 << 32) - 1, (1 << 64) - 1


def _bad(field, want):
    # the gist of what Go's decoder says when runc reads the same file
    return RuntimeErr("json: cannot unmarshal into Go struct field Process.%s of type %s" % (field, want))


def _check_types(p):
    def uint(v, top, field):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
            raise _bad(field, "uint%d" % (32 if top == _U32 else 64))

    def strlist(v, field):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise _bad(field, "[]string")
        if any("\0" in x for x in v):
            raise RuntimeErr("process.%s: a string contains a NUL byte" % field)

    for k in ("terminal", "noNewPrivileges"):
        if k in p and not isinstance(p[k], bool):
            raise _bad(k, "bool")
    if "cwd" in p and not isinstance(p["cwd"], str):
        raise _bad("cwd", "string")
    for k in ("args", "env"):
        if p.get(k) is not None:
            strlist(p[k], k)
    u = p.get("user")
    if u is not None:
        if not isinstance(u, dict):
            raise _bad("user", "specs.User")
        for k in ("uid", "gid"):
            if k in u:
                uint(u[k], _U32, "user." + k)
        if u.get("umask") is not None:
            uint(u["umask"], _U32, "user.umask")
        for g in u.get("additionalGids") or ():
            uint(g, _U32, "user.additionalGids")
    cs = p.get("consoleSize")
    if cs is not None:
        if not isinstance(cs, dict):
            raise _bad("consoleSize", "specs.Box")
        for k in ("height", "width"):
            if k in cs:
                uint(cs[k], _U64, "consoleSize." + k)
                if cs[k] > 0xFFFF:
                    raise RuntimeErr("process.consoleSize.%s: %d is too large" % (k, cs[k]))
    caps = p.get("capabilities")
    if caps is not None:
        if not isinstance(caps, dict):
            raise _bad("capabilities", "specs.LinuxCapabilities")
        for k, v in caps.items():
            if v is not None:
                strlist(v, "capabilities." + k)
    rl = p.get("rlimits")
    if rl is not None:
        if not isinstance(rl, list) or not all(isinstance(r, dict) for r in rl):
            raise _bad("rlimits", "[]specs.POSIXRlimit")
        for r in rl:
            if not isinstance(r.get("type"), str):
                raise _bad("rlimits.type", "string")
            for k in ("hard", "soft"):
                uint(r.get(k, 0), _U64, "rlimits." + k)


def env_error(env):
    """What is wrong with process.env, or None: every entry must be NAME=value (POSIX
    environ's form, which the spec refers to) with a non-empty NAME and no NUL; runc
    refuses the rest with these words."""
    for kv in env or ():
        if not isinstance(kv, str):
            continue
        name, eq, val = kv.partition("=")
        kv = kv.replace("\0", "\\x00")   # one printable line, as Go's %q
        if not eq:
            return 'invalid environment variable: "%s"' % kv
        if not name:
            return "environment variable name can't be empty: \"%s\"" % kv
        if "\0" in name:
            return "environment variable name can't contain null(\\x00): \"%s\"" % kv
        if "\0" in val:
            return "environment variable value can't contain null(\\x00): \"%s\"" % kv
    return None


def validate_process(p):
    """runc's validateProcessSpec (same messages), after the type checks its JSON
    decoding does."""
    if not isinstance(p, dict):
        raise RuntimeErr("process: must be an object")
    _check_types(p)
    cwd = p.get("cwd")
    if not cwd:
        raise RuntimeErr("Cwd property must not be empty")
    if not cwd.startswith("/"):
        raise RuntimeErr("Cwd must be an absolute path")
    if not p.get("args"):
        raise RuntimeErr("args must not be empty")
    if p.get("env"):
        bad = env_error(p["env"])
        if bad is not None:
            raise RuntimeErr("unable to start container process: " + bad)


def load_process_file(path):
    """-p FILE: a process object as containerd and conmon write it."""
    from .fastjson import loads  # containerd execs this way: `json` costs ~5 ms
    try:
        with open(path, "rb") as f:
            p = loads(f.read())
    except OSError as e:
        raise RuntimeErr("open %s: %s" % (path, strerror(e.errno)))
    except (ValueError, RecursionError) as e:
        raise RuntimeErr("%s: invalid process JSON: %s" % (path, e))
    validate_process(p)
    return p
