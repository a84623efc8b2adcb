from ._common import runtime

HELP = "executes the user defined process in a created container"
USAGE = "start <container-id>"
NARGS = (1, 1)


def run(opts, args, g):
    late = g.start_error()
    if late is not None:
        # the launcher's fast path did this start; the init failed after it
        from ..errors import RuntimeErr
        raise RuntimeErr(late)
    runtime(g).start(args[0])
    return 0
