from ..errors import RuntimeErr

HELP = "exec (not available in this build yet)"
USAGE = "exec <container-id>"
NARGS = (0, None)
STOP_AT_FIRST_ARG = True


def run(opts, args, g):
    raise RuntimeErr("exec is not supported by this build of pyruntime yet")
