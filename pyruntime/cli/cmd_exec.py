"""exec: run a new process inside a container (runc exec)."""
from ._common import runtime
from ..errors import RuntimeErr
from ..fastjson import clone

HELP = "execute new process inside the container"
USAGE = ("exec [command options] <container-id> <command> [command options]  "
         "|| -p process.json <container-id>")
DESCRIPTION = """Where "<container-id>" is the name for the instance of the container and
"<command>" is the command to be executed in the container.
"<command>" can't be empty unless a "-p" flag provided."""
FLAGS = [
    (("--console-socket",), "console_socket", "str", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal"),
    (("--pidfd-socket",), "pidfd_socket", "str", "path to an AF_UNIX socket which will receive a file descriptor referencing the exec process"),
    (("--cwd",), "cwd", "str", "current working directory in the container"),
    (("--env", "-e"), "env", "list", "set environment variables"),
    (("--tty", "-t"), "tty", "bool", "allocate a pseudo-TTY"),
    (("--user", "-u"), "user", "str", "UID (format: <uid>[:<gid>])"),
    (("--additional-gids", "-g"), "gids", "int64list", "additional gids"),
    (("--process", "-p"), "process", "str", "path to the process.json"),
    (("--detach", "-d"), "detach", "bool", "detach from the container's process"),
    (("--pid-file",), "pid_file", "str", "specify the file to write the process id to"),
    (("--process-label",), "process_label", "str", "set the asm process label for the process commonly used with selinux"),
    (("--apparmor",), "apparmor", "str", "set the apparmor profile for the process"),
    (("--no-new-privs",), "no_new_privs", "bool", "set the no new privileges value for the process"),
    (("--cap", "-c"), "cap", "list", "add a capability to the bounding set for the process"),
    (("--preserve-fds",), "preserve_fds", "int", "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total) (default: 0)"),
    (("--cgroup",), "cgroup", "list", "run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>."),
    (("--ignore-paused",), "ignore_paused", "bool", "allow exec in a paused container"),
]
NARGS = (1, None)
STOP_AT_FIRST_ARG = True


def run(opts, args, g):
    try:
        return _exec(opts, args, g)
    except RuntimeErr as e:
        # runc: "exec failed: ..." and exit status 255 (engines tell it from the process's)
        g.error("exec failed: %s" % e)
        return 255


def _exec(opts, args, g):
    rt = runtime(g)
    cid, argv = args[0], args[1:]
    # "container does not exist" and the state's errors before anything about the process
    base = rt.exec_base(cid, ignore_paused=opts.get("ignore_paused", False),
                        base=not opts.get("process"))
    if opts.get("process"):
        from ..procspec import load_process_file
        process = load_process_file(opts["process"])
    else:
        if not argv:
            raise RuntimeErr("process args cannot be empty")
        process = process_from_flags(
            base, argv, cwd=opts.get("cwd"), env=opts.get("env") or (), user=opts.get("user"),
            gids=opts.get("gids") or (), caps=opts.get("cap") or (),
            no_new_privs=opts.get("no_new_privs"), apparmor=opts.get("apparmor"),
            label=opts.get("process_label"), tty=opts.get("tty"))
    r = rt.exec(cid, process, detach=opts.get("detach", False), pid_file=opts.get("pid_file"),
                console_socket=opts.get("console_socket"),
                preserve_fds=opts.get("preserve_fds") or 0,
                pidfd_socket=opts.get("pidfd_socket"), cgroup=opts.get("cgroup") or (),
                ignore_paused=opts.get("ignore_paused", False))
    return 0 if opts.get("detach") else r


def process_from_flags(base, args, cwd=None, env=(), user=None, gids=(), caps=(),
                       no_new_privs=False, apparmor=None, label=None, tty=False):
    """runc's exec default: the container's config.json process, overridden by flags."""
    p = clone(base or {})
    p["args"] = list(args)
    if cwd:
        p["cwd"] = cwd
    if apparmor:
        p["apparmorProfile"] = apparmor
    if label:
        p["selinuxLabel"] = label
    if caps:
        c = p.get("capabilities") or {}
        # Not inheritable: an inheritable cap would survive an exec of a file with
        # inheritable file caps (CVE-2022-29162); runc >= 1.1.2 adds it to these four.
        for k in ("bounding", "effective", "permitted", "ambient"):
            c[k] = list(c.get(k) or []) + list(caps)
        p["capabilities"] = c
    p["env"] = list(p.get("env") or []) + list(env)
    p["terminal"] = bool(tty)
    if no_new_privs:
        p["noNewPrivileges"] = True
    u = p.get("user") or {}
    if user:
        parts = user.split(":", 1)
        if len(parts) > 1:
            u["gid"] = _atoi(parts[1], "gid")
        u["uid"] = _atoi(parts[0], "uid")
    for g in gids:
        try:
            n = int(g)
        except (TypeError, ValueError):
            raise RuntimeErr('invalid value "%s" for flag -additional-gids' % g)
        if n < 0:
            raise RuntimeErr("additional-gids must be a positive number %d" % n)
        u.setdefault("additionalGids", [])
        u["additionalGids"] = list(u["additionalGids"]) + [n]
    p["user"] = u
    from ..procspec import validate_process
    validate_process(p)
    return p


def _atoi(s, what):
    digits = s[1:] if s[:1] in ("+", "-") else s
    if not (digits.isdigit() and digits.isascii()):
        why = "invalid syntax"
    elif not -(1 << 63) <= int(s) < (1 << 63):
        why = "value out of range"
    else:
        n = int(s)
        if not 0 <= n <= 0x7FFFFFFF:
            # runc parses any int and its init refuses it: the same words
            raise RuntimeErr("unable to start container process: unable to setup user: "
                             "uids and gids must be in range 0-2147483647")
        return n
    raise RuntimeErr('parsing %s as int for %s failed: strconv.Atoi: parsing "%s": %s'
                     % (s, what, s, why))
