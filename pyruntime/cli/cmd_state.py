import sys

from ._common import runtime
from ..fastjson import dumps_indent

HELP = "output the state of a container"
USAGE = "state <container-id>"
NARGS = (1, 1)


def run(opts, args, g):
    s = runtime(g).state(args[0])
    sys.stdout.write(dumps_indent(s))
    return 0
