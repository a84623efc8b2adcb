from ._common import runtime

HELP = "resumes all processes that have been previously paused"
USAGE = """resume <container-id>

Where "<container-id>" is the name for the instance of the container to be
resumed."""
DESCRIPTION = """The resume command resumes all processes in the instance of the container.

Use pyruntime list to identify instances of containers and their current status."""
NARGS = (1, 1)


def run(opts, args, g):
    runtime(g).resume(args[0])
    return 0
