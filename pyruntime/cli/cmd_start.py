from ._common import runtime

HELP = "executes the user defined process in a created container"
USAGE = "start <container-id>"
NARGS = (1, 1)


def run(opts, args, g):
    runtime(g).start(args[0])
    return 0
