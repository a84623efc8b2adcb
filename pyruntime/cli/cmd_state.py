import json
import sys

from ._common import runtime

HELP = "output the state of a container"
USAGE = "state <container-id>"
NARGS = (1, 1)


def run(opts, args, g):
    s = runtime(g).state(args[0])
    sys.stdout.write(json.dumps(s, indent=2))
    return 0
