from ..errors import RuntimeErr

HELP = "update (not available in this build yet)"
USAGE = "update <container-id>"
NARGS = (0, None)
STOP_AT_FIRST_ARG = True


def run(opts, args, g):
    raise RuntimeErr("update is not supported by this build of pyruntime yet")
