"""Command-line entry point: runc-compatible argument parsing, nothing else.

Each command lives in its own module ``pyruntime.cli.cmd_<name>`` declaring::

    HELP  = "one line"
    USAGE = "create [command options] <container-id>"
    FLAGS = [(("-b", "--bundle"), "bundle", "str", "help text"), ...]   # kinds: bool str int list
    NARGS = (1, 1)          # min, max positionals (max None = unbounded)
    STOP_AT_FIRST_ARG = False   # exec/ps: everything after the id belongs to the process
    def run(opts, args, g): ...  # returns the exit status

Only the module of the command being run is imported, and no argparse: start-up time is
part of every container start.
"""
import gc
from .. import oslite as os
import sys

from .. import DEFAULT_ROOT
from ..errors import RuntimeErr

COMMANDS = {
    "checkpoint": "checkpoint", "create": "create", "delete": "delete", "events": "events",
    "exec": "exec", "kill": "kill", "list": "list", "pause": "pause", "ps": "ps",
    "restore": "restore", "resume": "resume", "run": "run", "spec": "spec", "start": "start",
    "state": "state", "update": "update", "features": "features", "plan": "plan",
}

GLOBAL_FLAGS = [
    (("--debug",), "debug", "bool", "enable debug logging"),
    (("--log",), "log", "str", "set the log file to write pyruntime logs to (default is '/dev/stderr')"),
    (("--log-format",), "log_format", "str", "set the log format ('text' (default), or 'json')"),
    (("--root",), "root", "str", 'root directory for storage of container state (default: "%s")' % DEFAULT_ROOT),
    (("--criu",), "criu", "str", 'path to the criu binary used for checkpoint and restore (default: "criu")'),
    (("--systemd-cgroup",), "systemd_cgroup", "bool",
     'enable systemd cgroup support, expects cgroupsPath to be of form "slice:prefix:name"'),
    (("--rootless",), "rootless", "str", "ignore cgroup permission errors ('true', 'false', or 'auto') (default: \"auto\")"),
    (("--help", "-h"), "help", "bool", "show help"),
    (("--version", "-v"), "version", "bool", "print the version"),
]


# logrus's text format quotes a value only when it holds anything else ("msg=EOF")
_PLAIN = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._/@^+"


class UsageError(Exception):
    pass


class _GlobalUsageError(UsageError):
    """A bad global flag: runc answers with the main help, not a command's."""


def _usage(text, g, msg, rc=1):
    # runc (urfave/cli): "Incorrect Usage..." and the help go to stdout, the error line
    # to stderr/the log, so an engine reading stderr gets the one line and nothing else
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass   # no reader for the help: the error line below still says what was wrong
    if g is None:
        g = Globals({})
    g.error(msg)
    return rc


class Globals:
    """Global options plus the error logger every command uses."""

    def __init__(self, opts):
        self.debug = opts.get("debug", False)
        self.log = opts.get("log")
        self.log_format = opts.get("log_format") or "text"
        self.systemd_cgroup = opts.get("systemd_cgroup", False)
        self.rootless = opts.get("rootless") or "auto"
        self.criu = opts.get("criu") or "criu"
        root = opts.get("root")
        if root is None:
            from .. import default_root
            root = default_root()
        self.root = root
        self.command = None

    # The caller's environment becomes the library's arguments here, and only here.
    @staticmethod
    def cache_dir():
        """Content-addressed caches (validated configs, compiled seccomp filters), kept out
        of the state root, which holds containers and nothing else."""
        base = os.environ.get("PYRUNTIME_CACHE_DIR")
        if base:
            return base
        if os.geteuid() == 0:
            return "/var/cache/pyruntime"
        return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                            "pyruntime")

    @staticmethod
    def listen_fds():
        """Socket activation (sd_listen_fds): the fds after stdio meant for this process."""
        if os.environ.get("LISTEN_PID") == str(os.getpid()):
            try:
                return int(os.environ.get("LISTEN_FDS", "0"))
            except ValueError:
                return 0
        return 0

    @staticmethod
    def start_error():
        """What the launcher's fast path hands over when it started a container whose
        init then failed (the launcher clears the variable on entry: never the caller's)."""
        return os.environ.pop("PYRT_START_ERROR", None)

    def _emit(self, level, msg):
        import time
        ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.log_format == "json":
            # compact, like logrus; `json` would import re and enum (~5 ms) on every error
            from ..fastjson import dumps
            line = dumps({"level": level, "msg": msg, "time": ts}, compact=True) + "\n"
        else:
            if msg.strip(_PLAIN):
                # Go's %q for what a terminal would act on: a path or a config value
                # with ESC or CR in it stays one inert line
                esc = {i: "\\x%02x" % i for i in range(32)}
                esc.update({7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f",
                            13: "\\r", 0x7f: "\\x7f", 34: '\\"', 92: "\\\\"})
                msg = '"%s"' % msg.translate(esc)
            line = 'time="%s" level=%s msg=%s\n' % (ts, level, msg)
        if self.log and self.log != "/dev/stderr":
            try:
                fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    os.write(fd, line.encode())
                finally:
                    os.close(fd)
                return
            except OSError:
                pass
        sys.stderr.write(line)
        sys.stderr.flush()

    def error(self, msg):
        self._emit("error", msg)
        if self.log and self.log != "/dev/stderr":
            # runc: with --log pointing at a file, the bare message still goes to stderr
            sys.stderr.write(msg + "\n")
            sys.stderr.flush()

    def warn(self, msg):
        self._emit("warning", msg)

    def debugf(self, msg):
        if self.debug:
            self._emit("debug", msg)


