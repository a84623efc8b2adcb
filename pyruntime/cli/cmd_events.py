from ..errors import RuntimeErr

HELP = "events (not available in this build yet)"
USAGE = "events <container-id>"
NARGS = (0, None)
STOP_AT_FIRST_ARG = True


def run(opts, args, g):
    raise RuntimeErr("events is not supported by this build of pyruntime yet")
