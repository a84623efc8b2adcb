from ._common import CREATE_FLAGS, create_kwargs, fail_prefix, runtime
from ..errors import RuntimeErr

HELP = "create a container"
USAGE = "create [command options] <container-id>"
DESCRIPTION = "The create command creates an instance of a container for a bundle."
FLAGS = CREATE_FLAGS
NARGS = (1, 1)


def run(opts, args, g):
    try:
        runtime(g).create(args[0], opts.get("bundle") or ".", **create_kwargs(opts))
    except RuntimeErr as e:
        raise fail_prefix("pyruntime create", e)
    return 0