def _reorder(table, argv):
    """Known flags written after the positionals move in front of them, as runc's CLI
    library does for every command but exec and ps (`runc delete c1 -f`, `runc kill c1
    KILL --all`). It takes the word after *any* such flag for its value, so `kill c1 --all
    TERM` signals a container named TERM there; here only a flag that has a value takes
    one, which differs only where runc would act on the wrong container or fail."""
    front, rest = [], []
    i, n = 0, len(argv)
    while i < n:
        a = argv[i]
        if a == "--":
            rest.extend(argv[i:])
            break
        ent = None
        if len(a) > 1 and a[0] == "-":
            ent = table.get(a.lstrip("-").split("=", 1)[0])
        if ent is None:
            rest.append(a)
        else:
            front.append(a)
            if ent[1] != "bool" and "=" not in a and i + 1 < n:
                i += 1
                front.append(argv[i])
        i += 1
    return front + rest


def parse_flags(spec, argv, stop_at_first_arg=False, allow_interleaved=False):
    """Parse urfave/cli-style flags: -f/--flag, -flag, --flag=v, --flag v.

    Returns (opts, positionals). Flags end at the first positional (like Go's flag
    package) unless allow_interleaved; '--' ends them too. Without stop_at_first_arg,
    known flags after the positionals count too (_reorder).
    """
    table = {}
    opts = {}
    for names, dest, kind, _help in spec:
        for n in names:
            table[n.lstrip("-")] = (dest, kind)
    if not stop_at_first_arg and not allow_interleaved:
        argv = _reorder(table, argv)
    for names, dest, kind, _help in spec:
        if kind == "bool":
            opts.setdefault(dest, False)
        elif kind in ("list", "int64list"):
            opts.setdefault(dest, [])
    pos = []
    i = 0
    n = len(argv)
    while i < n:
        a = argv[i]
        if a == "--":
            pos.extend(argv[i + 1:])
            break
        if len(a) > 1 and a[0] == "-" and not pos or (allow_interleaved and len(a) > 1 and a[0] == "-"):
            name = a.lstrip("-")
            val = None
            if "=" in name:
                name, val = name.split("=", 1)
            ent = table.get(name)
            if ent is None:
                raise UsageError("flag provided but not defined: -%s" % name)
            dest, kind = ent
            if kind == "bool":
                if val is None:
                    opts[dest] = True
                else:
                    lv = val.lower()
                    if lv in ("1", "t", "true"):
                        opts[dest] = True
                    elif lv in ("0", "f", "false"):
                        opts[dest] = False
                    else:
                        raise UsageError('invalid boolean value "%s" for -%s: parse error'
                                         % (val, name))
            else:
                if val is None:
                    i += 1
                    if i >= n:
                        raise UsageError("flag needs an argument: -%s" % name)
                    val = argv[i]
                if kind == "int":
                    try:
                        val = int(val, 0)
                    except ValueError:
                        raise UsageError('invalid value "%s" for flag -%s: parse error' % (val, name))
                if kind == "int64list":
                    opts[dest].append(_go_int64(val, name))
                elif kind == "list":
                    opts[dest].append(val)
                else:
                    opts[dest] = val
            i += 1
            continue
        pos.append(a)
        i += 1
        if stop_at_first_arg:
            pos.extend(argv[i:])
            break
    return opts, pos


