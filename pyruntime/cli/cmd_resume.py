from ..errors import RuntimeErr

HELP = "resume (not available in this build yet)"
USAGE = "resume <container-id>"
NARGS = (0, None)
STOP_AT_FIRST_ARG = True


def run(opts, args, g):
    raise RuntimeErr("resume is not supported by this build of pyruntime yet")
