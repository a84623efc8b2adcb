import sys

from ._common import runtime
from ..fastjson import dumps
from ..errors import RuntimeErr

HELP = "lists containers started by pyruntime with the given root"
USAGE = "list [command options]"
FLAGS = [
    (("-f", "--format"), "format", "str", "select one of: table or json (default: \"table\")"),
    (("-q", "--quiet"), "quiet", "bool", "display only container IDs"),
]
NARGS = (0, 0)


def _table(rows):
    # Go's tabwriter as runc sets it up: minwidth 12, padding 3, last column unpadded
    widths = [max(12, max(len(r[i]) for r in rows) + 3) for i in range(len(rows[0]) - 1)]
    out = []
    for r in rows:
        out.append("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1])
    return "\n".join(out) + "\n"


def run(opts, args, g):
    fmt = opts.get("format") or "table"
    items = runtime(g).list()
    if opts.get("quiet"):
        sys.stdout.write("".join(s["id"] + "\n" for s in items))
        return 0
    if fmt == "json":
        sys.stdout.write(dumps(items or None, compact=True) + "\n")
        return 0
    if fmt != "table":
        raise RuntimeErr("invalid format option")
    rows = [["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]]
    for s in items:
        rows.append([s["id"], str(s["pid"]), s["status"], s["bundle"], s["created"], s.get("owner", "")])
    sys.stdout.write(_table(rows))
    return 0