def _go_int64(val, name):
    """strconv.ParseInt(val, 10, 64), with urfave/cli's message for an Int64SliceFlag."""
    digits = val[1:] if val[:1] in ("+", "-") else val
    if not (digits.isdigit() and digits.isascii()):
        why = "invalid syntax"
    else:
        n = int(val)
        if -(1 << 63) <= n < (1 << 63):
            return n
        why = "value out of range"
    raise UsageError('invalid value "%s" for flag -%s: strconv.ParseInt: parsing "%s": %s'
                     % (val, name, val, why))


def _flag_lines(spec):
    out = []
    for names, _dest, kind, help_ in spec:
        ns = sorted(names, key=lambda s: (s.startswith("--") is False, s))
        txt = ", ".join(x + ("" if kind == "bool" else " value") for x in ns)
        out.append("   %-26s %s" % (txt, help_))
    return "\n".join(out)


def main_help():
    from .. import __version__
    lines = ["NAME:", "   pyruntime - Open Container Initiative runtime (runc compatible)", "",
             "USAGE:", "   pyruntime [global options] command [command options] [arguments...]", "",
             "VERSION:", "   " + __version__, "", "COMMANDS:"]
    for name in COMMANDS:
        mod = _load(name)
        lines.append("   %-11s %s" % (name, getattr(mod, "HELP", "")))
    lines += ["", "GLOBAL OPTIONS:", _flag_lines(GLOBAL_FLAGS)]
    return "\n".join(lines) + "\n"


def command_help(name, mod):
    lines = ["NAME:", "   pyruntime %s - %s" % (name, getattr(mod, "HELP", "")), "",
             "USAGE:", "   pyruntime " + getattr(mod, "USAGE", name)]
    desc = getattr(mod, "DESCRIPTION", None)
    if desc:
        lines += ["", "DESCRIPTION:", "   " + desc.strip()]
    if getattr(mod, "FLAGS", None):
        lines += ["", "OPTIONS:", _flag_lines(mod.FLAGS)]
    return "\n".join(lines) + "\n"


def _load(name):
    modname = "pyruntime.cli.cmd_" + COMMANDS[name]
    __import__(modname)  # importlib itself costs an import
    return sys.modules[modname]


def version_text():
    from .. import __version__, OCI_VERSION
    try:
        from .._version_info import COMMIT
    except ImportError:
        COMMIT = "unknown"
    lines = ["pyruntime version " + __version__, "commit: " + COMMIT, "spec: " + OCI_VERSION]
    lines.append("python: %d.%d.%d" % sys.version_info[:3])
    try:
        from .. import seccomp
        lines.append("libseccomp: " + seccomp.library_version())
    except Exception:
        pass
    return "\n".join(lines) + "\n"


