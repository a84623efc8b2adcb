from ._common import runtime

HELP = "pause suspends all processes inside the container"
USAGE = """pause <container-id>

Where "<container-id>" is the name for the instance of the container to be
paused. """
DESCRIPTION = """The pause command suspends all processes in the instance of the container.

Use pyruntime list to identify instances of containers and their current status."""
NARGS = (1, 1)


def run(opts, args, g):
    runtime(g).pause(args[0])
    return 0
