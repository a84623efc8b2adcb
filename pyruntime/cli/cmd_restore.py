from ..errors import RuntimeErr

HELP = "restore a container (needs criu; not supported)"
USAGE = "restore [command options] <container-id>"
NARGS = (0, None)
STOP_AT_FIRST_ARG = True
INTERLEAVED = False


def run(opts, args, g):
    raise RuntimeErr("restore is not supported: pyruntime does not implement checkpoint/restore (criu)")
