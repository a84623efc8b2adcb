from ..errors import RuntimeErr

HELP = "pause (not available in this build yet)"
USAGE = "pause <container-id>"
NARGS = (0, None)
STOP_AT_FIRST_ARG = True


def run(opts, args, g):
    raise RuntimeErr("pause is not supported by this build of pyruntime yet")