def main(argv=None):
    if argv is None:
        argv = sys.argv[1:]
    g = None
    name = mod = None
    try:
        try:
            gopts, rest = parse_flags(GLOBAL_FLAGS, argv, stop_at_first_arg=True)
        except UsageError as e:
            raise _GlobalUsageError(str(e))
        g = Globals(gopts)
        if g.log_format not in ("text", "json"):
            fmt, g.log_format = g.log_format, "text"
            g.error("invalid log-format: %s" % fmt)
            return 1
        if g.log and g.log != "/dev/stderr":
            # runc opens its log at start-up: one it cannot open fails every command
            try:
                os.close(os.open(g.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                                 0o644))
            except OSError as e:
                path, g.log = g.log, None
                from ..errors import strerror
                g.error("open %s: %s" % (path, strerror(e)))
                return 1
        if gopts.get("version"):
            sys.stdout.write(version_text())
            return 0
        if not rest or gopts.get("help") or rest[0] in ("help", "h"):
            if rest and rest[0] in ("help", "h") and len(rest) > 1:
                if rest[1] not in COMMANDS and rest[1] not in ("help", "h"):
                    g.error("No help topic for '%s'" % rest[1])
                    return 3
                if rest[1] in COMMANDS:
                    sys.stdout.write(command_help(rest[1], _load(rest[1])))
                    return 0
            sys.stdout.write(main_help())
            return 0
        if rest[0] not in COMMANDS:
            # runc: exit status 3 and only the error line (urfave/cli's unknown command)
            g.error("No help topic for '%s'" % rest[0])
            return 3
        name = rest[0]
        g.command = name
        mod = _load(name)
        flags = list(getattr(mod, "FLAGS", [])) + [(("--help", "-h"), "help", "bool", "show help")]
        opts, args = parse_flags(flags, rest[1:], getattr(mod, "STOP_AT_FIRST_ARG", False),
                                 getattr(mod, "INTERLEAVED", False))
        if opts.get("help"):
            sys.stdout.write(command_help(name, mod))
            return 0
        lo, hi = getattr(mod, "NARGS", (0, 0))
        if len(args) < lo or (hi is not None and len(args) > hi):
            if lo == hi:
                msg = 'pyruntime: "%s" requires exactly %d argument(s)' % (name, lo)
            elif len(args) < lo:
                msg = 'pyruntime: "%s" requires a minimum of %d argument(s)' % (name, lo)
            else:
                msg = 'pyruntime: "%s" requires a maximum of %d argument(s)' % (name, hi)
            return _usage("Incorrect Usage.\n\n" + command_help(name, mod), g, msg)
        return mod.run(opts, args, g) or 0
    except _GlobalUsageError as e:
        return _usage("Incorrect Usage. %s\n\n%s" % (e, main_help()), g, str(e))
    except UsageError as e:
        if mod is None:
            return _usage("Incorrect Usage. %s\n\n%s" % (e, main_help()), g, str(e))
        return _usage("Incorrect Usage: %s\n\n%s" % (e, command_help(name, mod)), g, str(e))
    except RuntimeErr as e:
        if g is None:
            g = Globals({})
        g.error(str(e))
        return 1
    except KeyboardInterrupt:
        return 130
    except RecursionError:
        # only input nesting (JSON thousands of levels deep) gets the runtime here
        if g is None:
            g = Globals({})
        g.error("invalid input: nested too deeply")
        return 1
    except Exception as e:  # never a traceback for a user: one line, exit 1
        if g is None:
            g = Globals({})
        if g.debug:
            import traceback
            traceback.print_exc()
        g.error("internal error: %s: %s" % (type(e).__name__, e))
        return 1
    except BrokenPipeError:
        return 1


def _hold_closed_stdio():
    """CPython sets sys.stdin/stdout/stderr to None for an fd 0-2 closed at start-up. The
    next file the runtime opens would take that fd, and a container inherits fds 0-2 as
    its stdio (it got an O_PATH fd of its rootfs as stdout): hold each one with /dev/null,
    as runc's callers see it (its create succeeds; what it prints goes nowhere)."""
    for i, name in enumerate(("stdin", "stdout", "stderr")):
        if getattr(sys, name) is None:
            fd = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            if fd != i:
                os.dup2(fd, i)
                os.close(fd)
            os.set_inheritable(i, True)   # it is the stdio the container gets
            setattr(sys, name, open(i, "r" if i == 0 else "w", closefd=False))


def entry():
    """Run main() and exit without interpreter teardown.

    Finalizing the interpreter (module teardown, a last GC pass) costs 0.7-1.5 ms after
    the work is done, on every command; nothing here needs it: files are closed by
    `with`, helper threads are disposable, and children outlive us either way."""
    # No cyclic GC: a command lives milliseconds and leaves through os._exit, so the
    # collections the imports and the plan's many small objects set off (~1 ms of CPU,
    # 5-8% of a `run`) find nothing the exit would not free. What waits for a container
    # (the stdio/tty relays, `events`) turns it back on.
    gc.disable()
    was = os.environ.pop("PYRT_LC_ALL", None)
    if was is not None:
        # the launcher started us in the C locale (launcher.c): the caller's LC_ALL back
        if was[:1] == "s":
            os.environ["LC_ALL"] = was[1:]
        else:
            os.environ.pop("LC_ALL", None)
    if sys.stdout is None or sys.stderr is None or sys.stdin is None:
        _hold_closed_stdio()
    try:
        rc = main()
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            rc = rc or 120  # what CPython's own exit reports for a failed flush
    os._exit(rc & 0xff if rc >= 0 else 1)
