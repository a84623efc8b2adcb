import sys

from ._common import runtime
from ..errors import RuntimeErr

HELP = "ps displays the processes running inside a container"
USAGE = "ps [command options] <container-id> [ps options]"
FLAGS = [(("-f", "--format"), "format", "str", 'select one of: table or json (default: "table")')]
NARGS = (1, None)
STOP_AT_FIRST_ARG = True  # everything after the id goes to ps(1)


def run(opts, args, g):
    pids = runtime(g).pids(args[0])
    fmt = opts.get("format") or "table"
    if fmt == "json":
        # Go encodes an empty (nil) slice as null
        from ..fastjson import dumps
        sys.stdout.write(dumps(pids or None, compact=True) + "\n")
        return 0
    if fmt != "table":
        raise RuntimeErr("invalid format option")
    from ..cgroupops import ps_table
    sys.stdout.write(ps_table(pids, args[1:]))
    return 0
