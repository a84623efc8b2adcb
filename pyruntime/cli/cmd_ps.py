from ..errors import RuntimeErr

HELP = "ps (not available in this build yet)"
USAGE = "ps <container-id>"
NARGS = (0, None)
STOP_AT_FIRST_ARG = True


def run(opts, args, g):
    raise RuntimeErr("ps is not supported by this build of pyruntime yet")
