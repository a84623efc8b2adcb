from ._common import CREATE_FLAGS, create_kwargs, fail_prefix, runtime
from ..errors import RuntimeErr

HELP = "create and run a container"
USAGE = "run [command options] <container-id>"
FLAGS = CREATE_FLAGS + [
    (("-d", "--detach"), "detach", "bool", "detach from the container's process"),
    (("--keep",), "keep", "bool", "do not delete the container after it exits"),
    (("--no-subreaper",), "no_subreaper", "bool", "disable the use of the subreaper used to reap reparented processes"),
]
NARGS = (1, 1)


def run(opts, args, g):
    try:
        return runtime(g).run(args[0], opts.get("bundle") or ".", detach=opts.get("detach", False),
                              keep=opts.get("keep", False), **create_kwargs(opts))
    except RuntimeErr as e:
        raise fail_prefix("pyruntime run", e)
