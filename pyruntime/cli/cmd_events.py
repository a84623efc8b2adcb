import json
import re
import sys

from ._common import runtime

HELP = "display container events such as OOM notifications, cpu, memory, and IO usage statistics"
USAGE = """events [command options] <container-id>

Where "<container-id>" is the name for the instance of the container."""
DESCRIPTION = """The events command displays information about the container. By default the
information is displayed once every 5 seconds."""
FLAGS = [
    (("--interval",), "interval", "str", "set the stats collection interval (default: 5s)"),
    (("--stats",), "stats", "bool", "display the container's stats then exit"),
]
NARGS = (1, 1)

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(s):
    """Go's time.ParseDuration ("5s", "1m30s", "250ms", "0"), in seconds; None if invalid."""
    t = s
    sign = 1.0
    if t[:1] in ("+", "-"):
        sign = -1.0 if t[0] == "-" else 1.0
        t = t[1:]
    if t == "0":
        return 0.0
    if not t:
        return None
    total, pos = 0.0, 0
    while pos < len(t):
        m = _PART.match(t, pos)
        if not m:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return sign * total


def run(opts, args, g):
    from . import UsageError
    from ..errors import RuntimeErr
    iv = opts.get("interval")
    interval = 5.0 if iv is None else parse_duration(iv)
    if interval is None:
        raise UsageError('invalid value "%s" for flag -interval: parse error' % iv)
    if interval <= 0:
        raise RuntimeErr("duration interval must be greater than 0")
    rt = runtime(g)

    def emit(ev):
        sys.stdout.write(json.dumps(ev, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    rt.events(args[0], interval, emit, stats_only=opts.get("stats", False))
    return 0
