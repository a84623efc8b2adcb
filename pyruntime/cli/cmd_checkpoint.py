from ..errors import RuntimeErr

HELP = "checkpoint a container (needs criu; not supported)"
USAGE = "checkpoint [command options] <container-id>"
NARGS = (0, None)
STOP_AT_FIRST_ARG = True
INTERLEAVED = False


def run(opts, args, g):
    raise RuntimeErr("checkpoint is not supported: pyruntime does not implement checkpoint/restore (criu)")
